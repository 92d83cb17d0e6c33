package cart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// paritySteps runs one sequence of operations on a store and records every
// result and error in full (ids the store makes are numbered in order of
// appearance), so two stores can be compared field by field.
func paritySteps(t *testing.T, s Store, now time.Time) []string {
	ctx := context.Background()
	var out []string
	ids := map[string]string{}
	rec := func(op string, v any, err error) {
		b, _ := json.Marshal(map[string]any{"op": op, "result": v, "err": parityErr(err)})
		line := string(b)
		// Deal ids are random: number them.
		for _, m := range dealIDRE.FindAllString(line, -1) {
			if _, ok := ids[m]; !ok {
				ids[m] = fmt.Sprintf("deal#%d", len(ids))
			}
			line = strings.ReplaceAll(line, m, ids[m])
		}
		out = append(out, line)
	}
	product := func(id string) {
		p, err := s.GetProduct(ctx, id)
		p.Deal = normDeal(p.Deal)
		rec("get "+id, p, err)
	}
	res := func(name string, r ReserveRequest) {
		if r.TTL == 0 {
			r.TTL = time.Minute
		}
		if r.Now.IsZero() {
			r.Now = now
		}
		h, err := s.Reserve(ctx, r)
		rec("reserve "+name, h, err)
	}
	mk := func(p Product) {
		p.Images = []string{}
		rec("create "+p.ID, nil, s.CreateProduct(ctx, p))
	}
	eur := func(a int64) Money { return Money{Amount: a, Currency: "eur"} }

	mk(Product{ID: "p", Title: "P", Description: "d", Price: eur(500), Active: true, PerBuyerLimit: 3, SKUs: []SKU{{ID: DefaultSKU, Stock: 5}}})
	mk(Product{ID: "tee", Title: "Tee", Price: eur(900), Active: true, SKUs: []SKU{{ID: "s", Title: "S", Options: map[string]string{"size": "S"}, Stock: 2}, {ID: "m", Stock: 1}}})
	mk(Product{ID: "off", Title: "Off", Price: eur(100), SKUs: []SKU{{ID: DefaultSKU, Stock: 1}}})
	mk(Product{ID: "p", Title: "dup", SKUs: []SKU{{ID: DefaultSKU}}})
	product("p")
	product("tee")
	product("nope")
	res("ok", ReserveRequest{HoldID: "a", ProductID: "p", Quantity: 2, Buyer: "alice"})
	res("sold out", ReserveRequest{HoldID: "b", ProductID: "p", Quantity: 4, Buyer: "bob"})
	res("sold out sku", ReserveRequest{HoldID: "b", ProductID: "tee", SKU: "m", Quantity: 2})
	res("limit", ReserveRequest{HoldID: "c", ProductID: "p", Quantity: 2, Buyer: "alice"})
	res("re-set", ReserveRequest{HoldID: "a", ProductID: "p", Quantity: 3, Buyer: "alice"})
	res("keep", ReserveRequest{HoldID: "a", ProductID: "p", Quantity: 1, Buyer: "alice", Keep: true})
	res("sku required", ReserveRequest{HoldID: "d", ProductID: "tee", Quantity: 1})
	res("unknown sku", ReserveRequest{HoldID: "d", ProductID: "tee", SKU: "xl", Quantity: 1})
	res("inactive", ReserveRequest{HoldID: "d", ProductID: "off", Quantity: 1})
	res("not found", ReserveRequest{HoldID: "d", ProductID: "nope", Quantity: 1})
	res("sku", ReserveRequest{HoldID: "e", ProductID: "tee", SKU: "s", Quantity: 2, Buyer: "bob"})
	product("tee")
	h, err := s.Commit(ctx, "p", "a", now)
	rec("commit a", h, err)
	h, err = s.Commit(ctx, "p", "a", now)
	rec("commit a again", h, err)
	h, err = s.Commit(ctx, "p", "zz", now)
	rec("commit unknown", h, err)
	res("committed stays", ReserveRequest{HoldID: "a", ProductID: "p", Quantity: 1, Buyer: "alice"})
	product("p")
	d, err := s.SetDeal(ctx, "p", Deal{Price: eur(250), EndsAt: now.Add(time.Hour), Quantity: 2, PerBuyer: 1, HoldTTL: 30 * time.Second})
	rec("set deal", normDeal(&d), err)
	_, err = s.SetDeal(ctx, "nope", Deal{Price: eur(1), EndsAt: now.Add(time.Hour)})
	rec("set deal unknown", nil, err)
	res("deal", ReserveRequest{HoldID: "f", ProductID: "p", Quantity: 1, Buyer: "carol"})
	res("deal limit", ReserveRequest{HoldID: "g", ProductID: "p", Quantity: 1, Buyer: "carol"})
	res("deal sold out", ReserveRequest{HoldID: "g", ProductID: "p", Quantity: 2, Buyer: "dave"})
	product("p")
	ok, err := s.Release(ctx, "p", "f")
	rec("release f", ok, err)
	ok, err = s.Release(ctx, "p", "f")
	rec("release f again", ok, err)
	ok, err = s.Release(ctx, "nope", "f")
	rec("release unknown product", ok, err)
	rec("clear deal", nil, s.ClearDeal(ctx, "p"))
	product("p")
	res("short", ReserveRequest{HoldID: "x", ProductID: "tee", SKU: "m", Quantity: 1, TTL: 10 * time.Millisecond})
	h, err = s.Commit(ctx, "tee", "x", now.Add(time.Second))
	rec("commit expired", h, err)
	res("short2", ReserveRequest{HoldID: "y", ProductID: "tee", SKU: "m", Quantity: 1, TTL: 10 * time.Millisecond})
	changed, active, err := s.Sweep(ctx, now.Add(time.Second))
	rec("sweep", map[string]any{"changed": changed, "active": active}, err)
	price, title, off := eur(700), "P2", false
	p, err := s.UpdateProduct(ctx, "p", ProductUpdate{Title: &title, Price: &price, Stock: map[string]int{"": 8}})
	p.Deal = normDeal(p.Deal)
	rec("update", p, err)
	p, err = s.UpdateProduct(ctx, "tee", ProductUpdate{Stock: map[string]int{"": 8}})
	rec("update sku required", p, err)
	p, err = s.UpdateProduct(ctx, "tee", ProductUpdate{Stock: map[string]int{"xl": 8}})
	rec("update unknown sku", p, err)
	p, err = s.UpdateProduct(ctx, "nope", ProductUpdate{Active: &off})
	rec("update unknown", p, err)
	variantPriceSteps(ctx, s, now, mk, product, res, rec)
	ps, err := s.ListProducts(ctx)
	rec("list products", ps, err)

	o := Order{ID: "o1", Status: StatusPending, Items: []OrderItem{{ProductID: "p", SKU: DefaultSKU, Quantity: 3, UnitPrice: eur(500), HoldID: "a"}},
		Total: eur(1500), Buyer: "alice", Stream: "s1", IdempotencyKey: "k1", RequestHash: "h1", HoldExpiresAt: now.Add(time.Minute), CreatedAt: now, UpdatedAt: now}
	got, created, err := s.CreateOrder(ctx, o)
	rec("create order", map[string]any{"o": got, "hash": got.RequestHash, "created": created}, err)
	o2 := o
	o2.ID, o2.RequestHash = "o2", "h2"
	got, created, err = s.CreateOrder(ctx, o2)
	rec("create order same key", map[string]any{"o": got, "hash": got.RequestHash, "created": created}, err)
	o3 := o
	o3.IdempotencyKey = "k3"
	got, created, err = s.CreateOrder(ctx, o3)
	rec("create order same id", map[string]any{"o": got, "created": created}, err)
	o4 := o
	o4.ID, o4.IdempotencyKey = "o4", "k4"
	got, created, err = s.CreateOrder(ctx, o4)
	rec("create order on a claimed hold", map[string]any{"o": got, "created": created}, err)
	got, err = s.OrderByKey(ctx, "k4")
	rec("by key of the refused order", got, err)
	got, err = s.OrderByKey(ctx, "k1")
	rec("by key", map[string]any{"o": got, "hash": got.RequestHash}, err)
	got, err = s.OrderByKey(ctx, "k9")
	rec("by unknown key", got, err)
	got, err = s.GetOrder(ctx, "o2")
	rec("get o2", got, err)
	eo, err := s.ExpiredOrders(ctx, now.Add(2*time.Minute), 10)
	rec("expired", eo, err)
	got, err = s.UpdateOrder(ctx, "o1", func(o *Order) error { return o.Transition(StatusPaid, now) })
	rec("pay", got, err)
	got, err = s.UpdateOrder(ctx, "o1", func(o *Order) error { return o.Transition(StatusPending, now) })
	rec("back to pending", got, err)
	got, err = s.UpdateOrder(ctx, "o9", func(o *Order) error { return nil })
	rec("update unknown order", got, err)
	eo, err = s.ExpiredOrders(ctx, now.Add(2*time.Minute), 10)
	rec("expired after pay", eo, err)
	os, err := s.ListOrders(ctx, "", 0)
	rec("list orders", os, err)
	os, err = s.ListOrders(ctx, "s2", 0)
	rec("list orders other stream", os, err)

	c := Cart{ID: "c1", Buyer: "b", Items: []CartItem{{OrderItem: OrderItem{ProductID: "p", SKU: DefaultSKU, Quantity: 1, HoldID: "h"}, ExpiresAt: now}}, UpdatedAt: now}
	rec("put cart", nil, s.PutCart(ctx, c))
	gc, err := s.GetCart(ctx, "c1")
	rec("get cart", gc, err)
	rec("delete cart", nil, s.DeleteCart(ctx, "c1"))
	rec("delete cart again", nil, s.DeleteCart(ctx, "c1"))
	gc, err = s.GetCart(ctx, "c1")
	rec("get deleted cart", gc, err)
	seen, err := s.SeenEvent(ctx, "evt")
	rec("seen", seen, err)
	rec("mark", nil, s.MarkEvent(ctx, "evt"))
	seen, err = s.SeenEvent(ctx, "evt")
	rec("seen after mark", seen, err)
	return out
}

// variantPriceSteps covers per-variant prices: created, re-priced, cleared
// and added by UpdateProduct, read back, and locked into holds (a deal
// still prices every variant).
func variantPriceSteps(ctx context.Context, s Store, now time.Time, mk func(Product), product func(string),
	res func(string, ReserveRequest), rec func(string, any, error)) {
	eur := func(a int64) *Money { return &Money{Amount: a, Currency: "eur"} }
	mk(Product{ID: "var", Title: "Var", Price: *eur(1000), Active: true,
		SKUs: []SKU{{ID: "m", Stock: 3}, {ID: "xl", Title: "XL", Stock: 3, Price: eur(1200)}}})
	product("var")
	res("variant price", ReserveRequest{HoldID: "v1", ProductID: "var", SKU: "xl", Quantity: 1})
	res("product price", ReserveRequest{HoldID: "v2", ProductID: "var", SKU: "m", Quantity: 1})
	p, err := s.UpdateProduct(ctx, "var", ProductUpdate{Prices: map[string]*Money{"m": eur(800), "xl": nil},
		SKUs: []SKUInput{{ID: "xxl", Title: "XXL", Price: eur(1500)}, {ID: "xl", Title: "XL!"}}, Stock: map[string]int{"xxl": 2}})
	rec("update variant prices", p, err)
	res("re-priced", ReserveRequest{HoldID: "v3", ProductID: "var", SKU: "m", Quantity: 1})
	res("price cleared", ReserveRequest{HoldID: "v4", ProductID: "var", SKU: "xl", Quantity: 1})
	res("new variant's price", ReserveRequest{HoldID: "v5", ProductID: "var", SKU: "xxl", Quantity: 1})
	res("re-set takes today's price", ReserveRequest{HoldID: "v1", ProductID: "var", SKU: "xl", Quantity: 2})
	p, err = s.UpdateProduct(ctx, "var", ProductUpdate{Prices: map[string]*Money{"zz": eur(100)}})
	rec("update unknown variant's price", p, err)
	d, err := s.SetDeal(ctx, "var", Deal{Price: *eur(500), EndsAt: now.Add(time.Hour)})
	rec("deal on variants", normDeal(&d), err)
	res("deal beats the variant's price", ReserveRequest{HoldID: "v6", ProductID: "var", SKU: "xxl", Quantity: 1})
	rec("clear variants' deal", nil, s.ClearDeal(ctx, "var"))
	product("var")
}

// parityErr is an error as the parity steps record it: in full for the
// typed errors, else the sentinel it wraps.
func parityErr(err error) any {
	var so *SoldOutError
	var le *LimitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &so):
		return map[string]any{"sold_out": *so}
	case errors.As(err, &le):
		return map[string]any{"limit": *le}
	}
	var e any
	for _, sent := range []error{ErrNotFound, ErrExists, ErrInactive, ErrSKURequired, ErrUnknownSKU, ErrHoldGone, ErrIllegalTransition, ErrInvalid, ErrHoldClaimed} {
		if errors.Is(err, sent) {
			e = sent.Error()
		}
	}
	if e == nil {
		e = "other: " + err.Error()
	}
	return e
}

// emailLimitSteps checks out through a Service on the store: per-buyer
// limits counted on the email across buyer cookies (limit 2), normalised
// addresses, the allowance coming back when an unpaid order is cancelled
// or expires (and once only), and a flash deal's per-buyer limit. Orders
// stay pending (manualProvider) until they end.
func emailLimitSteps(t *testing.T, s Store, now time.Time) []string {
	ctx := context.Background()
	clock := now
	svc := &Service{Store: s, Payments: &manualProvider{}, SweepInterval: time.Hour, Now: func() time.Time { return clock }}
	if err := svc.Initialize(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	var out []string
	rec := func(op string, v any, err error) {
		b, _ := json.Marshal(map[string]any{"op": op, "result": v, "err": parityErr(err)})
		out = append(out, string(b))
	}
	eur := Money{Amount: 500, Currency: "eur"}
	for _, p := range []Product{
		{ID: "lim", Title: "Lim", Price: eur, Active: true, PerBuyerLimit: 2, Images: []string{}, SKUs: []SKU{{ID: DefaultSKU, Stock: 10}}},
		{ID: "dl", Title: "Deal", Price: eur, Active: true, Images: []string{}, SKUs: []SKU{{ID: DefaultSKU, Stock: 10}}},
	} {
		rec("create "+p.ID, nil, s.CreateProduct(ctx, p))
	}
	_, err := s.SetDeal(ctx, "dl", Deal{Price: Money{Amount: 200, Currency: "eur"}, EndsAt: time.Now().Add(time.Hour), PerBuyer: 1})
	rec("set deal", nil, err)
	ids := map[string]string{}
	buy := func(name, cookie, email, pid string, q int) {
		o, _, err := svc.Checkout(ctx, CheckoutRequest{IdempotencyKey: "key-" + name, Buyer: cookie,
			Items: []CheckoutItem{{ProductID: pid, Quantity: q}}, Contact: &Contact{Email: email, Name: "A"}, Delivery: &Delivery{Method: DeliveryPickup}})
		ids[name] = o.ID
		p, _ := s.GetProduct(ctx, pid)
		var items []OrderItem
		for _, it := range o.Items {
			it.HoldID = ""
			items = append(items, it)
		}
		rec("checkout "+name, map[string]any{"status": o.Status, "buyer": o.Buyer, "items": items, "available": p.Available}, err)
	}
	cancel := func(name string) {
		o, err := svc.CancelOrder(ctx, ids[name])
		rec("cancel "+name, o.Status, err)
	}
	buy("1", "x", "a@example.com", "lim", 1)
	buy("2", "y", "a@example.com", "lim", 2) // past the limit on the email: Have 1, holds released
	buy("3", "y", " A@Example.com ", "lim", 1)
	buy("4", "z", "a@example.com", "lim", 1)
	cancel("1")
	buy("5", "z", "a@example.com", "lim", 1) // the cancelled order's unit came back
	cancel("1")                              // again: nothing comes back twice
	buy("6", "w", "a@example.com", "lim", 1)
	buy("other", "w", "b@example.com", "lim", 1)
	clock = clock.Add(svc.HoldTTL + time.Second)
	svc.SweepOnce(ctx) // 3, 5 and other expire unpaid
	for _, n := range []string{"3", "5", "other"} {
		o, err := s.GetOrder(ctx, ids[n])
		rec("after sweep "+n, o.Status, err)
	}
	buy("7", "v", "a@example.com", "lim", 2)
	buy("d1", "x", "c@example.com", "dl", 1)
	buy("d2", "y", "C@example.com", "dl", 1) // the deal's per-buyer limit on the email
	return out
}

var dealIDRE = regexpMust(`[0-9a-f]{32}`)

// normDeal drops what depends on the clock of the read (Remaining is
// derived) so both stores' deals compare exactly.
func normDeal(d *Deal) *Deal {
	if d == nil {
		return nil
	}
	c := *d
	c.EndsAt = c.EndsAt.UTC()
	return &c
}

// TestStoreParity runs the same operation sequence on both stores and
// compares every field of every result and error.
func TestStoreParity(t *testing.T) {
	now := time.Now().Truncate(time.Millisecond)
	var runs [][]string
	forEachStore(t, 4, func(t *testing.T, s Store) {
		runs = append(runs, append(paritySteps(t, s, now), emailLimitSteps(t, s, now)...))
	})
	if len(runs) != 2 {
		t.Skip("one store missing")
	}
	if len(runs[0]) != len(runs[1]) {
		t.Fatalf("%d vs %d steps", len(runs[0]), len(runs[1]))
	}
	diffs := 0
	for i := range runs[0] {
		if !reflect.DeepEqual(runs[0][i], runs[1][i]) {
			diffs++
			t.Errorf("step %d differs:\n bolt:  %s\n redis: %s", i, runs[0][i], runs[1][i])
		}
	}
	t.Logf("%d steps compared, %d differ", len(runs[0]), diffs)
}

func regexpMust(s string) *regexp.Regexp { return regexp.MustCompile(s) }
