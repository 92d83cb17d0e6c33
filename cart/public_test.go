package cart

import (
	"strings"
	"testing"
)

// TestPublicProductView: anyone sees what is available; only staff see how
// many units of each SKU are held and sold.
func TestPublicProductView(t *testing.T) {
	forEachHarness(t, 6, nil, func(t *testing.T, h *harness) {
		h.mustCode(h.staff("POST", "/api/products", map[string]any{"id": "pv", "title": "PV", "price": map[string]any{"amount": 100, "currency": "eur"},
			"skus": []map[string]any{{"id": "s", "stock": 5}, {"id": "m", "stock": 5}}}), 201, "")
		h.mustCode(h.do("POST", "/api/checkout", withBuyer(map[string]any{"items": []map[string]any{{"product_id": "pv", "sku": "s", "quantity": 2}}}),
			"Idempotency-Key", "pv1", "X-Buyer-Id", "b"), 201, "")
		for _, path := range []string{"/api/products/pv", "/api/products"} {
			pub := h.do("GET", path, nil)
			h.mustCode(pub, 200, "")
			if strings.Contains(string(pub.raw), `"sold"`) || strings.Contains(string(pub.raw), `"held"`) {
				t.Errorf("public %s shows held/sold: %s", path, pub.raw)
			}
			if !strings.Contains(string(pub.raw), `"available":3`) {
				t.Errorf("public %s lost availability: %s", path, pub.raw)
			}
			st := h.staff("GET", path, nil)
			if !strings.Contains(string(st.raw), `"sold":2`) {
				t.Errorf("staff %s does not show sold: %s", path, st.raw)
			}
		}
	})
}
