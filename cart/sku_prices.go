// Per-variant prices: a SKU may cost more or less than its product (size XL
// costs more). Its price is in the product's currency, like a deal's.

package cart

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// maxPriceAmount is the largest amount (minor units) a price may have
// (a product's, a variant's, a deal's).
const maxPriceAmount = 1e11

// skuPrice checks a variant's price against its product's price (want):
// the same currency, more than zero and within the bounds of a product
// price. A price equal to the product's is nil: the variant then follows
// the product's price when it changes.
func skuPrice(field string, m *Money, want Money) (*Money, error) {
	if m == nil {
		return nil, nil
	}
	c := *m
	c.Currency = strings.ToLower(c.Currency)
	if c.Currency != want.Currency {
		// An order is in one currency: a variant priced in another would
		// make the product unpayable together with its other lines.
		return nil, &CurrencyError{Want: want.Currency, Got: c.Currency, Field: field + ".currency"}
	}
	if c.Amount <= 0 || c.Amount > maxPriceAmount {
		return nil, fieldErr(field+".amount", 0, "must be a positive integer in minor units (cents), at most 1e11")
	}
	if c == want {
		return nil, nil
	}
	return &c, nil
}

// checkSKUPrices checks the variant prices an update sets (new variants'
// and Prices) against the product's price after the update, and that a
// new product currency leaves no variant priced in the old one.
func (s *Service) checkSKUPrices(ctx context.Context, id string, u *ProductUpdate) error {
	priced := len(u.Prices) > 0
	for _, k := range u.SKUs {
		priced = priced || k.Price != nil
	}
	if !priced && u.Price == nil {
		return nil
	}
	cur, err := s.Store.GetProduct(ctx, id)
	if err != nil {
		return err
	}
	want := cur.Price
	if u.Price != nil {
		want = *u.Price
	}
	for i := range u.SKUs {
		if u.SKUs[i].Price, err = skuPrice(fmt.Sprintf("skus[%d].price", i), u.SKUs[i].Price, want); err != nil {
			return err
		}
	}
	for sku, m := range u.Prices {
		if u.Prices[sku], err = skuPrice("skus."+sku+".price", m, want); err != nil {
			return err
		}
	}
	for _, k := range cur.SKUs {
		if _, set := u.Prices[k.ID]; !set && k.Price != nil && k.Price.Currency != want.Currency {
			return fieldErr("price.currency", 0, fmt.Sprintf("variant %s is priced in %q: set or clear the variants' prices in the same update", k.ID, k.Price.Currency))
		}
	}
	return nil
}

// lowestPrice is the lowest regular price of the product's units: the
// product's or a variant's own.
func (p *Product) lowestPrice() Money {
	low := p.Price
	for _, k := range p.SKUs {
		if k.Price != nil && k.Price.Amount < low.Amount {
			low = *k.Price
		}
	}
	return low
}

// setPrice sets a variant's price in the update (nil: the product's).
func (u *ProductUpdate) setPrice(sku string, m *Money) {
	if u.Prices == nil {
		u.Prices = map[string]*Money{}
	}
	u.Prices[sku] = m
}

// optMoney is a JSON price that tells absent (set false) from null.
type optMoney struct {
	set bool
	m   *Money
}

func (o *optMoney) UnmarshalJSON(b []byte) error {
	o.set = true
	if err := json.Unmarshal(b, &o.m); err != nil {
		return fmt.Errorf("price: %w", err)
	}
	return nil
}

// SamePrice reports whether two variant prices are equal (nil: none).
func SamePrice(a, b *Money) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}
