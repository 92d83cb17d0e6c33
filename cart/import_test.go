package cart

import (
	"os"
	"strings"
	"testing"
)

// TestShopifyImport: a Shopify product CSV (variants, extra image rows, a
// bad row) previews without writing, applies the good products, re-imports
// without duplicating or changing anything, and the export round-trips —
// also after a sale (the CSV carries on-hand stock).
func TestShopifyImport(t *testing.T) {
	fixture, err := os.ReadFile("testdata/shopify_products.csv")
	if err != nil {
		t.Fatal(err)
	}
	forEachHarness(t, 6, nil, func(t *testing.T, h *harness) {
		imp := func(body, query string) resp {
			return h.do("POST", "/api/products/import"+query, body, "Authorization", "Bearer "+staffToken, "Content-Type", "text/csv")
		}
		h.mustCode(h.do("POST", "/api/products/import", string(fixture), "Content-Type", "text/csv"), 401, "unauthorized")
		h.mustCode(imp("Name,Price\nx,1\n", ""), 400, "invalid")

		dry := imp(string(fixture), "?dry_run=1")
		h.mustCode(dry, 200, "")
		if dry.body["created"] != 3.0 || dry.body["updated"] != 0.0 || dry.body["dry_run"] != true {
			t.Fatalf("dry run: %s", dry.raw)
		}
		errs := dry.body["errors"].([]any)
		if len(errs) != 1 {
			t.Fatalf("dry run errors: %s", dry.raw)
		}
		if e := errs[0].(map[string]any); e["row"] != 7.0 || e["handle"] != "broken-lamp" || !strings.Contains(e["message"].(string), "cheap") {
			t.Fatalf("bad row error: %v", e)
		}
		h.mustCode(h.do("GET", "/api/products/linen-shirt", nil), 404, "not_found")

		res := imp(string(fixture), "")
		h.mustCode(res, 200, "")
		if res.body["created"] != 3.0 || len(res.body["errors"].([]any)) != 1 {
			t.Fatalf("import: %s", res.raw)
		}
		shirt := h.do("GET", "/api/products/linen-shirt", nil)
		h.mustCode(shirt, 200, "")
		if shirt.body["title"] != "Linen shirt" || shirt.body["description"] != "Washed linen, relaxed fit. Made in Portugal & dyed by hand." ||
			shirt.body["price"].(map[string]any)["amount"] != 5900.0 || shirt.body["available"] != 11.0 {
			t.Fatalf("shirt: %s", shirt.raw)
		}
		skus := shirt.body["skus"].([]any)
		if len(skus) != 3 || skus[0].(map[string]any)["id"] != "LS-S-SAND" || skus[0].(map[string]any)["title"] != "S / Sand" ||
			skus[2].(map[string]any)["id"] != "linen-shirt-l-olive" || skus[2].(map[string]any)["stock"] != 0.0 {
			t.Fatalf("shirt variants: %v", skus)
		}
		// The first variant's price is the product's; the L costs more.
		if skus[0].(map[string]any)["price"] != nil || skus[2].(map[string]any)["price"].(map[string]any)["amount"] != 6400.0 {
			t.Fatalf("shirt variant prices: %v", skus)
		}
		if imgs := shirt.body["images"].([]any); len(imgs) != 2 || imgs[1] != "https://cdn.example.com/linen-back.jpg" {
			t.Fatalf("shirt images: %v", imgs)
		}
		vase := h.do("GET", "/api/products/ceramic-vase", nil)
		if vase.body["price"].(map[string]any)["amount"] != 3450.0 || vase.body["available"] != 12.0 || len(vase.body["images"].([]any)) != 2 {
			t.Fatalf("vase: %s", vase.raw)
		}
		if scarf := h.do("GET", "/api/products/old-scarf", nil); scarf.body["active"] != false {
			t.Fatalf("draft product imported as active: %s", scarf.raw)
		}

		again := imp(string(fixture), "")
		if again.body["created"] != 0.0 || again.body["updated"] != 0.0 || again.body["unchanged"] != 3.0 {
			t.Fatalf("re-import: %s", again.raw)
		}
		if n := len(h.staff("GET", "/api/products", nil).body["products"].([]any)); n != 3 {
			t.Fatalf("%d products after re-import, want 3", n)
		}

		// A sale, then export → import: nothing changes, stock stays.
		h.mustCode(h.do("POST", "/api/checkout", map[string]any{"items": []map[string]any{{"product_id": "ceramic-vase", "quantity": 2}},
			"buyer": map[string]any{"email": "ivy@example.com", "name": "Ivy"}, "delivery": map[string]any{"method": "pickup"}}, "Idempotency-Key", "imp1"), 201, "")
		h.mustCode(h.do("GET", "/api/products.csv", nil), 401, "unauthorized")
		exp := h.staff("GET", "/api/products.csv", nil)
		if exp.code != 200 || !strings.HasPrefix(exp.hdr.Get("Content-Type"), "text/csv") || !strings.HasPrefix(string(exp.raw), "Handle,Title,Body (HTML)") {
			t.Fatalf("export: %d %s", exp.code, exp.raw)
		}
		if !strings.Contains(string(exp.raw), "Default Title,,,,,,shopify,10,deny,manual,34.50") {
			t.Fatalf("export does not carry the vase's on-hand 10:\n%s", exp.raw)
		}
		if !strings.Contains(string(exp.raw), "linen-shirt-l-olive,shopify,0,deny,manual,64.00") {
			t.Fatalf("export does not carry the L's own price:\n%s", exp.raw)
		}
		round := imp(string(exp.raw), "")
		if round.body["created"] != 0.0 || round.body["updated"] != 0.0 || round.body["unchanged"] != 3.0 || len(round.body["errors"].([]any)) != 0 {
			t.Fatalf("round trip: %s\n%s", round.raw, exp.raw)
		}
		if n := h.available("ceramic-vase"); n != 10 {
			t.Fatalf("vase available %d after round trip, want 10", n)
		}

		// An edited file updates by handle: a new price, one more variant
		// at its own price, the L back at the product's price.
		edited := strings.Replace(strings.Replace(string(fixture), "34,50", "29.00", 1), "64.00", "59.00", 1) +
			"linen-shirt,,,,,,,,,XL,,Sand,,,LS-XL-SAND,300,shopify,5,deny,manual,69.00,,TRUE,TRUE,,,,,,,,\n"
		upd := imp(edited, "")
		if upd.body["updated"] != 2.0 || upd.body["created"] != 0.0 {
			t.Fatalf("update import: %s", upd.raw)
		}
		if v := h.do("GET", "/api/products/ceramic-vase", nil); v.body["price"].(map[string]any)["amount"] != 2900.0 || v.body["available"] != 12.0 {
			t.Fatalf("vase after update: %s", v.raw)
		}
		s := h.do("GET", "/api/products/linen-shirt", nil)
		if skus := s.body["skus"].([]any); len(skus) != 4 || s.body["available"] != 16.0 || skus[2].(map[string]any)["price"] != nil ||
			skus[3].(map[string]any)["price"].(map[string]any)["amount"] != 6900.0 {
			t.Fatalf("shirt after update: %s", s.raw)
		}
	})
}

// TestPatchVariants: PATCH renames variants and adds new ones with their
// stock; the first added variants replace the implicit SKU of a product
// made without variants, and a variant is never removed.
func TestPatchVariants(t *testing.T) {
	forEachHarness(t, 6, nil, func(t *testing.T, h *harness) {
		h.mustCode(h.staff("POST", "/api/products", map[string]any{"id": "cap", "title": "Cap", "price": map[string]any{"amount": 1900, "currency": "eur"}}), 201, "")
		r := h.staff("PATCH", "/api/products/cap", map[string]any{"add_skus": []map[string]any{
			{"id": "cap-red", "title": "Red", "options": map[string]string{"colour": "red"}, "stock": 3},
			{"id": "cap-blue", "title": "Blue", "stock": 2}}})
		h.mustCode(r, 200, "")
		if skus := r.body["skus"].([]any); len(skus) != 2 || skus[0].(map[string]any)["id"] != "cap-red" || r.body["available"] != 5.0 {
			t.Fatalf("after adding variants: %s", r.raw)
		}
		r = h.staff("PATCH", "/api/products/cap", map[string]any{"skus": []map[string]any{{"id": "cap-blue", "title": "Navy", "stock": 4}},
			"add_skus": []map[string]any{{"id": "cap-green", "title": "Green", "stock": 1}}})
		h.mustCode(r, 200, "")
		skus := r.body["skus"].([]any)
		if len(skus) != 3 || skus[1].(map[string]any)["title"] != "Navy" || skus[0].(map[string]any)["options"].(map[string]any)["colour"] != "red" || r.body["available"] != 8.0 {
			t.Fatalf("after renaming: %s", r.raw)
		}
		h.mustCode(h.staff("PATCH", "/api/products/cap", map[string]any{"add_skus": []map[string]any{{"id": "bad id", "stock": 1}}}), 400, "invalid")
		h.mustCode(h.staff("PATCH", "/api/products/cap", map[string]any{"title": ""}), 400, "invalid")
	})
}
