package app

import (
	"bytes"
	"image/png"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestCardAPI: card pushes reach overlay viewers with a seq and a deal the
// cart then charges; bad pushes get clear errors and publish nothing.
func TestCardAPI(t *testing.T) {
	a := startApp(t, nil)
	createStream(t, a, "cards")
	if code := api(t, "POST", a.BaseURL()+"/api/products", testStaff, map[string]any{"id": "mug", "title": "Mug", "price": map[string]any{"amount": 2400, "currency": "eur"}, "stock": 5}, nil); code != 201 {
		t.Fatalf("product: %d", code)
	}
	if _, res, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(a.BaseURL(), "http")+"/ws/nosuch", nil); err == nil || res == nil || res.StatusCode != 404 {
		t.Fatalf("overlay socket of an unknown stream: %v", err)
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(a.BaseURL(), "http")+"/ws/cards", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	var snap map[string]any
	if err := ws.ReadJSON(&snap); err != nil || snap["type"] != "snapshot" {
		t.Fatalf("snapshot: %v %v", snap, err)
	}

	url := a.BaseURL() + "/api/streams/cards/cards"
	bad := []struct {
		name   string
		token  string
		body   string
		status int
		code   string
	}{
		{"no token", "", `{"action":"show","product_id":"mug"}`, 401, "unauthorized"},
		{"wrong token", "nope", `{"action":"show","product_id":"mug"}`, 401, "unauthorized"},
		{"unknown product", testStaff, `{"action":"show","product_id":"nosuch"}`, 404, "unknown_product"},
		{"bad action", testStaff, `{"action":"explode","product_id":"mug"}`, 400, "invalid"},
		{"no product", testStaff, `{"action":"show"}`, 400, "invalid"},
		{"malformed", testStaff, `{"action":`, 400, "bad_json"},
		{"unknown field", testStaff, `{"action":"show","product_id":"mug","x":1}`, 400, "bad_json"},
		{"oversized", testStaff, `{"action":"show","product_id":"` + strings.Repeat("m", 10000) + `"}`, 413, "body_too_large"},
		{"deal without price", testStaff, `{"action":"show","product_id":"mug","deal":{"duration_s":5}}`, 400, "invalid"},
		{"deal in the past", testStaff, `{"action":"show","product_id":"mug","deal":{"price":{"amount":100,"currency":"eur"},"ends_at":"2001-01-01T00:00:00Z"}}`, 400, "invalid"},
		{"deal above the price", testStaff, `{"action":"show","product_id":"mug","deal":{"price":{"amount":2500,"currency":"eur"},"duration_s":5}}`, 422, "deal_price_not_lower"},
		{"deal at the price", testStaff, `{"action":"show","product_id":"mug","deal":{"price":{"amount":2400,"currency":"eur"},"duration_s":5}}`, 422, "deal_price_not_lower"},
		{"negative cap", testStaff, `{"action":"show","product_id":"mug","deal":{"price":{"amount":100,"currency":"eur"},"duration_s":5,"quantity":-1}}`, 400, "invalid"},
	}
	for _, c := range bad {
		status, body, _ := rawPost(t, url, "application/json", c.token, []byte(c.body))
		if status != c.status || body["error"] != c.code || body["message"] == "" {
			t.Errorf("%s: %d %v, want %d %s", c.name, status, body, c.status, c.code)
		}
	}
	if status, body, _ := rawPost(t, a.BaseURL()+"/api/streams/nosuch/cards", "application/json", testStaff, []byte(`{"action":"hide"}`)); status != 404 {
		t.Errorf("unknown stream: %d %v", status, body)
	}

	// A good push with a deal: one event, the deal price charged at checkout.
	push := func(idem string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", url, bytes.NewBufferString(`{"action":"show","product_id":"mug","deal":{"price":{"amount":1900,"currency":"eur"},"duration_s":60,"quantity":2}}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+testStaff)
		req.Header.Set("Idempotency-Key", idem)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var m map[string]any
		_ = jsonDecode(res.Body, &m)
		return res.StatusCode, m
	}
	code1, r1 := push("tap-1")
	code2, r2 := push("tap-1") // a double tap
	if code1 != 201 || code2 != 200 || r1["seq"] != r2["seq"] {
		t.Fatalf("double tap: %d %v / %d %v", code1, r1, code2, r2)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	var ev map[string]any
	for {
		if err := ws.ReadJSON(&ev); err != nil {
			t.Fatalf("no card event: %v", err)
		}
		if ev["type"] == "card" {
			break
		}
	}
	card, _ := ev["card"].(map[string]any)
	if ev["action"] != "show" || card["product_id"] != "mug" || card["deal"] == nil || ev["seq"] != r1["seq"] {
		t.Fatalf("card event %v (push answered seq %v)", ev, r1["seq"])
	}
	// Exactly one card event for the two taps.
	_ = ws.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	for {
		var more map[string]any
		if err := ws.ReadJSON(&more); err != nil {
			break
		}
		if more["type"] == "card" {
			t.Fatalf("a double tap pushed twice: %v", more)
		}
	}
	var order struct {
		Total struct {
			Amount int `json:"amount"`
		} `json:"total"`
	}
	req, _ := http.NewRequest("POST", a.BaseURL()+"/api/checkout", strings.NewReader(`{"items":[{"product_id":"mug","quantity":1}],"stream":"cards","source":"player","buyer":{"email":"ana@example.com","name":"Ana"},"delivery":{"method":"pickup"}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "deal-buy-1")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = jsonDecode(res.Body, &order)
	res.Body.Close()
	if res.StatusCode != 201 || order.Total.Amount != 1900 {
		t.Fatalf("checkout during the deal: %d, charged %d, want 1900", res.StatusCode, order.Total.Amount)
	}
}

// TestVisitQR: the showroom's QR code is a PNG for known showrooms only.
func TestVisitQR(t *testing.T) {
	a := startApp(t, nil)
	createStream(t, a, "shop1")
	res, err := http.Get(a.BaseURL() + "/visit/shop1/qr.png?size=256")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	img, err := png.Decode(res.Body)
	if res.StatusCode != 200 || err != nil || img.Bounds().Dx() != 256 {
		t.Fatalf("qr: %d %v", res.StatusCode, err)
	}
	for _, u := range []string{"/visit/nosuch/qr.png", "/visit/shop1/qr.png?size=9"} {
		r, err := http.Get(a.BaseURL() + u)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode < 400 {
			t.Fatalf("%s: %d", u, r.StatusCode)
		}
	}
}
