package cart

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/streamd/streamd/internal/testenv"
)

// startStripeMock runs stripe-mock on a free loopback port; killed by PID at cleanup.
func startStripeMock(t *testing.T) string {
	t.Helper()
	bin := testenv.StripeMock(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	cmd := exec.Command(bin, "-http-addr", addr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return "http://" + addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("stripe-mock did not start on %s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type stripeCall struct {
	method, path, idemKey string
	form                  url.Values
}

// recordingProxy forwards to stripe-mock and records what streamd sent.
type recordingProxy struct {
	mu    sync.Mutex
	calls []stripeCall
}

func (p *recordingProxy) find(method, pathPrefix string) []stripeCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []stripeCall
	for _, c := range p.calls {
		if c.method == method && strings.HasPrefix(c.path, pathPrefix) {
			out = append(out, c)
		}
	}
	return out
}

func newRecordingProxy(t *testing.T, target string) (*recordingProxy, string) {
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	p := &recordingProxy{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		p.mu.Lock()
		p.calls = append(p.calls, stripeCall{r.Method, r.URL.Path, r.Header.Get("Idempotency-Key"), form})
		p.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return p, srv.URL
}

const whSecret = "whsec_test_secret"

func (h *harness) webhook(id, typ, intent, orderID, secret string, at time.Time) resp {
	h.t.Helper()
	return h.signedEvent(id, typ, fmt.Sprintf(`{"id":%q,"object":"payment_intent","status":"requires_capture","metadata":{"order_id":%q}}`, intent, orderID), secret, at)
}

// signedEvent posts a Stripe event whose data.object is object (JSON), signed with secret at at.
func (h *harness) signedEvent(id, typ, object, secret string, at time.Time) resp {
	h.t.Helper()
	payload := fmt.Sprintf(`{"id":%q,"object":"event","api_version":"2020-08-27","created":%d,"type":%q,"data":{"object":%s}}`, id, at.Unix(), typ, object)
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: []byte(payload), Secret: secret, Timestamp: at})
	return h.do("POST", "/api/stripe/webhook", string(sp.Payload), "Stripe-Signature", sp.Header)
}

func TestStripe(t *testing.T) {
	mock := startStripeMock(t)
	rec, proxyURL := newRecordingProxy(t, mock)
	prov := NewStripeProvider(StripeConfig{SecretKey: "sk_test_123", WebhookSecret: whSecret, APIURL: proxyURL})
	h := newHarness(t, newBoltStore(t), func(s *Service) { s.Payments = prov })
	ctx := context.Background()
	h.mustCode(h.staff("POST", "/api/products", map[string]any{"id": "p1", "title": "P1", "price": map[string]any{"amount": 4900, "currency": "eur"}, "stock": 5}), 201, "")

	order := func(key string, qty int) (id, intent string) {
		r := h.buy(key, "buyer-"+key, "p1", qty)
		h.mustCode(r, 201, "")
		pay := r.body["payment"].(map[string]any)
		if r.body["status"] != "pending" || pay["provider"] != "stripe" || pay["test_mode"] != true ||
			!strings.Contains(pay["client_secret"].(string), "_secret_") || !strings.HasPrefix(pay["intent_id"].(string), "pi_") {
			t.Fatalf("stripe checkout: %s", r.raw)
		}
		return r.body["order_id"].(string), pay["intent_id"].(string)
	}
	status := func(id string) string {
		o, err := h.svc.GetOrder(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return string(o.Status)
	}

	// 1. PaymentIntent: manual capture, our idempotency key, metadata.
	o1, pi1 := order("s1", 2)
	calls := rec.find("POST", "/v1/payment_intents")
	if len(calls) != 1 {
		t.Fatalf("%d PaymentIntent calls", len(calls))
	}
	c := calls[0]
	if c.form.Get("capture_method") != "manual" || c.form.Get("amount") != "9800" || c.form.Get("currency") != "eur" ||
		c.form.Get("metadata[order_id]") != o1 || c.idemKey != "streamd-order-s1" {
		t.Fatalf("PaymentIntent request: %+v", c)
	}
	if n := h.available("p1"); n != 3 {
		t.Fatalf("available %d while authorizing", n)
	}
	// Retrying the checkout returns the same order and creates no PaymentIntent.
	h.mustCode(h.buy("s1", "buyer-s1", "p1", 2), 201, "")
	if n := len(rec.find("POST", "/v1/payment_intents")); n != 1 {
		t.Fatalf("retry created a PaymentIntent (%d)", n)
	}

	// 2. Webhook signatures.
	now := time.Now()
	h.mustCode(h.webhook("evt_bad", "payment_intent.amount_capturable_updated", pi1, o1, "whsec_wrong", now), 400, "bad_signature")
	h.mustCode(h.webhook("evt_old", "payment_intent.amount_capturable_updated", pi1, o1, whSecret, now.Add(-10*time.Minute)), 400, "bad_signature")
	h.mustCode(h.do("POST", "/api/stripe/webhook", `{"id":"evt_x"}`), 400, "bad_signature")
	if status(o1) != "pending" {
		t.Fatal("a rejected webhook changed the order")
	}
	// A valid event from another PaymentIntent is ignored.
	h.mustCode(h.webhook("evt_other", "payment_intent.amount_capturable_updated", "pi_other", o1, whSecret, now), 200, "")
	if status(o1) != "pending" {
		t.Fatal("an event of another PaymentIntent changed the order")
	}

	// 3. Authorized → holds committed, captured, paid.
	r := h.webhook("evt_1", "payment_intent.amount_capturable_updated", pi1, o1, whSecret, now)
	h.mustCode(r, 200, "")
	if status(o1) != "paid" {
		t.Fatalf("order %s after authorization", status(o1))
	}
	if caps := rec.find("POST", "/v1/payment_intents/"+pi1+"/capture"); len(caps) != 1 || caps[0].idemKey != "streamd-capture-"+o1 {
		t.Fatalf("capture calls: %+v", caps)
	}
	p, _ := h.svc.GetProduct(ctx, "p1")
	if p.SKUs[0].Sold != 2 || p.Available != 3 {
		t.Fatalf("stock after payment: %+v", p.SKUs[0])
	}
	// Duplicate delivery: acknowledged, nothing done twice.
	d := h.webhook("evt_1", "payment_intent.amount_capturable_updated", pi1, o1, whSecret, now)
	h.mustCode(d, 200, "")
	if d.body["duplicate"] != true || len(rec.find("POST", "/v1/payment_intents/"+pi1+"/capture")) != 1 {
		t.Fatalf("duplicate: %s", d.raw)
	}

	// 4. payment_failed releases the holds.
	o2, pi2 := order("s2", 3)
	if n := h.available("p1"); n != 0 {
		t.Fatalf("available %d", n)
	}
	h.mustCode(h.webhook("evt_2", "payment_intent.payment_failed", pi2, o2, whSecret, now), 200, "")
	if status(o2) != "cancelled" || h.available("p1") != 3 {
		t.Fatalf("after payment_failed: %s, available %d", status(o2), h.available("p1"))
	}

	// 5. Authorized after the hold is gone: the authorization is cancelled,
	// nobody is charged, nothing is sold.
	o3, pi3 := order("s3", 1)
	o3v, _ := h.svc.GetOrder(ctx, o3)
	if _, err := h.svc.Store.Release(ctx, "p1", o3v.Items[0].HoldID); err != nil { // as if it expired
		t.Fatal(err)
	}
	h.mustCode(h.webhook("evt_3", "payment_intent.amount_capturable_updated", pi3, o3, whSecret, now), 200, "")
	if status(o3) != "expired" {
		t.Fatalf("order %s after late authorization", status(o3))
	}
	if len(rec.find("POST", "/v1/payment_intents/"+pi3+"/cancel")) != 1 || len(rec.find("POST", "/v1/payment_intents/"+pi3+"/capture")) != 0 {
		t.Fatal("late authorization was not cancelled")
	}
	if p, _ := h.svc.GetProduct(ctx, "p1"); p.SKUs[0].Sold != 2 || p.Available != 3 {
		t.Fatalf("stock after late authorization: %+v", p.SKUs[0])
	}

	// 6. payment_intent.canceled releases; staff cancel of a paid order refunds.
	o4, pi4 := order("s4", 1)
	h.mustCode(h.webhook("evt_4", "payment_intent.canceled", pi4, o4, whSecret, now), 200, "")
	if status(o4) != "cancelled" || h.available("p1") != 3 {
		t.Fatalf("after canceled: %s", status(o4))
	}
	h.mustCode(h.staff("POST", "/api/orders/"+o1+"/cancel", nil), 200, "")
	if refunds := rec.find("POST", "/v1/refunds"); len(refunds) != 1 || refunds[0].form.Get("payment_intent") != pi1 {
		t.Fatalf("refund calls: %+v", refunds)
	}
	if n := h.available("p1"); n != 5 {
		t.Fatalf("available after refund %d", n)
	}
	var body map[string]any
	_ = json.Unmarshal(h.staff("GET", "/api/orders", nil).raw, &body)
	for _, o := range body["orders"].([]any) {
		if o.(map[string]any)["payment"].(map[string]any)["client_secret"] != nil {
			t.Fatal("staff listing leaks client secrets")
		}
	}
}
