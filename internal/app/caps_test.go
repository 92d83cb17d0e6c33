package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/streamd/streamd/cart"
)

// TestFreeTextCaps: oversized free text is refused at creation with 422
// naming the field and the limit; unsafe image URLs and a deal in another
// currency are refused; and a product at every cap (worst-case characters
// for JSON, 200 SKUs) can still have its card pushed through the overlay.
func TestFreeTextCaps(t *testing.T) {
	a := startApp(t, nil)
	createStream(t, a, "caps")
	base := func() map[string]any {
		return map[string]any{"id": "capped", "title": "Capped", "price": map[string]any{"amount": 100, "currency": "eur"}, "stock": 5}
	}
	with := func(k string, v any) []byte {
		m := base()
		m[k] = v
		b, _ := json.Marshal(m)
		return b
	}
	refused := []struct {
		name, field, code string
		limit             float64
		body              []byte
	}{
		{"40,000-char description", "description", "too_long", cart.MaxDescriptionLen, with("description", strings.Repeat("d", 40000))},
		{"long title", "title", "too_long", cart.MaxTitleLen, with("title", strings.Repeat("t", cart.MaxTitleLen+1))},
		{"long image URL", "images[0]", "too_long", cart.MaxImageURLLen, with("images", []string{"https://x.example/" + strings.Repeat("i", cart.MaxImageURLLen)})},
		{"javascript: image", "images[0]", "invalid_field", 0, with("images", []string{"javascript:alert(1)"})},
		{"data: page", "images[1]", "invalid_field", 0, with("images", []string{"/ok.jpg", "data:text/html;base64,PHNjcmlwdD4="})},
		{"long data: image", "images[0]", "too_long", cart.MaxDataImageLen, with("images", []string{"data:image/png;base64," + strings.Repeat("A", cart.MaxDataImageLen)})},
		{"protocol-relative image", "images[0]", "invalid_field", 0, with("images", []string{"//evil.example/x.jpg"})},
		{"long SKU title", "skus[0].title", "too_long", cart.MaxSKUTitleLen, with("skus", []map[string]any{{"id": "s", "title": strings.Repeat("s", cart.MaxSKUTitleLen+1), "stock": 1}})},
		{"long option value", "skus[0].options.size", "too_long", cart.MaxOptionValueLen, with("skus", []map[string]any{{"id": "s", "options": map[string]string{"size": strings.Repeat("o", cart.MaxOptionValueLen+1)}, "stock": 1}})},
	}
	for _, c := range refused {
		status, body, _ := rawPost(t, a.BaseURL()+"/api/products", "application/json", testStaff, c.body)
		lim, _ := body["limit"].(float64)
		if status != 422 || body["error"] != c.code || body["field"] != c.field || lim != c.limit || body["message"] == "" {
			t.Errorf("%s: %d %v, want 422 %s field %s limit %v", c.name, status, body, c.code, c.field, c.limit)
		}
	}
	// PATCH is held to the same caps.
	if code := api(t, "POST", a.BaseURL()+"/api/products", testStaff, base(), nil); code != 201 {
		t.Fatalf("create: %d", code)
	}
	out := map[string]any{}
	if code := api(t, "PATCH", a.BaseURL()+"/api/products/capped", testStaff, map[string]any{"description": strings.Repeat("d", 40000)}, &out); code != 422 || out["field"] != "description" {
		t.Errorf("patch description: %d %v", code, out)
	}
	out = map[string]any{}
	if code := api(t, "PATCH", a.BaseURL()+"/api/products/capped", testStaff, map[string]any{"images": []string{"javascript:alert(1)"}}, &out); code != 422 {
		t.Errorf("patch image: %d %v", code, out)
	}
	// A deal in another currency than the product: 422 (cart and card push).
	out = map[string]any{}
	if code := api(t, "PUT", a.BaseURL()+"/api/products/capped/deal", testStaff, map[string]any{"price": map[string]any{"amount": 50, "currency": "usd"}, "ends_at": "2099-01-01T00:00:00Z"}, &out); code != 422 || out["error"] != "currency_mismatch" {
		t.Errorf("deal in usd on a eur product: %d %v", code, out)
	}
	status, body, _ := rawPost(t, a.BaseURL()+"/api/streams/caps/cards", "application/json", testStaff,
		[]byte(`{"action":"show","product_id":"capped","deal":{"price":{"amount":50,"currency":"usd"},"duration_s":60}}`))
	if status != 422 || body["error"] != "currency_mismatch" {
		t.Errorf("card with a usd deal on a eur product: %d %v", status, body)
	}

	// Worst case at every cap: characters JSON escapes to 6 bytes each.
	worst := func(n int) string { return strings.Repeat("<", n) }
	// (Only what a card carries is at its cap: the whole product must also
	// fit the 64 KiB request body, sent unescaped.)
	skus := make([]map[string]any, cart.MaxSKUs)
	for i := range skus {
		skus[i] = map[string]any{"id": fmt.Sprintf("%064d", i), "title": worst(cart.MaxSKUTitleLen), "stock": 1000000}
	}
	images := []string{"https://x.example/?" + strings.Repeat("&", cart.MaxImageURLLen-19)}
	big := map[string]any{"id": "worst", "title": worst(cart.MaxTitleLen), "description": worst(cart.MaxDescriptionLen),
		"images": images, "price": map[string]any{"amount": 100, "currency": "eur"}, "skus": skus}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(big)
	if status, body, _ := rawPost(t, a.BaseURL()+"/api/products", "application/json", testStaff, buf.Bytes()); status != 201 {
		t.Fatalf("product at every cap (%d bytes): %d %v", buf.Len(), status, body)
	}
	status, body, _ = rawPost(t, a.BaseURL()+"/api/streams/caps/cards", "application/json", testStaff,
		[]byte(`{"action":"show","product_id":"worst","deal":{"price":{"amount":50,"currency":"eur"},"duration_s":60,"quantity":1000000}}`))
	if status != 201 {
		t.Fatalf("card of the product at every cap: %d %v", status, body)
	}
	card := body["card"].(map[string]any)
	if card["title"] != worst(cart.MaxTitleLen) || len(card["skus"].([]any)) != cart.MaxSKUs {
		t.Errorf("the card lost its title or SKUs: title %d chars, %d SKUs", len(card["title"].(string)), len(card["skus"].([]any)))
	}
	// A product with a long description but few SKUs keeps all of it.
	mid := map[string]any{"id": "mid", "title": "Mid", "description": worst(cart.MaxDescriptionLen), "images": images[:1],
		"price": map[string]any{"amount": 100, "currency": "eur"}, "stock": 3}
	out = map[string]any{}
	if code := api(t, "POST", a.BaseURL()+"/api/products", testStaff, mid, &out); code != 201 {
		t.Fatalf("product: %d %v", code, out)
	}
	status, body, _ = rawPost(t, a.BaseURL()+"/api/streams/caps/cards", "application/json", testStaff, []byte(`{"action":"show","product_id":"mid"}`))
	if status != 201 || body["card"].(map[string]any)["description"] != worst(cart.MaxDescriptionLen) {
		t.Errorf("card with the longest description: %d", status)
	}
}
