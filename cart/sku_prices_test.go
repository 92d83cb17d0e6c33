package cart

import (
	"testing"
	"time"
)

// TestVariantPrices: a variant's own price is validated (the product's
// currency, more than zero), shown, set and cleared by PATCH, and is what
// carts, checkouts and orders charge; a flash deal still prices every
// variant and must be below the cheapest of them.
func TestVariantPrices(t *testing.T) {
	forEachHarness(t, 6, nil, func(t *testing.T, h *harness) {
		eur := func(a int) map[string]any { return map[string]any{"amount": a, "currency": "eur"} }
		amount := func(m any) any {
			if m, ok := m.(map[string]any); ok {
				return m["amount"]
			}
			return nil
		}
		tee := func(skus ...map[string]any) map[string]any {
			return map[string]any{"id": "tee", "title": "Tee", "price": eur(2900), "skus": skus}
		}
		bad := func(r resp, code, field string) {
			t.Helper()
			h.mustCode(r, 422, code)
			if r.body["field"] != field {
				t.Fatalf("field %v, want %s: %s", r.body["field"], field, r.raw)
			}
		}
		bad(h.staff("POST", "/api/products", tee(map[string]any{"id": "s", "stock": 1},
			map[string]any{"id": "xl", "stock": 1, "price": map[string]any{"amount": 3400, "currency": "usd"}})), "currency_mismatch", "skus[1].price.currency")
		bad(h.staff("POST", "/api/products", tee(map[string]any{"id": "s", "stock": 1, "price": eur(0)})), "invalid_field", "skus[0].price.amount")
		bad(h.staff("POST", "/api/products", tee(map[string]any{"id": "s", "stock": 1, "price": eur(-100)})), "invalid_field", "skus[0].price.amount")
		h.mustCode(h.staff("POST", "/api/products", tee(
			map[string]any{"id": "s", "stock": 5, "price": map[string]any{"amount": 2900, "currency": "EUR"}}, // the product's: none of its own
			map[string]any{"id": "m", "stock": 5},
			map[string]any{"id": "xl", "stock": 5, "price": eur(3400)})), 201, "")
		p := h.do("GET", "/api/products/tee", nil)
		skus := p.body["skus"].([]any)
		if amount(skus[0].(map[string]any)["price"]) != nil || amount(skus[1].(map[string]any)["price"]) != nil || amount(skus[2].(map[string]any)["price"]) != 3400.0 {
			t.Fatalf("public variant prices: %s", p.raw)
		}

		// A cart line and a checkout charge the variant's price.
		c := h.do("POST", "/api/carts", nil, "X-Buyer-Id", "alice")
		cid := c.body["cart_id"].(string)
		h.mustCode(h.do("PUT", "/api/carts/"+cid+"/items", map[string]any{"product_id": "tee", "sku": "xl", "quantity": 2}, "X-Buyer-Id", "alice"), 200, "")
		r := h.do("PUT", "/api/carts/"+cid+"/items", map[string]any{"product_id": "tee", "sku": "m", "quantity": 1}, "X-Buyer-Id", "alice")
		if amount(r.body["total"]) != 2*3400.0+2900 {
			t.Fatalf("cart total: %s", r.raw)
		}
		o := h.do("POST", "/api/checkout", withBuyer(map[string]any{"cart_id": cid}), "Idempotency-Key", "vp-1", "X-Buyer-Id", "alice")
		h.mustCode(o, 201, "")
		items := o.body["items"].([]any)
		if amount(o.body["total"]) != 9700.0 || amount(items[0].(map[string]any)["unit_price"]) != 3400.0 || amount(items[1].(map[string]any)["unit_price"]) != 2900.0 {
			t.Fatalf("order of variants: %s", o.raw)
		}
		one := h.do("POST", "/api/checkout", withBuyer(map[string]any{"items": []map[string]any{{"product_id": "tee", "sku": "xl", "quantity": 1}}}), "Idempotency-Key", "vp-2", "X-Buyer-Id", "bob")
		if amount(one.body["total"]) != 3400.0 {
			t.Fatalf("checkout of the XL: %s", one.raw)
		}

		// PATCH: absent keeps a variant's price, null clears it, an object sets it.
		patch := func(body map[string]any) resp { return h.staff("PATCH", "/api/products/tee", body) }
		r = patch(map[string]any{"skus": []map[string]any{{"id": "m", "stock": 5, "price": eur(2500)}, {"id": "xl", "stock": 5}},
			"add_skus": []map[string]any{{"id": "xxl", "stock": 2, "price": eur(3900)}}})
		h.mustCode(r, 200, "")
		skus = r.body["skus"].([]any)
		if amount(skus[1].(map[string]any)["price"]) != 2500.0 || amount(skus[2].(map[string]any)["price"]) != 3400.0 || amount(skus[3].(map[string]any)["price"]) != 3900.0 {
			t.Fatalf("after PATCH: %s", r.raw)
		}
		bad(patch(map[string]any{"skus": []map[string]any{{"id": "m", "stock": 5, "price": map[string]any{"amount": 2500, "currency": "gbp"}}}}), "currency_mismatch", "skus.m.price.currency")
		bad(patch(map[string]any{"skus": []map[string]any{{"id": "m", "stock": 5, "price": eur(0)}}}), "invalid_field", "skus.m.price.amount")
		bad(patch(map[string]any{"price": map[string]any{"amount": 2900, "currency": "usd"}}), "invalid_field", "price.currency")
		h.mustCode(patch(map[string]any{"skus": []map[string]any{{"id": "zz", "stock": 1, "price": eur(100)}}}), 400, "unknown_sku")

		// A deal prices every variant, below the cheapest (the M at 25.00).
		deal := func(a int) resp {
			return h.staff("PUT", "/api/products/tee/deal", map[string]any{"price": eur(a), "ends_at": time.Now().Add(time.Minute)})
		}
		h.mustCode(deal(2700), 422, "deal_price_not_lower")
		h.mustCode(deal(2000), 200, "")
		d := h.do("POST", "/api/checkout", withBuyer(map[string]any{"items": []map[string]any{{"product_id": "tee", "sku": "xxl", "quantity": 1}}}), "Idempotency-Key", "vp-3", "X-Buyer-Id", "carol")
		if it := d.body["items"].([]any)[0].(map[string]any); it["deal"] != true || amount(it["unit_price"]) != 2000.0 {
			t.Fatalf("deal on a priced variant: %s", d.raw)
		}
		h.mustCode(h.staff("DELETE", "/api/products/tee/deal", nil), 200, "")

		r = patch(map[string]any{"skus": []map[string]any{{"id": "xl", "stock": 5, "price": nil}}})
		h.mustCode(r, 200, "")
		if amount(r.body["skus"].([]any)[2].(map[string]any)["price"]) != nil {
			t.Fatalf("price not cleared: %s", r.raw)
		}
		x := h.do("POST", "/api/checkout", withBuyer(map[string]any{"items": []map[string]any{{"product_id": "tee", "sku": "xl", "quantity": 1}}}), "Idempotency-Key", "vp-4", "X-Buyer-Id", "dave")
		if amount(x.body["total"]) != 2900.0 {
			t.Fatalf("XL at the product's price again: %s", x.raw)
		}
	})
}
