// Flash deals: starting and ending them, and telling viewers when what can
// be bought changes.

package cart

import (
	"context"
	"fmt"
	"time"
)

// SetDeal starts a flash deal on a product, replacing any other.
func (s *Service) SetDeal(ctx context.Context, productID string, d Deal) error {
	if err := checkMoney(&d.Price); err != nil {
		return err
	}
	if d.Quantity < 0 || d.PerBuyer < 0 || d.HoldTTL < 0 {
		return invalid("deal quantity, per_buyer and hold ttl must not be negative")
	}
	if !d.EndsAt.After(s.Now()) {
		return invalid("deal ends_at must be in the future")
	}
	if d.Quantity > maxDealUnits || d.PerBuyer > maxDealUnits {
		return fieldErr("deal.quantity", 0, fmt.Sprintf("deal quantity and per_buyer are at most %d", maxDealUnits))
	}
	if d.HoldTTL > maxDealHoldTTL {
		return fieldErr("deal.hold_ttl_seconds", 0, fmt.Sprintf("a deal's hold time is at most %s", maxDealHoldTTL))
	}
	p, err := s.Store.GetProduct(ctx, productID)
	if err != nil {
		return err
	}
	if d.Price.Currency != p.Price.Currency {
		// An order is in one currency: a deal in another would make the
		// product unpayable together with its other lines.
		return &CurrencyError{Want: p.Price.Currency, Got: d.Price.Currency}
	}
	// A deal prices every variant alike, so it must be below the lowest
	// regular price of them all (a deal dearer than some variant's own
	// price would raise that variant's price); it is checked when the deal
	// is set, as the product price is — editing prices later is not.
	if low := p.lowestPrice(); d.Price.Amount >= low.Amount {
		return fmt.Errorf("%w: the deal price must be below the regular price %d %s", ErrDealPrice, low.Amount, low.Currency)
	}
	if _, err := s.Store.SetDeal(ctx, productID, d); err != nil {
		return err
	}
	s.stockChanged(productID)
	s.dirtyMu.Lock()
	s.dealEnds[productID] = d.EndsAt
	s.dirtyMu.Unlock()
	return nil
}

// Limits of deals.
const (
	maxDealUnits   = 1_000_000
	maxDealHoldTTL = 24 * time.Hour
)

// CurrencyError says a deal's price (Field "") or a variant's (Field
// names it) is not in its product's currency.
type CurrencyError struct {
	Want, Got string
	Field     string
}

func (e *CurrencyError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %q is not the product's currency %q", e.Field, e.Got, e.Want)
	}
	return fmt.Sprintf("the deal's currency %q is not the product's %q", e.Got, e.Want)
}

// endedDeals returns (and forgets) the products whose deal set here ended
// by now: when a deal ends what can be bought changes again (its cap no
// longer applies), so the sweeper tells viewers.
func (s *Service) endedDeals(now time.Time) []string {
	s.dirtyMu.Lock()
	defer s.dirtyMu.Unlock()
	var out []string
	for p, end := range s.dealEnds {
		if !now.Before(end) {
			out = append(out, p)
			delete(s.dealEnds, p)
		}
	}
	return out
}

// ClearDeal ends a product's deal.
func (s *Service) ClearDeal(ctx context.Context, productID string) error {
	if err := s.Store.ClearDeal(ctx, productID); err != nil {
		return err
	}
	s.dirtyMu.Lock()
	delete(s.dealEnds, productID)
	s.dirtyMu.Unlock()
	s.stockChanged(productID)
	return nil
}
