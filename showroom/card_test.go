package showroom

import (
	"strings"
	"testing"
	"time"

	"github.com/streamd/streamd/cart"
)

// TestCardVariantPrices: a card carries each variant's own price (kept when
// a big card drops the variants' titles); a product's only variant's own
// price is the card's price.
func TestCardVariantPrices(t *testing.T) {
	eur := func(a int64) *cart.Money { return &cart.Money{Amount: a, Currency: "eur"} }
	p := cart.Product{ID: "tee", Title: "Tee", Price: *eur(2900), SKUs: []cart.SKU{{ID: "m", Available: 1}, {ID: "xl", Price: eur(3400), Available: 1}}}
	c := cardOf(p, time.Now())
	if c.Price != *eur(2900) || c.SKUs[0].Price != nil || c.SKUs[1].Price == nil || *c.SKUs[1].Price != *eur(3400) {
		t.Fatalf("card: %+v", c)
	}
	for i := range c.SKUs {
		c.SKUs[i].Title = strings.Repeat("x", 400)
	}
	for range 100 {
		c.SKUs = append(c.SKUs, CardSKU{ID: "v", Title: strings.Repeat("y", 400)})
	}
	fit, b := fitCard(c)
	if len(b) > cardBudget || fit.SKUs[1].Title != "" || fit.SKUs[1].Price == nil || fit.SKUs[1].Price.Amount != 3400 {
		t.Fatalf("fitted card (%d bytes): %+v", len(b), fit.SKUs[:2])
	}
	one := cart.Product{ID: "mug", Title: "Mug", Price: *eur(1500), SKUs: []cart.SKU{{ID: "big", Price: eur(1900), Available: 1}}}
	if c := cardOf(one, time.Now()); c.Price != *eur(1900) || len(c.SKUs) != 0 {
		t.Fatalf("single variant's card: %+v", c)
	}
}
