package showroom

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/streamd/streamd/cart"
)

type fakeStreams map[string]bool

func (f fakeStreams) StreamExists(_ context.Context, id string) (bool, error) { return f[id], nil }

type fakeOrders []cart.Order

func (f fakeOrders) ListOrders(_ context.Context, stream string, limit int) ([]cart.Order, error) {
	var out []cart.Order
	for _, o := range f {
		if o.Stream == stream && len(out) < limit {
			out = append(out, o)
		}
	}
	return out, nil
}

func TestAnalytics(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	eur := func(c int64) cart.Money { return cart.Money{Amount: c, Currency: "eur"} }
	item := func(p string, q int) []cart.OrderItem { return []cart.OrderItem{{ProductID: p, Quantity: q}} }
	orders := fakeOrders{ // newest first
		{ID: "o4", Stream: "s", Card: "c2", Status: cart.StatusPaid, Items: item("b", 2), Total: eur(2000), Source: "showroom", CreatedAt: t0.Add(4 * time.Second)},
		{ID: "o3", Stream: "s", Card: "c1", Status: cart.StatusExpired, Items: item("a", 1), Total: eur(500), Source: "player", CreatedAt: t0.Add(3 * time.Second)},
		{ID: "o2", Stream: "s", Card: "c1", Status: cart.StatusPaid, Items: item("a", 1), Total: eur(500), Source: "player", CreatedAt: t0.Add(2 * time.Second)},
		{ID: "o1", Stream: "s", Card: "c1", Status: cart.StatusPending, Items: item("a", 1), Total: eur(500), Source: "player", CreatedAt: t0.Add(1 * time.Second)},
		{ID: "x", Stream: "other", Card: "c9", Status: cart.StatusPaid, Items: item("z", 1), Total: eur(1), CreatedAt: t0},
	}
	s := &Server{Streams: fakeStreams{"s": true}, Orders: orders, StaffToken: "tok"}
	if err := s.Initialize(); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	s.Register(mux)

	get := func(path, tok string) (*httptest.ResponseRecorder, Analytics) {
		req := httptest.NewRequest("GET", path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		var a Analytics
		_ = json.Unmarshal(rec.Body.Bytes(), &a)
		return rec, a
	}
	if rec, _ := get("/api/streams/s/analytics", "wrong"); rec.Code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", rec.Code)
	}
	if rec, _ := get("/api/streams/nope/analytics", "tok"); rec.Code != http.StatusNotFound {
		t.Fatalf("unknown stream: %d", rec.Code)
	}
	rec, a := get("/api/streams/s/analytics", "tok")
	if rec.Code != 200 {
		t.Fatalf("analytics: %d %s", rec.Code, rec.Body)
	}
	if a.Orders != 2 || a.Units != 3 || len(a.Revenue) != 1 || a.Revenue[0].Amount != 2500 || len(a.Cards) != 2 {
		t.Fatalf("totals: %+v", a)
	}
	c2, c1 := a.Cards[0], a.Cards[1]
	if c2.Card != "c2" || c2.Orders != 1 || c2.Units != 2 || c2.BySource["showroom"] != 1 {
		t.Fatalf("card c2: %+v", c2)
	}
	if c1.Card != "c1" || c1.Orders != 1 || c1.Pending != 1 || c1.Lost != 1 || c1.Revenue[0].Amount != 500 || !c1.FirstAt.Equal(t0.Add(time.Second)) || c1.Products[0] != "a" {
		t.Fatalf("card c1: %+v", c1)
	}
	if rec, _ := get("/api/streams/s/analytics?limit=0", "tok"); rec.Code != http.StatusBadRequest {
		t.Fatalf("limit=0: %d", rec.Code)
	}
}
