package cart

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// event posts a Stripe event, signed now with the webhook secret.
func (h *harness) event(id, typ, object string) resp {
	h.t.Helper()
	return h.signedEvent(id, typ, object, whSecret, time.Now())
}

// TestStripeRefunds: the address and email Stripe's elements collected land
// on the order; a line refund is a Stripe Refund of that line's amount with
// an idempotency key naming the lines; charge.refunded (ours, or one made in
// the dashboard) is applied once.
func TestStripeRefunds(t *testing.T) {
	mock := startStripeMock(t)
	rec, proxyURL := newRecordingProxy(t, mock)
	prov := NewStripeProvider(StripeConfig{SecretKey: "sk_test_123", WebhookSecret: whSecret, APIURL: proxyURL})
	forEachHarness(t, 6, func(s *Service) { s.Payments = prov }, func(t *testing.T, h *harness) {
		rec.mu.Lock()
		rec.calls = nil
		rec.mu.Unlock()
		h.mustCode(h.staff("POST", "/api/products", map[string]any{"id": "p1", "title": "P1", "price": map[string]any{"amount": 4900, "currency": "eur"}, "stock": 5}), 201, "")
		h.mustCode(h.staff("POST", "/api/products", map[string]any{"id": "p2", "title": "P2", "price": map[string]any{"amount": 1500, "currency": "eur"}, "stock": 5}), 201, "")
		// With Stripe only the delivery method is asked; Stripe collects the rest.
		r := h.do("POST", "/api/checkout", map[string]any{"delivery": map[string]any{"method": "ship"},
			"items": []map[string]any{{"product_id": "p1", "quantity": 2}, {"product_id": "p2", "quantity": 1}}}, "Idempotency-Key", "sr1", "X-Buyer-Id", "eve")
		h.mustCode(r, 201, "")
		id, pi := r.body["order_id"].(string), r.body["payment"].(map[string]any)["intent_id"].(string)
		if c := rec.find("POST", "/v1/payment_intents"); len(c) != 1 || c[0].form.Get("metadata[delivery]") != "ship" {
			t.Fatalf("payment intent: %+v", c)
		}
		intent := fmt.Sprintf(`{"id":%q,"object":"payment_intent","status":"requires_capture","metadata":{"order_id":%q},"receipt_email":"eve@example.com",
			"shipping":{"name":"Eve Adams","address":{"line1":"1 Main St","line2":"","postal_code":"02139","city":"Cambridge","state":"MA","country":"US"}}}`, pi, id)
		h.mustCode(h.event("evt_auth_"+id, "payment_intent.amount_capturable_updated", intent), 200, "")
		o := h.staff("GET", "/api/orders/"+id, nil)
		if o.body["status"] != "paid" || o.body["buyer"].(map[string]any)["email"] != "eve@example.com" || o.body["buyer"].(map[string]any)["name"] != "Eve Adams" ||
			o.body["delivery"].(map[string]any)["address"].(map[string]any)["postal_code"] != "02139" {
			t.Fatalf("order after the payment: %s", o.raw)
		}

		// Refund the second line: 15.00 of the 113.00 charged.
		h.mustCode(h.staff("POST", "/api/orders/"+id+"/refund", map[string]any{"lines": []int{1}}), 200, "")
		refunds := rec.find("POST", "/v1/refunds")
		if len(refunds) != 1 || refunds[0].form.Get("amount") != "1500" || refunds[0].form.Get("payment_intent") != pi ||
			refunds[0].idemKey != "streamd-refund-"+id+"-1" || refunds[0].form.Get("metadata[order_id]") != id {
			t.Fatalf("refund call: %+v", refunds)
		}
		h.mustCode(h.staff("POST", "/api/orders/"+id+"/refund", map[string]any{"lines": []int{1}}), 409, "illegal_transition")
		if n := len(rec.find("POST", "/v1/refunds")); n != 1 {
			t.Fatalf("a repeated refund called Stripe again (%d)", n)
		}
		if n := h.available("p2"); n != 5 {
			t.Fatalf("p2 available %d: not restocked before shipping", n)
		}
		// Stripe tells about our refund: already known, nothing changes.
		charge := func(refunded int) string {
			return fmt.Sprintf(`{"id":"ch_1","object":"charge","amount":11300,"amount_refunded":%d,"refunded":%v,"payment_intent":%q,"refunds":{"object":"list","data":[{"id":"re_x","object":"refund"}]}}`,
				refunded, refunded == 11300, pi)
		}
		h.mustCode(h.event("evt_ref1_"+id, "charge.refunded", charge(1500)), 200, "")
		if o := h.staff("GET", "/api/orders/"+id, nil); o.body["status"] != "partially_refunded" || len(o.body["refunds"].([]any)) != 1 {
			t.Fatalf("after our own refund's event: %s", o.raw)
		}
		// The rest refunded in the dashboard: the order follows, once.
		h.mustCode(h.event("evt_ref2_"+id, "charge.refunded", charge(11300)), 200, "")
		d := h.event("evt_ref2_"+id, "charge.refunded", charge(11300))
		h.mustCode(d, 200, "")
		if d.body["duplicate"] != true {
			t.Fatalf("duplicate delivery: %s", d.raw)
		}
		h.mustCode(h.event("evt_ref3_"+id, "charge.refunded", charge(11300)), 200, "") // a new event, same total
		o = h.staff("GET", "/api/orders/"+id, nil)
		rf := o.body["refunds"].([]any)
		if o.body["status"] != "refunded" || len(rf) != 2 || rf[1].(map[string]any)["amount"].(map[string]any)["amount"] != 9800.0 ||
			!strings.Contains(string(o.raw), `"refunded":true`) {
			t.Fatalf("after the dashboard refund: %s", o.raw)
		}
		if n := len(rec.find("POST", "/v1/refunds")); n != 1 {
			t.Fatalf("the webhook made refund calls (%d)", n)
		}
		// Details the buyer did give go on the PaymentIntent (Stripe's receipt, shipping).
		h.mustCode(h.do("POST", "/api/checkout", map[string]any{"buyer": map[string]any{"email": "fay@example.com", "name": "Fay"},
			"delivery": map[string]any{"method": "ship", "address": map[string]any{"line1": "2 Rue X", "postal_code": "75002", "city": "Paris", "country": "FR"}},
			"items":    []map[string]any{{"product_id": "p2", "quantity": 1}}}, "Idempotency-Key", "sr2", "X-Buyer-Id", "fay"), 201, "")
		c := rec.find("POST", "/v1/payment_intents")
		if f := c[len(c)-1].form; f.Get("receipt_email") != "fay@example.com" || f.Get("shipping[name]") != "Fay" || f.Get("shipping[address][city]") != "Paris" ||
			f.Get("shipping[address][country]") != "FR" {
			t.Fatalf("payment intent params: %v", f)
		}
	})
}
