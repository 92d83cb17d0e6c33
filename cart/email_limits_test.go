package cart

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestEmailLimitRace: N concurrent checkouts of 1 unit, one email, N
// buyer cookies, a limit of 2 (the product's, or a flash deal's): exactly
// 2 orders, the others 429 limit_reached with their holds given back.
// Counting the email anywhere but in the step that creates the order lets
// several through.
func TestEmailLimitRace(t *testing.T) {
	const trials, n = 6, 16
	forEachHarness(t, 6, nil, func(t *testing.T, h *harness) {
		for i := range trials {
			pid := fmt.Sprint("elr", i)
			body := map[string]any{"id": pid, "title": "Race", "price": map[string]any{"amount": 1000, "currency": "eur"}, "stock": 100}
			deal := i%2 == 1
			if !deal {
				body["per_buyer_limit"] = 2
			}
			h.mustCode(h.staff("POST", "/api/products", body), 201, "")
			if deal {
				h.mustCode(h.staff("PUT", "/api/products/"+pid+"/deal", map[string]any{"price": map[string]any{"amount": 500, "currency": "eur"},
					"ends_at": time.Now().Add(time.Hour), "per_buyer": 2}), 200, "")
			}
			res := atOnce(n, func(j int) resp {
				return h.buyAs(fmt.Sprint("elr-", i, "-", j), fmt.Sprint("cookie-", i, "-", j), "same@example.com", pid, 1)
			})
			created := 0
			for j, r := range res {
				switch {
				case r.code == 201:
					created++
				case r.code == 429 && r.body["error"] == "limit_reached":
					if r.body["limit"] != 2.0 || r.body["have"] != 2.0 || r.body["deal"] != deal || r.body["product_id"] != pid {
						t.Errorf("trial %d request %d: %s", i, j, r.raw)
					}
				default:
					t.Fatalf("trial %d request %d: %d %s", i, j, r.code, r.raw)
				}
			}
			if created != 2 {
				t.Errorf("trial %d (deal %v): %d orders for one email with a limit of 2", i, deal, created)
			}
			if a := h.available(pid); a != 100-created {
				t.Errorf("trial %d: available %d after %d orders: refused checkouts kept holds", i, a, created)
			}
		}
		checkSoldInvariant(t, h.svc.Store)
	})
}

// atOnce runs f(0..n-1) in n goroutines released together and returns
// their answers.
func atOnce(n int, f func(i int) resp) []resp {
	var wg sync.WaitGroup
	res := make([]resp, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			res[i] = f(i)
		}()
	}
	close(start)
	wg.Wait()
	return res
}

// TestEmailLimitAPI: the email's limit answers like the cookie's (429
// limit_reached with its fields); a paid and refunded order keeps its
// units counted; a cart at a deal is counted at that deal and keeps its
// holds when refused.
func TestEmailLimitAPI(t *testing.T) {
	forEachHarness(t, 6, nil, func(t *testing.T, h *harness) {
		h.mustCode(h.staff("POST", "/api/products", map[string]any{"id": "el", "title": "EL", "price": map[string]any{"amount": 1000, "currency": "eur"},
			"stock": 10, "per_buyer_limit": 2}), 201, "")
		first := h.buyAs("el-1", "x", "ana@example.com", "el", 2)
		h.mustCode(first, 201, "")
		r := h.buyAs("el-2", "y", "ANA@example.com", "el", 1)
		h.mustCode(r, 429, "limit_reached")
		if r.body["product_id"] != "el" || r.body["limit"] != 2.0 || r.body["have"] != 2.0 || r.body["deal"] != false {
			t.Fatalf("limit answer: %s", r.raw)
		}
		h.mustCode(h.buyAs("el-3", "y", "bea@example.com", "el", 2), 201, "")
		// Refunded (restocked) units were bought: the allowance stays used.
		h.mustCode(h.staff("POST", "/api/orders/"+first.body["order_id"].(string)+"/refund", map[string]any{"restock": true}), 200, "")
		h.mustCode(h.buyAs("el-4", "z", "ana@example.com", "el", 1), 429, "limit_reached")
		if a := h.available("el"); a != 8 {
			t.Fatalf("available %d, want 8 (2 refunded back to stock, 2 sold)", a)
		}

		// A cart at a flash deal: the email is counted at the deal.
		h.mustCode(h.staff("POST", "/api/products", map[string]any{"id": "dm", "title": "DM", "price": map[string]any{"amount": 1000, "currency": "eur"}, "stock": 10}), 201, "")
		h.mustCode(h.staff("PUT", "/api/products/dm/deal", map[string]any{"price": map[string]any{"amount": 500, "currency": "eur"},
			"ends_at": time.Now().Add(time.Hour), "per_buyer": 1}), 200, "")
		h.mustCode(h.buyAs("dm-1", "x", "cleo@example.com", "dm", 1), 201, "")
		c := h.do("POST", "/api/carts", nil, "X-Buyer-Id", "w")
		h.mustCode(c, 201, "")
		cid := c.body["cart_id"].(string)
		h.mustCode(h.do("PUT", "/api/carts/"+cid+"/items", map[string]any{"product_id": "dm", "quantity": 1}, "X-Buyer-Id", "w"), 200, "")
		co := func(key, email string) resp {
			return h.do("POST", "/api/checkout", map[string]any{"cart_id": cid, "buyer": map[string]any{"email": email, "name": "C"},
				"delivery": map[string]any{"method": "pickup"}}, "Idempotency-Key", key, "X-Buyer-Id", "w")
		}
		r = co("dm-2", " Cleo@Example.com")
		h.mustCode(r, 429, "limit_reached")
		if r.body["deal"] != true || r.body["have"] != 1.0 || r.body["limit"] != 1.0 {
			t.Fatalf("deal limit answer: %s", r.raw)
		}
		if a := h.available("dm"); a != 8 {
			t.Fatalf("available %d, want 8: the cart keeps its hold", a)
		}
		o := co("dm-3", "dan@example.com")
		h.mustCode(o, 201, "")
		if it := o.body["items"].([]any)[0].(map[string]any); it["deal"] != true {
			t.Fatalf("cart order: %s", o.raw)
		}
		checkSoldInvariant(t, h.svc.Store)
	})
}

// TestEmailHash: the counters key a normalised address, hashed.
func TestEmailHash(t *testing.T) {
	a, b := emailHash(" Ana@Example.COM\t"), emailHash("ana@example.com")
	if a != b || len(a) != 64 || a == "ana@example.com" {
		t.Fatalf("emailHash: %q %q", a, b)
	}
	if claims, err := (&Service{}).emailClaims(context.Background(), &Contact{Email: " "}, []Hold{{ProductID: "p"}}, time.Now()); claims != nil || err != nil {
		t.Fatalf("no email, no claims: %v %v", claims, err)
	}
}
