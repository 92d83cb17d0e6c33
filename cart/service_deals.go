// Flash deals: starting and ending them, and telling viewers when what can
// be bought changes.

package cart

import (
	"context"
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
	if _, err := s.Store.SetDeal(ctx, productID, d); err != nil {
		return err
	}
	s.stockChanged(productID)
	// When the deal ends, what can be bought changes again (the cap no
	// longer applies): tell viewers then too.
	time.AfterFunc(d.EndsAt.Sub(s.Now())+50*time.Millisecond, func() { s.stockChanged(productID) })
	return nil
}

// ClearDeal ends a product's deal.
func (s *Service) ClearDeal(ctx context.Context, productID string) error {
	if err := s.Store.ClearDeal(ctx, productID); err != nil {
		return err
	}
	s.stockChanged(productID)
	return nil
}
