package cart

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestBuyerDetails422(t *testing.T) {
	h := newHarness(t, newBoltStore(t), nil)
	h.mustCode(h.staff("POST", "/api/products", map[string]any{"id": "p1", "title": "P1", "price": map[string]any{"amount": 4900, "currency": "eur"}, "stock": 10}), 201, "")
	ship := func(a map[string]any) map[string]any { return map[string]any{"method": "ship", "address": a} }
	good := map[string]any{"line1": "Kastanienallee 12", "postal_code": "10435", "city": "Berlin", "country": "DE"}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for kk, vv := range good {
			m[kk] = vv
		}
		m[k] = v
		return m
	}
	ana := map[string]any{"email": "ana@example.com", "name": "Ana"}
	for i, c := range []struct {
		buyer, delivery any
		fields          []string
	}{
		{nil, nil, []string{"buyer.email", "buyer.name", "delivery.method"}},
		{map[string]any{"email": "not-an-email", "name": "Ana"}, map[string]any{"method": "pickup"}, []string{"buyer.email"}},
		{map[string]any{"email": "ana@localhost", "name": "Ana"}, map[string]any{"method": "pickup"}, []string{"buyer.email"}},
		{map[string]any{"email": "ana@example.com", "name": strings.Repeat("x", 101)}, map[string]any{"method": "pickup"}, []string{"buyer.name"}},
		{map[string]any{"email": "ana@example.com", "name": "Ana\nEvil: header"}, map[string]any{"method": "pickup"}, []string{"buyer.name"}},
		{ana, map[string]any{"method": "drone"}, []string{"delivery.method"}},
		{ana, map[string]any{"method": "ship"}, []string{"delivery.address"}},
		{ana, ship(map[string]any{}), []string{"delivery.address.line1", "delivery.address.city", "delivery.address.country", "delivery.address.postal_code"}},
		{ana, ship(with("postal_code", "1043")), []string{"delivery.address.postal_code"}},
		{ana, ship(with("country", "XX")), []string{"delivery.address.country"}},
		{ana, ship(with("country", "gb")), []string{"delivery.address.postal_code"}}, // 10435 is not a UK postcode
		{ana, ship(map[string]any{"line1": "1 High St", "postal_code": "sw1a 1aa", "city": "London", "country": "gb"}), nil},
		{ana, ship(with("country", "NL")), []string{"delivery.address.postal_code"}},
		{ana, ship(map[string]any{"line1": "Dam 1", "postal_code": "1012 JS", "city": "Amsterdam", "country": "NL"}), nil},
		{ana, ship(with("line1", strings.Repeat("y", 101))), []string{"delivery.address.line1"}},
		{ana, map[string]any{"method": "pickup"}, nil},
	} {
		body := map[string]any{"items": []map[string]any{{"product_id": "p1", "quantity": 1}}}
		if c.buyer != nil {
			body["buyer"] = c.buyer
		}
		if c.delivery != nil {
			body["delivery"] = c.delivery
		}
		r := h.do("POST", "/api/checkout", body, "Idempotency-Key", fmt.Sprint("b", i))
		if c.fields == nil {
			h.mustCode(r, 201, "")
			continue
		}
		h.mustCode(r, 422, "invalid_buyer")
		var got []string
		for k := range r.body["fields"].(map[string]any) {
			got = append(got, k)
		}
		if fmt.Sprint(sortedCopy(got)) != fmt.Sprint(sortedCopy(c.fields)) {
			t.Fatalf("case %d: fields %v, want %v (%s)", i, got, c.fields, r.raw)
		}
	}
	if n := h.available("p1"); n != 7 { // 3 accepted
		t.Fatalf("available %d: a refused checkout held stock", n)
	}
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	for i := range c {
		for j := i + 1; j < len(c); j++ {
			if c[j] < c[i] {
				c[i], c[j] = c[j], c[i]
			}
		}
	}
	return c
}

func TestOrderAccess(t *testing.T) {
	h := newHarness(t, newBoltStore(t), nil)
	h.mustCode(h.staff("POST", "/api/products", map[string]any{"id": "p1", "title": "P1", "price": map[string]any{"amount": 4900, "currency": "eur"}, "stock": 10, "per_buyer_limit": 2}), 201, "")
	r := h.buy("a1", "alice", "p1", 1)
	h.mustCode(r, 201, "")
	id, secret := r.body["order_id"].(string), r.body["secret"].(string)
	if r.body["buyer_id"] != nil || r.body["idempotency_key"] != nil || r.body["items"].([]any)[0].(map[string]any)["hold_id"] != nil {
		t.Fatalf("the buyer's view shows internals: %s", r.raw)
	}
	if !strings.HasSuffix(r.body["order_url"].(string), "/order/"+id+"?t="+secret) {
		t.Fatalf("order url %v", r.body["order_url"])
	}
	h.mustCode(h.do("GET", "/api/orders/"+id, nil, "X-Buyer-Id", "alice"), 200, "")
	h.mustCode(h.do("GET", "/api/orders/"+id+"?t="+secret, nil), 200, "")
	h.mustCode(h.do("POST", "/api/carts", nil, "X-Buyer-Id", "bob"), 201, "")
	h.mustCode(h.do("GET", "/api/orders/"+id, nil, "X-Buyer-Id", "bob"), 404, "not_found")
	h.mustCode(h.do("GET", "/api/orders/"+id, nil), 404, "not_found")
	h.mustCode(h.do("GET", "/api/orders/"+id+"?t=wrong", nil), 404, "not_found")
	// A cookie the server did not sign is no identity.
	h.mustCode(h.do("GET", "/api/orders/"+id, nil, "Cookie", BuyerCookie+"="+r.body["order_id"].(string)), 404, "not_found")
	s := h.staff("GET", "/api/orders/"+id, nil)
	h.mustCode(s, 200, "")
	if s.body["buyer_id"] == nil || s.body["buyer"].(map[string]any)["email"] != "alice@example.com" || s.body["payment"].(map[string]any)["client_secret"] != nil {
		t.Fatalf("staff view: %s", s.raw)
	}
	// Nor is a header naming Alice's buyer id.
	h.mustCode(h.do("GET", "/api/orders/"+id, nil, "x-buyer-id", s.body["buyer_id"].(string)), 404, "not_found")
	// Bob replaying Alice's key gets neither her order nor a new one.
	h.mustCode(h.buy("a1", "bob", "p1", 1), 422, "idempotency_key_reused")
	// X-Buyer-Id is no longer trusted: the per-buyer limit follows the cookie.
	h.mustCode(h.buy("a2", "alice", "p1", 1), 201, "")
	h.mustCode(h.do("POST", "/api/checkout", withBuyer(map[string]any{"items": []map[string]any{{"product_id": "p1", "quantity": 1}}}),
		"Idempotency-Key", "a3", "X-Buyer-Id", "alice"), 429, "limit_reached")

	// Carts: the buyer's cookie or the cart's secret.
	c := h.do("POST", "/api/carts", nil, "X-Buyer-Id", "carol")
	cid, csec := c.body["cart_id"].(string), c.body["secret"].(string)
	item := map[string]any{"product_id": "p1", "quantity": 1}
	h.mustCode(h.do("PUT", "/api/carts/"+cid+"/items", item, "X-Buyer-Id", "bob"), 404, "not_found")
	h.mustCode(h.do("GET", "/api/carts/"+cid, nil), 404, "not_found")
	h.mustCode(h.do("PUT", "/api/carts/"+cid+"/items", item, "X-Cart-Secret", csec), 200, "")
	h.mustCode(h.do("POST", "/api/checkout", withBuyer(map[string]any{"cart_id": cid}), "Idempotency-Key", "c1", "X-Buyer-Id", "bob"), 404, "not_found")
	o := h.do("POST", "/api/checkout", withBuyer(map[string]any{"cart_id": cid}), "Idempotency-Key", "c1", "X-Buyer-Id", "carol")
	h.mustCode(o, 201, "")
	if g := h.do("GET", "/api/carts/"+cid, nil, "X-Buyer-Id", "carol"); g.code != 404 {
		t.Fatalf("checked-out cart still there: %s", g.raw)
	}
}

// fulfilWalk runs the same fulfilment sequence on a store and returns what
// it saw, so both stores can be compared field by field.
func fulfilWalk(t *testing.T, h *harness) []string {
	var out []string
	note := func(what string, r resp) {
		st := fmt.Sprint(r.body["status"])
		if r.code >= 400 {
			st = fmt.Sprint(r.body["error"])
		}
		out = append(out, fmt.Sprintf("%s: %d %s", what, r.code, st))
	}
	h.mustCode(h.staff("POST", "/api/products", map[string]any{"id": "cup", "title": "Cup", "price": map[string]any{"amount": 1200, "currency": "eur"}, "stock": 10}), 201, "")
	h.mustCode(h.staff("POST", "/api/products", map[string]any{"id": "pot", "title": "Pot", "price": map[string]any{"amount": 3000, "currency": "eur"}, "stock": 5}), 201, "")
	shipTo := map[string]any{"method": "ship", "address": map[string]any{"line1": "Rue de Rivoli 1", "postal_code": "75001", "city": "Paris", "country": "FR"}}
	buy := func(key string, delivery map[string]any) (string, resp) {
		r := h.do("POST", "/api/checkout", map[string]any{"stream": "live1", "source": "player", "buyer": map[string]any{"email": "ana@example.com", "name": "Ana"},
			"delivery": delivery, "items": []map[string]any{{"product_id": "cup", "quantity": 2}, {"product_id": "pot", "quantity": 1}}}, "Idempotency-Key", key, "X-Buyer-Id", "ana")
		h.mustCode(r, 201, "")
		return r.body["order_id"].(string), r
	}
	avail := func() string { return fmt.Sprintf("cup %d pot %d", h.available("cup"), h.available("pot")) }
	act := func(id, what string, body any) resp { return h.staff("POST", "/api/orders/"+id+"/"+what, body) }

	// Shipped: pack, ship (tracking required), then nothing goes back.
	s, _ := buy("w1", shipTo)
	note("ship without tracking", act(s, "ship", map[string]any{"carrier": "DHL"}))
	note("pickup of a shipped order", act(s, "pickup", map[string]any{"code": "AAAAAA"}))
	note("pack", act(s, "pack", nil))
	note("pack again", act(s, "pack", nil))
	note("ship", act(s, "ship", map[string]any{"carrier": "DHL", "tracking": "JD0123"}))
	note("pack after ship", act(s, "pack", nil))
	out = append(out, avail())
	note("refund line 1 after shipping", act(s, "refund", map[string]any{"lines": []int{1}}))
	out = append(out, avail()) // shipped: not restocked
	note("refund line 1 again", act(s, "refund", map[string]any{"lines": []int{1}}))
	note("refund line 7", act(s, "refund", map[string]any{"lines": []int{7}}))
	note("refund the rest", act(s, "refund", map[string]any{}))
	note("refund when all is refunded", act(s, "refund", map[string]any{}))

	// Picked up: the code must match.
	p, pr := buy("w2", map[string]any{"method": "pickup"})
	code := pr.body["pickup_code"].(string)
	note("ship a pickup order", act(p, "ship", map[string]any{"carrier": "DHL", "tracking": "x"}))
	note("wrong code", act(p, "pickup", map[string]any{"code": "ZZZZZZ"}))
	note("right code, lower case", act(p, "pickup", map[string]any{"code": strings.ToLower(code)}))

	// Refunded before shipping: restocked, line by line.
	c, _ := buy("w3", shipTo)
	out = append(out, avail())
	note("partial refund of the cup line", act(c, "refund", map[string]any{"lines": []int{0}}))
	out = append(out, avail())
	note("pack a partly refunded order", act(c, "pack", nil))
	note("cancel = refund the rest", h.staff("POST", "/api/orders/"+c+"/cancel", nil))
	out = append(out, avail())

	// Histories and refunds as stored.
	for _, id := range []string{s, p, c} {
		g := h.staff("GET", "/api/orders/"+id, nil)
		var hist []string
		for _, e := range g.body["history"].([]any) {
			hist = append(hist, e.(map[string]any)["status"].(string))
		}
		var refunds []string
		for _, rf := range asList(g.body["refunds"]) {
			m := rf.(map[string]any)
			refunds = append(refunds, fmt.Sprintf("%v %v restocked=%v", m["lines"], m["amount"].(map[string]any)["amount"], m["restocked"]))
		}
		out = append(out, fmt.Sprintf("history %v refunds %v shipment %v", hist, refunds, g.body["shipment"]))
	}
	// Sold: paid units of the stream, refunded lines out (never negative; a
	// pending order is not sold).
	sold, err := h.svc.SoldByProduct(context.Background(), "live1")
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, fmt.Sprintf("sold %v", sold))
	return out
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func TestFulfilmentConformance(t *testing.T) {
	var got [2][]string
	i := 0
	forEachHarness(t, 6, nil, func(t *testing.T, h *harness) {
		got[i] = fulfilWalk(t, h)
		i++
	})
	want := []string{
		"ship without tracking: 422 invalid_buyer",
		"pickup of a shipped order: 422 wrong_code",
		"pack: 200 packed",
		"pack again: 200 packed",
		"ship: 200 shipped",
		"pack after ship: 409 illegal_transition",
		"cup 8 pot 4",
		"refund line 1 after shipping: 200 partially_refunded",
		"cup 8 pot 4",
		"refund line 1 again: 409 illegal_transition",
		"refund line 7: 400 invalid",
		"refund the rest: 200 refunded",
		"refund when all is refunded: 409 illegal_transition",
		"ship a pickup order: 409 illegal_transition",
		"wrong code: 422 wrong_code",
		"right code, lower case: 200 picked_up",
		"cup 4 pot 2",
		"partial refund of the cup line: 200 partially_refunded",
		"cup 6 pot 2",
		"pack a partly refunded order: 200 packed",
		"cancel = refund the rest: 200 refunded",
		"cup 6 pot 3",
		"history [pending paid packed shipped partially_refunded refunded] refunds [[1] 3000 restocked=false [0] 2400 restocked=false] shipment map[carrier:DHL tracking:JD0123]",
		"history [pending paid picked_up] refunds [] shipment <nil>",
		"history [pending paid partially_refunded packed refunded] refunds [[0] 2400 restocked=true [1] 3000 restocked=true] shipment <nil>",
		"sold map[cup:2 pot:1]",
	}
	for k, g := range got {
		if !reflect.DeepEqual(g, want) {
			t.Errorf("store %d:\n%s\nwant\n%s", k, strings.Join(g, "\n"), strings.Join(want, "\n"))
		}
	}
	if !reflect.DeepEqual(got[0], got[1]) {
		t.Fatal("bolt and redis disagree")
	}
}

func TestOrdersCSV(t *testing.T) {
	h := newHarness(t, newBoltStore(t), nil)
	h.mustCode(h.staff("POST", "/api/products", map[string]any{"id": "p1", "title": "Tasse «Ümlaut», groß", "price": map[string]any{"amount": 1250, "currency": "eur"}, "stock": 10}), 201, "")
	h.mustCode(h.staff("POST", "/api/products", map[string]any{"id": "p2", "title": "P2", "price": map[string]any{"amount": 500, "currency": "eur"}, "stock": 10}), 201, "")
	r := h.do("POST", "/api/checkout", map[string]any{"stream": "live1", "buyer": map[string]any{"email": "zoe@example.com", "name": "=HYPERLINK(\"x\")"},
		"delivery": map[string]any{"method": "ship", "address": map[string]any{"line1": "Straße 1, Hinterhaus \"B\"", "postal_code": "10435", "city": "Berlin", "country": "DE"}},
		"items":    []map[string]any{{"product_id": "p1", "quantity": 2}, {"product_id": "p2", "quantity": 1}}}, "Idempotency-Key", "csv1")
	h.mustCode(r, 201, "")
	h.mustCode(h.buy("csv2", "bob", "p2", 1), 201, "")
	h.mustCode(h.staff("POST", "/api/orders/"+r.body["order_id"].(string)+"/pack", nil), 200, "")
	h.mustCode(h.do("GET", "/api/orders.csv", nil), 401, "unauthorized")

	rows := func(q string) [][]string {
		res := h.staff("GET", "/api/orders.csv"+q, nil)
		if res.code != 200 || !strings.HasPrefix(res.hdr.Get("Content-Type"), "text/csv") || !strings.Contains(res.hdr.Get("Content-Disposition"), "attachment") {
			t.Fatalf("csv: %d %v", res.code, res.hdr)
		}
		if !bytes.HasPrefix(res.raw, []byte("\ufeff")) {
			t.Fatal("no UTF-8 BOM: spreadsheets would read the umlauts wrong")
		}
		recs, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(res.raw, []byte("\ufeff")))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(recs[0], csvHeader) {
			t.Fatalf("header %v", recs[0])
		}
		return recs[1:]
	}
	all := rows("?stream=live1")
	if len(all) != 3 {
		t.Fatalf("%d rows, want one per order line (3)", len(all))
	}
	col := func(row []string, name string) string {
		for i, h := range csvHeader {
			if h == name {
				return row[i]
			}
		}
		t.Fatalf("no column %s", name)
		return ""
	}
	packed := rows("?stream=live1&status=packed")
	if len(packed) != 2 || col(packed[0], "product_title") != "Tasse «Ümlaut», groß" || col(packed[0], "line_total") != "25.00" ||
		col(packed[0], "address_line1") != `Straße 1, Hinterhaus "B"` || col(packed[0], "buyer_name") != `'=HYPERLINK("x")` ||
		col(packed[0], "status") != "packed" || col(packed[1], "line") != "2" || col(packed[0], "order_total") != "30.00" {
		t.Fatalf("packed rows %q", packed)
	}
	if n := len(rows("?stream=other")); n != 0 {
		t.Fatalf("%d rows of another stream", n)
	}
}
