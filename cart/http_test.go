package cart

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/streamd/streamd/internal/signer"
)

const staffToken = "staff-secret"

type recNotifier struct {
	mu     sync.Mutex
	stock  map[string]int
	orders int
}

func (n *recNotifier) StockChanged(p string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stock == nil {
		n.stock = map[string]int{}
	}
	n.stock[p]++
}

func (n *recNotifier) OrderChanged(Order) { n.mu.Lock(); n.orders++; n.mu.Unlock() }

type harness struct {
	mu  sync.Mutex
	jar map[string]string // buyer name → signed cookie
	t   *testing.T
	svc *Service
	srv *httptest.Server
	reg *prometheus.Registry
	not *recNotifier
}

func newHarness(t *testing.T, st Store, configure func(*Service)) *harness {
	t.Helper()
	h := &harness{t: t, reg: prometheus.NewRegistry(), not: &recNotifier{}}
	sg, err := signer.New([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	h.svc = &Service{Store: st, StaffToken: staffToken, Registerer: h.reg, Notifier: h.not, Signer: sg}
	if configure != nil {
		configure(h.svc)
	}
	if err := h.svc.Initialize(); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.svc.Register(mux)
	h.srv = httptest.NewServer(mux)
	t.Cleanup(func() { h.srv.Close(); _ = h.svc.Close() })
	return h
}

type resp struct {
	code int
	hdr  http.Header
	body map[string]any
	raw  []byte
}

// do sends a request; hdr pairs are header name, value.
func (h *harness) do(method, path string, body any, hdr ...string) resp {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, h.srv.URL+path, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	buyer := ""
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "X-Buyer-Id" { // the test's name for a buyer: sent as that buyer's cookie
			buyer = hdr[i+1]
			if c := h.cookie(buyer); c != "" {
				req.AddCookie(&http.Cookie{Name: BuyerCookie, Value: c})
			}
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	for _, c := range res.Cookies() {
		if c.Name == BuyerCookie && buyer != "" {
			h.setCookie(buyer, c.Value)
		}
	}
	raw, _ := io.ReadAll(res.Body)
	r := resp{code: res.StatusCode, hdr: res.Header, raw: raw}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func (h *harness) cookie(buyer string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.jar[buyer]
}

func (h *harness) setCookie(buyer, v string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.jar == nil {
		h.jar = map[string]string{}
	}
	h.jar[buyer] = v
}

func (h *harness) staff(method, path string, body any) resp {
	return h.do(method, path, body, "Authorization", "Bearer "+staffToken)
}

func (h *harness) mustCode(r resp, code int, errCode string) {
	h.t.Helper()
	if r.code != code || (errCode != "" && r.body["error"] != errCode) {
		h.t.Fatalf("got %d %s, want %d %s", r.code, r.raw, code, errCode)
	}
	if code >= 400 && (r.body["error"] == nil || r.body["message"] == nil) {
		h.t.Fatalf("error without error/message: %s", r.raw)
	}
}

func (h *harness) available(id string) int {
	h.t.Helper()
	r := h.do("GET", "/api/products/"+id, nil)
	h.mustCode(r, 200, "")
	return int(r.body["available"].(float64))
}

// buyerJSON is the buyer part of a checkout body (a pickup: no address).
const buyerJSON = `"buyer":{"email":"ana@example.com","name":"Ana"},"delivery":{"method":"pickup"}`

func withBuyer(m map[string]any) map[string]any {
	m["buyer"] = map[string]any{"email": "ana@example.com", "name": "Ana"}
	m["delivery"] = map[string]any{"method": "pickup"}
	return m
}

// buy checks out as buyer: a name whose signed cookie the harness keeps
// (and whose email is <buyer>@example.com: per-buyer limits count both).
func (h *harness) buy(key, buyer, product string, qty int) resp {
	return h.buyAs(key, buyer, buyer+"@example.com", product, qty)
}

// buyAs checks out as buyer (a cookie) giving email.
func (h *harness) buyAs(key, buyer, email, product string, qty int) resp {
	body := withBuyer(map[string]any{"items": []map[string]any{{"product_id": product, "quantity": qty}}, "stream": "live1", "source": "player"})
	body["buyer"] = map[string]any{"email": email, "name": "Ana"}
	return h.do("POST", "/api/checkout", body, "Idempotency-Key", key, "X-Buyer-Id", buyer)
}

func forEachHarness(t *testing.T, redisDB int, configure func(*Service), f func(t *testing.T, h *harness)) {
	forEachStore(t, redisDB, func(t *testing.T, s Store) { f(t, newHarness(t, s, configure)) })
}

func TestFlashSale(t *testing.T) {
	forEachHarness(t, 5, nil, func(t *testing.T, h *harness) {
		h.mustCode(h.staff("POST", "/api/products", map[string]any{"id": "flash", "title": "Flash", "price": map[string]any{"amount": 4900, "currency": "eur"}, "stock": 10}), 201, "")
		var created, soldOut, other atomic.Int32
		var mu sync.Mutex
		var ids []string
		var wg sync.WaitGroup
		for i := range 500 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := h.buy(fmt.Sprint("key-", i), fmt.Sprint("buyer-", i), "flash", 1)
				switch {
				case r.code == 201:
					created.Add(1)
					mu.Lock()
					ids = append(ids, r.body["order_id"].(string))
					mu.Unlock()
				case r.code == 409 && r.body["error"] == "sold_out":
					soldOut.Add(1)
				default:
					other.Add(1)
					t.Errorf("unexpected %d %s", r.code, r.raw)
				}
			}()
		}
		wg.Wait()
		if created.Load() != 10 || soldOut.Load() != 490 || other.Load() != 0 {
			t.Fatalf("created %d sold_out %d other %d", created.Load(), soldOut.Load(), other.Load())
		}
		if n := h.available("flash"); n != 0 {
			t.Fatalf("available %d", n)
		}
		checkSoldInvariant(t, h.svc.Store)
		r := h.staff("GET", "/api/orders?stream=live1", nil)
		h.mustCode(r, 200, "")
		if os := r.body["orders"].([]any); len(os) != 10 {
			t.Fatalf("%d orders", len(os))
		}
		for _, id := range ids[:3] {
			r := h.staff("POST", "/api/orders/"+id+"/cancel", nil)
			h.mustCode(r, 200, "")
			if r.body["status"] != "refunded" { // a paid order: cancelling refunds it
				t.Fatalf("cancel: %s", r.raw)
			}
		}
		h.mustCode(h.staff("POST", "/api/orders/"+ids[0]+"/cancel", nil), 200, "") // repeat is harmless
		if n := h.available("flash"); n != 3 {
			t.Fatalf("available after 3 cancels: %d", n)
		}
		if v := metricValue(h.svc.m.checkouts.WithLabelValues("sold_out")); v != 490 {
			t.Fatalf("sold_out metric %v", v)
		}
	})
}

func TestCheckoutAPI(t *testing.T) {
	forEachHarness(t, 6, nil, func(t *testing.T, h *harness) {
		h.mustCode(h.staff("POST", "/api/products", map[string]any{"id": "p1", "title": "P1", "price": map[string]any{"amount": 4900, "currency": "EUR"}, "stock": 10, "per_buyer_limit": 3}), 201, "")
		// Idempotency: the same key returns the same order.
		r1 := h.buy("k1", "alice", "p1", 2)
		h.mustCode(r1, 201, "")
		pay := r1.body["payment"].(map[string]any)
		if r1.body["status"] != "paid" || pay["provider"] != "dev" || pay["test_mode"] != true || r1.body["hold_expires_at"] == nil {
			t.Fatalf("order: %s", r1.raw)
		}
		if tot := r1.body["total"].(map[string]any); tot["amount"] != 9800.0 || tot["currency"] != "eur" {
			t.Fatalf("total: %v", tot)
		}
		r2 := h.buy("k1", "alice", "p1", 2)
		h.mustCode(r2, 201, "")
		if r2.body["order_id"] != r1.body["order_id"] || r2.hdr.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("replay: %s", r2.raw)
		}
		if n := h.available("p1"); n != 8 {
			t.Fatalf("available %d", n)
		}
		id := r1.body["order_id"].(string)
		if len(id) != 32 {
			t.Fatalf("order id %q is not 128-bit hex", id)
		}
		g := h.do("GET", "/api/orders/"+id, nil, "X-Buyer-Id", "alice")
		h.mustCode(g, 200, "")
		if g.body["stream"] != "live1" || g.body["source"] != "player" {
			t.Fatalf("attribution: %s", g.raw)
		}
		// Concurrent retries of one key by one buyer (one cookie): one order, one hold.
		h.do("POST", "/api/carts", nil, "X-Buyer-Id", "erin") // erin's browser gets its cookie
		var wg sync.WaitGroup
		got := make([]string, 20)
		for i := range got {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := h.buy("race", "erin", "p1", 1)
				if r.code == 201 {
					got[i] = r.body["order_id"].(string)
				}
			}()
		}
		wg.Wait()
		for _, g := range got {
			if g == "" || g != got[0] {
				t.Fatalf("concurrent same key gave different orders: %v", got)
			}
		}
		if n := h.available("p1"); n != 7 {
			t.Fatalf("available %d after concurrent same-key checkouts", n)
		}
		h.mustCode(h.staff("POST", "/api/orders/"+got[0]+"/cancel", nil), 200, "")
		// Per-buyer limit → 429.
		h.mustCode(h.buy("k2", "alice", "p1", 2), 429, "limit_reached")
		h.mustCode(h.buy("k3", "bob", "p1", 3), 201, "")
		// Sold out says what is left.
		so := h.buy("k4", "carol", "p1", 6)
		h.mustCode(so, 409, "sold_out")
		if so.body["available"] != 5.0 {
			t.Fatalf("sold out body: %s", so.raw)
		}
		// Card as a number, cookie buyer identity.
		r := h.do("POST", "/api/checkout", `{`+buyerJSON+`,"items":[{"product_id":"p1","sku":"default","quantity":1}],"card":42,"source":"showroom"}`, "Idempotency-Key", "k5")
		h.mustCode(r, 201, "")
		if r.body["card"] != "42" || !strings.Contains(r.hdr.Get("Set-Cookie"), BuyerCookie+"=") {
			t.Fatalf("card/cookie: %s %v", r.raw, r.hdr)
		}
		// Illegal transition through the API.
		h.mustCode(h.staff("POST", "/api/orders/"+id+"/cancel", nil), 200, "")
		if n := h.available("p1"); n != 6 {
			t.Fatalf("available after cancel %d", n)
		}
		h.mustCode(h.staff("PATCH", "/api/products/p1", map[string]any{"active": false}), 200, "")
		h.mustCode(h.buy("k6", "dave", "p1", 1), 409, "inactive")
		h.mustCode(h.staff("PATCH", "/api/products/p1", map[string]any{"active": true, "stock": 20, "price": map[string]any{"amount": 100, "currency": "eur"}}), 200, "")
		if n := h.available("p1"); n != 16 {
			t.Fatalf("available after restock %d", n)
		}
		h.not.mu.Lock()
		if h.not.stock["p1"] == 0 {
			t.Error("no StockChanged for p1")
		}
		h.not.mu.Unlock()
	})
}

func TestBadInput(t *testing.T) {
	forEachHarness(t, 6, nil, func(t *testing.T, h *harness) {
		ok := map[string]any{"id": "p1", "title": "P1", "price": map[string]any{"amount": 4900, "currency": "eur"}, "stock": 10}
		h.mustCode(h.do("POST", "/api/products", ok), 401, "unauthorized")
		h.mustCode(h.do("POST", "/api/products", ok, "Authorization", "Bearer wrong"), 401, "unauthorized")
		h.mustCode(h.do("GET", "/api/products/p1", nil), 404, "not_found")
		h.mustCode(h.staff("POST", "/api/products", `{"id":"p1",`), 400, "bad_json")
		h.mustCode(h.staff("POST", "/api/products", `{"id":"p1","title":"x","price":{"amount":1,"currency":"eur"},"bogus":1}`), 400, "bad_json")
		h.mustCode(h.staff("POST", "/api/products", `{"id":"p1","title":"`+strings.Repeat("x", 70000)+`"}`), 413, "body_too_large")
		for _, bad := range []string{
			`{"id":"p1","title":"x","price":{"amount":1,"currency":"eur"},"stock":-1}`,
			`{"id":"p1","title":"x","price":{"amount":-1,"currency":"eur"},"stock":1}`,
			`{"id":"p1","title":"x","price":{"amount":1,"currency":"euro"},"stock":1}`,
			`{"id":"p 1","title":"x","price":{"amount":1,"currency":"eur"},"stock":1}`,
			`{"id":"p1","title":"","price":{"amount":1,"currency":"eur"},"stock":1}`,
			`{"id":"p1","title":"x","price":{"amount":1,"currency":"eur"},"skus":[{"id":"a","stock":1},{"id":"a","stock":1}]}`,
		} {
			h.mustCode(h.staff("POST", "/api/products", bad), 400, "invalid")
		}
		h.mustCode(h.do("GET", "/api/products/p1", nil), 404, "not_found")
		h.mustCode(h.staff("POST", "/api/products", ok), 201, "")
		h.mustCode(h.staff("POST", "/api/products", ok), 409, "exists")
		h.mustCode(h.do("PATCH", "/api/products/p1", map[string]any{"stock": 0}), 401, "unauthorized")
		h.mustCode(h.staff("PATCH", "/api/products/p1", map[string]any{"stock": -5}), 400, "invalid")
		h.mustCode(h.staff("PATCH", "/api/products/nope", map[string]any{"stock": 5}), 404, "not_found")

		item := func(q any) string { return fmt.Sprintf(`{"items":[{"product_id":"p1","quantity":%v}]}`, q) }
		h.mustCode(h.do("POST", "/api/checkout", item(1)), 400, "idempotency_key_required")
		h.mustCode(h.do("POST", "/api/checkout", item(0), "Idempotency-Key", "a"), 400, "invalid")
		h.mustCode(h.do("POST", "/api/checkout", item(-2), "Idempotency-Key", "b"), 400, "invalid")
		h.mustCode(h.do("POST", "/api/checkout", item(1.5), "Idempotency-Key", "c"), 400, "bad_json")
		h.mustCode(h.do("POST", "/api/checkout", `{"items":[]}`, "Idempotency-Key", "d"), 400, "invalid")
		h.mustCode(h.do("POST", "/api/checkout", `{`+buyerJSON+`,"items":[{"product_id":"nope","quantity":1}]}`, "Idempotency-Key", "e"), 404, "not_found")
		h.mustCode(h.do("POST", "/api/checkout", `{`+buyerJSON+`,"items":[{"product_id":"p1","quantity":1},{"product_id":"nope","quantity":1}]}`, "Idempotency-Key", "e2"), 404, "not_found")
		h.mustCode(h.do("POST", "/api/checkout", `{`+buyerJSON+`,"items":[{"product_id":"p1","sku":"xl","quantity":1}]}`, "Idempotency-Key", "e3"), 400, "unknown_sku")
		h.mustCode(h.do("POST", "/api/checkout", `{"items":[`, "Idempotency-Key", "f"), 400, "bad_json")
		h.mustCode(h.do("POST", "/api/checkout", `{"items":[{"product_id":"p1","quantity":1}],"source":"tv"}`, "Idempotency-Key", "g"), 400, "invalid")
		h.mustCode(h.do("POST", "/api/checkout", `{"cart_id":"`+strings.Repeat("a", 70000)+`"}`, "Idempotency-Key", "h"), 413, "body_too_large")
		h.mustCode(h.do("POST", "/api/checkout", item(1), "Idempotency-Key", "i", "Content-Type", "text/plain"), 415, "unsupported_media_type")
		h.mustCode(h.do("POST", "/api/checkout", `{"cart_id":"nope"}`, "Idempotency-Key", "j"), 404, "not_found")
		h.mustCode(h.do("GET", "/api/orders/nope", nil), 404, "not_found")
		h.mustCode(h.do("GET", "/api/orders", nil), 401, "unauthorized")
		h.mustCode(h.do("POST", "/api/orders/x/cancel", nil), 401, "unauthorized")
		// Nothing was written: no orders, full stock, no live holds.
		r := h.staff("GET", "/api/orders", nil)
		h.mustCode(r, 200, "")
		if n := len(r.body["orders"].([]any)); n != 0 {
			t.Fatalf("%d orders written by bad requests", n)
		}
		if n := h.available("p1"); n != 10 {
			t.Fatalf("available %d", n)
		}
		if _, active, _ := h.svc.Store.Sweep(context.Background(), time.Now()); active != 0 {
			t.Fatalf("%d holds left by bad requests", active)
		}
	})
}

func TestCartsAndDeals(t *testing.T) {
	forEachHarness(t, 6, nil, func(t *testing.T, h *harness) {
		h.mustCode(h.staff("POST", "/api/products", map[string]any{"id": "tee", "title": "Tee", "price": map[string]any{"amount": 2900, "currency": "eur"},
			"skus": []map[string]any{{"id": "s", "title": "S", "options": map[string]string{"size": "S"}, "stock": 5}, {"id": "m", "stock": 5}}}), 201, "")
		c := h.do("POST", "/api/carts", nil, "X-Buyer-Id", "alice")
		h.mustCode(c, 201, "")
		cid := c.body["cart_id"].(string)
		h.mustCode(h.do("PUT", "/api/carts/"+cid+"/items", map[string]any{"product_id": "tee", "quantity": 1}, "X-Buyer-Id", "alice"), 400, "sku_required")
		h.mustCode(h.do("PUT", "/api/carts/"+cid+"/items", map[string]any{"product_id": "tee", "sku": "s", "quantity": 3}, "X-Buyer-Id", "alice"), 200, "")
		h.mustCode(h.do("PUT", "/api/carts/"+cid+"/items", map[string]any{"product_id": "tee", "sku": "m", "quantity": 9}, "X-Buyer-Id", "alice"), 409, "sold_out")
		r := h.do("PUT", "/api/carts/"+cid+"/items", map[string]any{"product_id": "tee", "sku": "m", "quantity": 2}, "X-Buyer-Id", "alice")
		h.mustCode(r, 200, "")
		if tot := r.body["total"].(map[string]any); tot["amount"] != 5*2900.0 {
			t.Fatalf("cart total: %s", r.raw)
		}
		if n := h.available("tee"); n != 5 {
			t.Fatalf("available %d", n)
		}
		h.mustCode(h.do("PUT", "/api/carts/"+cid+"/items", map[string]any{"product_id": "tee", "sku": "s", "quantity": 1}, "X-Buyer-Id", "alice"), 200, "")
		r = h.do("DELETE", "/api/carts/"+cid+"/items/tee?sku=m", nil, "X-Buyer-Id", "alice")
		h.mustCode(r, 200, "")
		if items := r.body["items"].([]any); len(items) != 1 {
			t.Fatalf("cart items: %s", r.raw)
		}
		if n := h.available("tee"); n != 9 {
			t.Fatalf("available %d", n)
		}
		o := h.do("POST", "/api/checkout", withBuyer(map[string]any{"cart_id": cid}), "Idempotency-Key", "cart-1", "X-Buyer-Id", "alice")
		h.mustCode(o, 201, "")
		if o.body["status"] != "paid" || o.body["total"].(map[string]any)["amount"] != 2900.0 {
			t.Fatalf("cart order: %s", o.raw)
		}
		h.mustCode(h.do("GET", "/api/carts/"+cid, nil, "X-Buyer-Id", "alice"), 404, "not_found")
		if n := h.available("tee"); n != 9 {
			t.Fatalf("available after cart checkout %d", n)
		}

		// A flash deal: price, cap, per-buyer.
		h.mustCode(h.staff("POST", "/api/products", map[string]any{"id": "mug", "title": "Mug", "price": map[string]any{"amount": 1500, "currency": "eur"}, "stock": 50}), 201, "")
		err := h.svc.SetDeal(context.Background(), "mug", Deal{Price: Money{Amount: 900, Currency: "eur"}, EndsAt: time.Now().Add(time.Hour), Quantity: 3, PerBuyer: 2})
		if err != nil {
			t.Fatal(err)
		}
		p := h.do("GET", "/api/products/mug", nil)
		if d, _ := p.body["deal"].(map[string]any); d == nil || d["price"].(map[string]any)["amount"] != 900.0 || d["remaining"] != 3.0 {
			t.Fatalf("product deal: %s", p.raw)
		}
		d1 := h.buy("d1", "alice", "mug", 2)
		h.mustCode(d1, 201, "")
		if it := d1.body["items"].([]any)[0].(map[string]any); it["deal"] != true || it["unit_price"].(map[string]any)["amount"] != 900.0 {
			t.Fatalf("deal order: %s", d1.raw)
		}
		h.mustCode(h.buy("d2", "alice", "mug", 1), 429, "limit_reached")
		h.mustCode(h.buy("d3", "bob", "mug", 1), 201, "")
		so := h.buy("d4", "carol", "mug", 1)
		h.mustCode(so, 409, "sold_out")
		if so.body["deal"] != true {
			t.Fatalf("deal sold out: %s", so.raw)
		}
		h.mustCode(h.staff("DELETE", "/api/products/mug/deal", nil), 200, "")
		full := h.buy("d5", "carol", "mug", 1)
		h.mustCode(full, 201, "")
		if full.body["total"].(map[string]any)["amount"] != 1500.0 {
			t.Fatalf("after deal: %s", full.raw)
		}
		h.mustCode(h.staff("PUT", "/api/products/mug/deal", map[string]any{"price": map[string]any{"amount": 1000, "currency": "eur"}, "ends_at": time.Now().Add(time.Minute), "quantity": 1}), 200, "")
		h.mustCode(h.staff("PUT", "/api/products/mug/deal", map[string]any{"price": map[string]any{"amount": 1000, "currency": "eur"}, "ends_at": time.Now().Add(-time.Minute)}), 400, "invalid")
		// A "deal" at or above the regular price is no deal.
		for _, price := range []map[string]any{{"amount": 2000, "currency": "eur"}, {"amount": 1500, "currency": "eur"}} {
			h.mustCode(h.staff("PUT", "/api/products/mug/deal", map[string]any{"price": price, "ends_at": time.Now().Add(time.Minute)}), 422, "deal_price_not_lower")
		}
	})
}

// manualProvider authorizes nothing: orders stay pending (like Stripe
// before the buyer pays).
type manualProvider struct{ voids atomic.Int32 }

func (*manualProvider) Name() string { return "manual" }
func (*manualProvider) Authorize(context.Context, *Order) (Payment, bool, error) {
	return Payment{Provider: "manual", TestMode: true, Status: "requires_payment_method", IntentID: "x"}, false, nil
}
func (*manualProvider) Capture(context.Context, *Order) error { return nil }
func (m *manualProvider) Void(context.Context, *Order) error  { m.voids.Add(1); return nil }
func (*manualProvider) Refund(context.Context, *Order, int64, string) (string, error) {
	return "re_manual", nil
}

func TestSweeperReturnsHolds(t *testing.T) {
	mp := &manualProvider{}
	forEachHarness(t, 6, func(s *Service) {
		// A hold time well above a loaded machine's request time: the order must
		// still hold its units when the test looks, then give them back.
		s.HoldTTL, s.SweepInterval, s.Payments = time.Second, 20*time.Millisecond, mp
	}, func(t *testing.T, h *harness) {
		h.mustCode(h.staff("POST", "/api/products", map[string]any{"id": "s1", "title": "S", "price": map[string]any{"amount": 100, "currency": "eur"}, "stock": 5}), 201, "")
		c := h.do("POST", "/api/carts", nil, "X-Buyer-Id", "alice")
		cid := c.body["cart_id"].(string)
		h.mustCode(h.do("PUT", "/api/carts/"+cid+"/items", map[string]any{"product_id": "s1", "quantity": 2}, "X-Buyer-Id", "alice"), 200, "")
		o := h.buy("k", "b", "s1", 3)
		h.mustCode(o, 201, "")
		if o.body["status"] != "pending" {
			t.Fatalf("order: %s", o.raw)
		}
		if n := h.available("s1"); n != 0 {
			t.Fatalf("available %d", n)
		}
		deadline := time.Now().Add(5 * time.Second)
		for h.available("s1") != 5 {
			if time.Now().After(deadline) {
				t.Fatalf("holds not returned: available %d", h.available("s1"))
			}
			time.Sleep(20 * time.Millisecond)
		}
		for {
			g := h.do("GET", "/api/orders/"+o.body["order_id"].(string), nil, "X-Buyer-Id", "b")
			if g.body["status"] == "expired" && mp.voids.Load() > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("order not expired: %s", g.raw)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if mp.voids.Load() == 0 {
			t.Fatal("expired order's payment not voided")
		}
		if v := metricValue(h.svc.m.holdsActive); v != 0 {
			t.Fatalf("holds_active %v", v)
		}
	})
}

func TestBoltDurability(t *testing.T) {
	path := filepath.Join(t.TempDir(), "streamd.db")
	db := openBolt(t, path)
	st, err := NewBoltStore(db)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, st, nil)
	if err := h.svc.SeedDemo(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.SeedDemo(context.Background()); err != nil { // idempotent
		t.Fatal(err)
	}
	r := h.buy("dur-1", "alice", "mug-studio", 2)
	h.mustCode(r, 201, "")
	id := r.body["order_id"].(string)
	h.srv.Close()
	_ = h.svc.Close()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openBolt(t, path)
	defer db.Close()
	st, err = NewBoltStore(db)
	if err != nil {
		t.Fatal(err)
	}
	o, err := st.GetOrder(context.Background(), id)
	if err != nil || o.Status != StatusPaid || o.Items[0].Quantity != 2 {
		t.Fatalf("order after reopen: %+v %v", o, err)
	}
	if o2, err := st.OrderByKey(context.Background(), "dur-1"); err != nil || o2.ID != id {
		t.Fatalf("idempotency record after reopen: %v", err)
	}
	p, _ := st.GetProduct(context.Background(), "mug-studio")
	if p.Available != 48 || p.SKUs[0].Sold != 2 {
		t.Fatalf("stock after reopen: %+v", p)
	}
	ps, _ := st.ListProducts(context.Background())
	if len(ps) != 3 {
		t.Fatalf("%d demo products", len(ps))
	}
}

func metricValue(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return 0
}
