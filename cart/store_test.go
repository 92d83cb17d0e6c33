package cart

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/streamd/streamd/internal/testenv"
)

// Redis DB numbers of this package: 4 conformance, 5 flash sale, 6 HTTP and
// service tests, 7 benchmarks.

func openBolt(t testing.TB, path string) *bbolt.DB {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func newBoltStore(t testing.TB) *BoltStore {
	t.Helper()
	db := openBolt(t, filepath.Join(t.TempDir(), "streamd.db"))
	t.Cleanup(func() { _ = db.Close() })
	s, err := NewBoltStore(db)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// forEachStore runs f against a fresh store of each kind.
func forEachStore(t *testing.T, redisDB int, f func(t *testing.T, s Store)) {
	t.Run("bolt", func(t *testing.T) { f(t, newBoltStore(t)) })
	t.Run("redis", func(t *testing.T) { f(t, NewRedisStore(testenv.Redis(t, redisDB))) })
}

func mkProduct(t testing.TB, s Store, id string, stock, limit int, skus ...SKU) {
	t.Helper()
	p := Product{ID: id, Title: "T " + id, Price: Money{Amount: 4900, Currency: "eur"}, Active: true,
		PerBuyerLimit: limit, Images: []string{}}
	if len(skus) == 0 {
		skus = []SKU{{ID: DefaultSKU, Stock: stock}}
	}
	p.SKUs = skus
	if err := s.CreateProduct(context.Background(), p); err != nil {
		t.Fatal(err)
	}
}

func avail(t testing.TB, s Store, id string) int {
	t.Helper()
	p, err := s.GetProduct(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return p.Available
}

func reserve(s Store, id, hold, buyer string, q int, now time.Time) (Hold, error) {
	return s.Reserve(context.Background(), ReserveRequest{HoldID: hold, ProductID: id, Quantity: q, Buyer: buyer, TTL: time.Minute, Now: now})
}

func TestStoreConformance(t *testing.T) {
	ctx := context.Background()
	forEachStore(t, 4, func(t *testing.T, s Store) {
		t.Run("catalog", func(t *testing.T) {
			mkProduct(t, s, "p1", 10, 0)
			if err := s.CreateProduct(ctx, Product{ID: "p1", Title: "x", SKUs: []SKU{{ID: "default"}}}); !errors.Is(err, ErrExists) {
				t.Fatalf("duplicate create: %v", err)
			}
			p, err := s.GetProduct(ctx, "p1")
			if err != nil || p.Stock != 10 || p.Available != 10 || !p.Active || p.Price.Amount != 4900 || p.Deal != nil {
				t.Fatalf("get: %+v %v", p, err)
			}
			if _, err := s.GetProduct(ctx, "nope"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("unknown: %v", err)
			}
			price, off := Money{Amount: 3900, Currency: "eur"}, false
			p, err = s.UpdateProduct(ctx, "p1", ProductUpdate{Price: &price, Stock: map[string]int{"": 12}, Active: &off})
			if err != nil || p.Price.Amount != 3900 || p.Stock != 12 || p.Active {
				t.Fatalf("update: %+v %v", p, err)
			}
			if _, err := s.UpdateProduct(ctx, "nope", ProductUpdate{Active: &off}); !errors.Is(err, ErrNotFound) {
				t.Fatalf("update unknown: %v", err)
			}
			if _, err := s.UpdateProduct(ctx, "p1", ProductUpdate{Stock: map[string]int{"zz": 1}}); !errors.Is(err, ErrUnknownSKU) {
				t.Fatalf("update unknown sku: %v", err)
			}
			if _, err := reserve(s, "p1", "h", "", 1, time.Now()); !errors.Is(err, ErrInactive) {
				t.Fatalf("inactive reserve: %v", err)
			}
			mkProduct(t, s, "tee", 0, 0, SKU{ID: "s", Stock: 2}, SKU{ID: "m", Stock: 3})
			if _, err := reserve(s, "tee", "h", "", 1, time.Now()); !errors.Is(err, ErrSKURequired) {
				t.Fatalf("sku required: %v", err)
			}
			if _, err := s.Reserve(ctx, ReserveRequest{HoldID: "h", ProductID: "tee", SKU: "xl", Quantity: 1, TTL: time.Minute, Now: time.Now()}); !errors.Is(err, ErrUnknownSKU) {
				t.Fatalf("unknown sku: %v", err)
			}
			h, err := s.Reserve(ctx, ReserveRequest{HoldID: "h", ProductID: "tee", SKU: "m", Quantity: 3, TTL: time.Minute, Now: time.Now()})
			if err != nil || h.SKU != "m" {
				t.Fatal(h, err)
			}
			p, _ = s.GetProduct(ctx, "tee")
			if p.Available != 2 || p.SKUs[1].Available != 0 || p.SKUs[0].Available != 2 {
				t.Fatalf("sku availability: %+v", p)
			}
			ps, err := s.ListProducts(ctx)
			if err != nil || len(ps) != 2 {
				t.Fatalf("list: %d %v", len(ps), err)
			}
		})
		t.Run("holds", func(t *testing.T) {
			mkProduct(t, s, "h1", 10, 0)
			now := time.Now()
			h, err := reserve(s, "h1", "a", "b1", 3, now)
			if err != nil || h.Quantity != 3 || h.UnitPrice.Amount != 4900 || h.Committed {
				t.Fatal(h, err)
			}
			if n := avail(t, s, "h1"); n != 7 {
				t.Fatalf("available %d, want 7", n)
			}
			if _, err := reserve(s, "h1", "a", "b1", 5, now); err != nil { // re-set quantity
				t.Fatal(err)
			}
			if n := avail(t, s, "h1"); n != 5 {
				t.Fatalf("available %d, want 5", n)
			}
			var so *SoldOutError
			if _, err := reserve(s, "h1", "b", "b2", 6, now); !errors.As(err, &so) || so.Available != 5 || so.Deal {
				t.Fatalf("sold out: %v", err)
			}
			if n := avail(t, s, "h1"); n != 5 {
				t.Fatalf("failed reserve changed stock: %d", n)
			}
			if _, err := s.Commit(ctx, "h1", "a", now); err != nil {
				t.Fatal(err)
			}
			if h, err := s.Commit(ctx, "h1", "a", now); err != nil || !h.Committed { // idempotent
				t.Fatal(h, err)
			}
			if h, err := reserve(s, "h1", "a", "b1", 9, now); err != nil || !h.Committed || h.Quantity != 5 { // committed stays
				t.Fatal(h, err)
			}
			p, _ := s.GetProduct(ctx, "h1")
			if p.SKUs[0].Sold != 5 || p.SKUs[0].Held != 0 || p.Available != 5 {
				t.Fatalf("after commit: %+v", p.SKUs[0])
			}
			if _, err := s.Commit(ctx, "h1", "zz", now); !errors.Is(err, ErrHoldGone) {
				t.Fatalf("commit unknown: %v", err)
			}
			if ok, err := s.Release(ctx, "h1", "a"); !ok || err != nil { // a sold hold returns to stock
				t.Fatal(ok, err)
			}
			if ok, err := s.Release(ctx, "h1", "a"); ok || err != nil {
				t.Fatal("second release", ok, err)
			}
			if n := avail(t, s, "h1"); n != 10 {
				t.Fatalf("available %d, want 10", n)
			}
			// A variant's own price is what its holds lock in.
			xl := Money{Amount: 5900, Currency: "eur"}
			mkProduct(t, s, "h2", 0, 0, SKU{ID: "m", Stock: 2}, SKU{ID: "xl", Stock: 2, Price: &xl})
			for sku, want := range map[string]int64{"m": 4900, "xl": 5900} {
				h, err := s.Reserve(ctx, ReserveRequest{HoldID: sku, ProductID: "h2", SKU: sku, Quantity: 1, TTL: time.Minute, Now: now})
				if err != nil || h.UnitPrice != (Money{Amount: want, Currency: "eur"}) {
					t.Fatalf("hold of %s: %+v %v, want %d", sku, h, err, want)
				}
			}
			if p, err := s.GetProduct(ctx, "h2"); err != nil || p.SKUs[1].Price == nil || *p.SKUs[1].Price != xl || p.SKUs[0].Price != nil {
				t.Fatalf("variant prices read back: %+v %v", p.SKUs, err)
			}
			// Stock lowered below what is held: available never goes negative.
			if _, err := reserve(s, "h1", "c", "", 8, now); err != nil {
				t.Fatal(err)
			}
			if _, err := s.UpdateProduct(ctx, "h1", ProductUpdate{Stock: map[string]int{"default": 5}}); err != nil {
				t.Fatal(err)
			}
			if n := avail(t, s, "h1"); n != 0 {
				t.Fatalf("available %d, want 0", n)
			}
		})
		t.Run("expiry", func(t *testing.T) {
			mkProduct(t, s, "e1", 5, 0)
			mkProduct(t, s, "e2", 5, 0)
			t0 := time.Now()
			_, base, err := s.Sweep(ctx, t0)
			if err != nil {
				t.Fatal(err)
			}
			short := func(pid, id string, q int) {
				if _, err := s.Reserve(ctx, ReserveRequest{HoldID: id, ProductID: pid, Quantity: q, Buyer: "b", TTL: 50 * time.Millisecond, Now: t0}); err != nil {
					t.Fatal(err)
				}
			}
			short("e1", "x", 5)
			short("e2", "y", 2)
			short("e2", "z", 1)
			if _, err := s.Commit(ctx, "e2", "z", t0); err != nil {
				t.Fatal(err)
			}
			changed, active, err := s.Sweep(ctx, t0.Add(10*time.Millisecond))
			if err != nil || len(changed) != 0 || active != base+2 {
				t.Fatalf("early sweep: %v %d %v", changed, active, err)
			}
			changed, active, err = s.Sweep(ctx, t0.Add(100*time.Millisecond))
			if err != nil || len(changed) != 2 || active != base {
				t.Fatalf("sweep: %v %d %v", changed, active, err)
			}
			if a, b := avail(t, s, "e1"), avail(t, s, "e2"); a != 5 || b != 4 {
				t.Fatalf("after sweep %d %d, want 5 4 (committed stays)", a, b)
			}
			if _, err := s.Commit(ctx, "e1", "x", t0.Add(time.Second)); !errors.Is(err, ErrHoldGone) {
				t.Fatalf("commit after expiry: %v", err)
			}
			// Expired but not yet swept: commit refuses, reserve sweeps inline.
			short("e1", "w", 5)
			if _, err := s.Commit(ctx, "e1", "w", t0.Add(time.Second)); !errors.Is(err, ErrHoldGone) {
				t.Fatalf("commit expired: %v", err)
			}
			short("e1", "v", 5)
			if _, err := reserve(s, "e1", "u", "", 5, t0.Add(time.Second)); err != nil {
				t.Fatalf("reserve over an expired hold: %v", err)
			}
		})
		t.Run("limits", func(t *testing.T) {
			mkProduct(t, s, "l1", 10, 2)
			now := time.Now()
			if _, err := reserve(s, "l1", "a1", "alice", 2, now); err != nil {
				t.Fatal(err)
			}
			var le *LimitError
			if _, err := reserve(s, "l1", "a2", "alice", 1, now); !errors.As(err, &le) || le.Limit != 2 || le.Have != 2 {
				t.Fatalf("limit: %v", err)
			}
			if _, err := reserve(s, "l1", "a1", "alice", 1, now); err != nil { // lowering is fine
				t.Fatal(err)
			}
			if _, err := reserve(s, "l1", "a2", "alice", 1, now); err != nil {
				t.Fatal(err)
			}
			if _, err := reserve(s, "l1", "b1", "bob", 2, now); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Commit(ctx, "l1", "b1", now); err != nil {
				t.Fatal(err)
			}
			if _, err := reserve(s, "l1", "b2", "bob", 1, now); !errors.As(err, &le) { // sold counts too
				t.Fatalf("limit after commit: %v", err)
			}
			if _, err := s.Release(ctx, "l1", "b1"); err != nil {
				t.Fatal(err)
			}
			if _, err := reserve(s, "l1", "b2", "bob", 2, now); err != nil {
				t.Fatal(err)
			}
			if _, err := reserve(s, "l1", "n1", "", 4, now); err != nil { // anonymous: no limit accounting
				t.Fatal(err)
			}
		})
		t.Run("deals", func(t *testing.T) {
			mkProduct(t, s, "d1", 100, 0)
			now := time.Now()
			d, err := s.SetDeal(ctx, "d1", Deal{Price: Money{Amount: 1000, Currency: "eur"}, EndsAt: now.Add(time.Hour), Quantity: 3, PerBuyer: 2, HoldTTL: 30 * time.Second})
			if err != nil || d.ID == "" {
				t.Fatal(d, err)
			}
			p, _ := s.GetProduct(ctx, "d1")
			if p.Deal == nil || p.Deal.Price.Amount != 1000 || p.Deal.Quantity != 3 || p.Deal.HoldTTL != 30*time.Second {
				t.Fatalf("product deal: %+v", p.Deal)
			}
			h, err := reserve(s, "d1", "a", "alice", 2, now)
			if err != nil || h.UnitPrice.Amount != 1000 || h.DealID != d.ID || h.ExpiresAt.Sub(now) > 31*time.Second {
				t.Fatal(h, err)
			}
			var le *LimitError
			if _, err := reserve(s, "d1", "a2", "alice", 1, now); !errors.As(err, &le) || !le.Deal {
				t.Fatalf("deal per-buyer: %v", err)
			}
			if _, err := reserve(s, "d1", "b", "bob", 1, now); err != nil {
				t.Fatal(err)
			}
			var so *SoldOutError
			if _, err := reserve(s, "d1", "c", "carol", 1, now); !errors.As(err, &so) || !so.Deal || so.Available != 0 {
				t.Fatalf("deal cap: %v", err)
			}
			if _, err := s.Commit(ctx, "d1", "b", now); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Release(ctx, "d1", "a"); err != nil { // frees 2 deal units
				t.Fatal(err)
			}
			p, _ = s.GetProduct(ctx, "d1")
			if p.Deal.Used != 1 || *p.Deal.Remaining != 2 || p.Available != 99 {
				t.Fatalf("after release: %+v avail %d", p.Deal, p.Available)
			}
			if h, err := reserve(s, "d1", "c", "carol", 2, now); err != nil || h.UnitPrice.Amount != 1000 {
				t.Fatal(h, err)
			}
			// After the deal ends: base price, no cap.
			later := now.Add(2 * time.Hour)
			if h, err := reserve(s, "d1", "e", "erin", 5, later); err != nil || h.UnitPrice.Amount != 4900 || h.DealID != "" {
				t.Fatal(h, err)
			}
			if err := s.ClearDeal(ctx, "d1"); err != nil {
				t.Fatal(err)
			}
			p, _ = s.GetProduct(ctx, "d1")
			if p.Deal != nil {
				t.Fatal("deal not cleared")
			}
			if h, err := reserve(s, "d1", "f", "fred", 1, now); err != nil || h.UnitPrice.Amount != 4900 {
				t.Fatal(h, err)
			}
			// A new deal starts from zero.
			if _, err := s.SetDeal(ctx, "d1", Deal{Price: Money{Amount: 500, Currency: "eur"}, EndsAt: now.Add(time.Hour), Quantity: 1}); err != nil {
				t.Fatal(err)
			}
			if h, err := reserve(s, "d1", "g", "alice", 1, now); err != nil || h.UnitPrice.Amount != 500 {
				t.Fatal(h, err)
			}
			if _, err := s.SetDeal(ctx, "nope", Deal{EndsAt: now.Add(time.Hour)}); !errors.Is(err, ErrNotFound) {
				t.Fatalf("deal on unknown: %v", err)
			}
		})
		t.Run("orders", func(t *testing.T) {
			now := time.Now().Truncate(time.Millisecond)
			o := Order{ID: randomID(), Status: StatusPending, IdempotencyKey: "k1", Stream: "s1", Total: Money{Amount: 1, Currency: "eur"},
				HoldExpiresAt: now.Add(time.Second), CreatedAt: now, Items: []OrderItem{{ProductID: "p", SKU: "default", Quantity: 1, HoldID: "h"}}}
			got, created, err := s.CreateOrder(ctx, o)
			if err != nil || !created || got.ID != o.ID {
				t.Fatal(got, created, err)
			}
			o2 := o
			o2.ID = randomID()
			got, created, err = s.CreateOrder(ctx, o2)
			if err != nil || created || got.ID != o.ID {
				t.Fatalf("same key must return the first order: %v %v %v", got.ID, created, err)
			}
			if _, err := s.GetOrder(ctx, o2.ID); !errors.Is(err, ErrNotFound) {
				t.Fatalf("second order stored: %v", err)
			}
			if got, err := s.OrderByKey(ctx, "k1"); err != nil || got.ID != o.ID || got.Items[0].HoldID != "h" {
				t.Fatal(got, err)
			}
			if _, err := s.OrderByKey(ctx, "k2"); !errors.Is(err, ErrNotFound) {
				t.Fatal(err)
			}
			ids, err := s.ExpiredOrders(ctx, now.Add(2*time.Second), 10)
			if err != nil || len(ids) != 1 || ids[0] != o.ID {
				t.Fatalf("expired: %v %v", ids, err)
			}
			if ids, _ := s.ExpiredOrders(ctx, now, 10); len(ids) != 0 {
				t.Fatalf("expired too early: %v", ids)
			}
			step := func(to OrderStatus) error {
				_, err := s.UpdateOrder(ctx, o.ID, func(o *Order) error { return o.Transition(to, time.Now()) })
				return err
			}
			if err := step(StatusAuthorized); err != nil {
				t.Fatal(err)
			}
			if ids, _ := s.ExpiredOrders(ctx, now.Add(2*time.Second), 10); len(ids) != 0 {
				t.Fatalf("non-pending order listed as expiring: %v", ids)
			}
			if err := step(StatusPending); !errors.Is(err, ErrIllegalTransition) {
				t.Fatalf("backwards: %v", err)
			}
			if err := step(StatusPaid); err != nil {
				t.Fatal(err)
			}
			for _, to := range []OrderStatus{StatusPending, StatusAuthorized, StatusExpired} {
				if err := step(to); !errors.Is(err, ErrIllegalTransition) {
					t.Fatalf("paid → %s: %v", to, err)
				}
			}
			// Fulfilment goes forward only: paid → packed → shipped → refunded.
			for _, to := range []OrderStatus{StatusPacked, StatusShipped, StatusPartiallyRefunded, StatusRefunded} {
				if err := step(to); err != nil {
					t.Fatalf("→ %s: %v", to, err)
				}
			}
			for _, to := range []OrderStatus{StatusPaid, StatusPacked, StatusShipped, StatusPickedUp, StatusCancelled} {
				if err := step(to); !errors.Is(err, ErrIllegalTransition) {
					t.Fatalf("refunded → %s: %v", to, err)
				}
			}
			got, _ = s.GetOrder(ctx, o.ID)
			if got.Status != StatusRefunded {
				t.Fatalf("status %s", got.Status)
			}
			var hist []OrderStatus
			for _, e := range got.History {
				hist = append(hist, e.Status)
			}
			if fmt.Sprint(hist) != "[authorized paid packed shipped partially_refunded refunded]" {
				t.Fatalf("history %v", hist)
			}
			if _, err := s.UpdateOrder(ctx, "nope", func(*Order) error { return nil }); !errors.Is(err, ErrNotFound) {
				t.Fatal(err)
			}
			o3 := Order{ID: randomID(), Status: StatusPaid, IdempotencyKey: "k3", Stream: "s2", CreatedAt: now.Add(time.Millisecond)}
			if _, _, err := s.CreateOrder(ctx, o3); err != nil {
				t.Fatal(err)
			}
			all, _ := s.ListOrders(ctx, "", 10)
			s1, _ := s.ListOrders(ctx, "s1", 10)
			if len(all) != 2 || all[0].ID != o3.ID || len(s1) != 1 || s1[0].ID != o.ID {
				t.Fatalf("list: %d %d", len(all), len(s1))
			}
		})
		t.Run("email_limits", func(t *testing.T) {
			// Limit 2 on the email: the check and the count are one step with
			// the order; an order that ends unpaid gives its units back once.
			now := time.Now()
			a := emailHash("a@example.com")
			order := func(id, key string, q int, c ...emailClaim) (Order, bool, error) {
				return s.CreateOrder(ctx, Order{ID: id, Status: StatusPending, IdempotencyKey: key, CreatedAt: now, HoldExpiresAt: now.Add(time.Minute),
					Items: []OrderItem{{ProductID: "el", SKU: DefaultSKU, Quantity: q, HoldID: "h-" + id}}, emailClaims: c})
			}
			claim := func(q int) emailClaim { return emailClaim{ProductID: "el", Email: a, Units: q, Limit: 2} }
			var le *LimitError
			if _, ok, err := order("e1", "ek1", 1, claim(1)); !ok || err != nil {
				t.Fatalf("first order: %v %v", ok, err)
			}
			if _, _, err := order("e2", "ek2", 2, claim(2)); !errors.As(err, &le) || *le != (LimitError{ProductID: "el", Limit: 2, Have: 1}) {
				t.Fatalf("past the limit: %v", err)
			}
			// Refused whole: no order, no key, no hold claim was left.
			if _, err := s.GetOrder(ctx, "e2"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("refused order stored: %v", err)
			}
			if _, err := s.OrderByKey(ctx, "ek2"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("refused order's key stored: %v", err)
			}
			if _, ok, err := order("e2", "ek2", 1, claim(1)); !ok || err != nil {
				t.Fatalf("second order within the limit: %v %v", ok, err)
			}
			if prev, ok, err := order("e9", "ek2", 1, claim(1)); ok || err != nil || prev.ID != "e2" {
				t.Fatalf("a replay is not counted again: %v %v %v", prev.ID, ok, err)
			}
			// The deal counts apart from the product.
			dc := emailClaim{ProductID: "el", DealID: "d1", Email: a, Units: 1, Limit: 1}
			if _, _, err := order("e3", "ek3", 1, claim(1), dc); !errors.As(err, &le) || le.Have != 2 || le.Deal {
				t.Fatalf("full: %v", err)
			}
			if _, ok, err := order("e3", "ek3", 1, dc); !ok || err != nil {
				t.Fatalf("deal claim: %v %v", ok, err)
			}
			if _, _, err := order("e4", "ek4", 1, dc); !errors.As(err, &le) || *le != (LimitError{ProductID: "el", Limit: 1, Have: 1, Deal: true}) {
				t.Fatalf("deal limit: %v", err)
			}
			end := func(id string, to ...OrderStatus) {
				t.Helper()
				for _, st := range to {
					if _, err := s.UpdateOrder(ctx, id, func(o *Order) error { return o.Transition(st, now) }); err != nil {
						t.Fatalf("%s → %s: %v", id, st, err)
					}
				}
			}
			end("e1", StatusCancelled, StatusCancelled) // the second is a no-op: released once
			end("e2", StatusPaid, StatusRefunded)       // bought: stays counted
			if _, ok, err := order("e5", "ek5", 1, claim(1)); !ok || err != nil {
				t.Fatalf("after a cancel: %v %v", ok, err)
			}
			if _, _, err := order("e6", "ek6", 1, claim(1)); !errors.As(err, &le) || le.Have != 2 {
				t.Fatalf("released twice, or a refund gave units back: %v", err)
			}
			end("e5", StatusExpired)
			if _, ok, err := order("e6", "ek6", 1, claim(1)); !ok || err != nil {
				t.Fatalf("after expiry: %v %v", ok, err)
			}
			// Stored with the order, never in its JSON.
			got, err := s.GetOrder(ctx, "e6")
			if err != nil || len(got.emailClaims) != 1 || got.emailClaims[0].Email != a {
				t.Fatalf("stored claims: %+v %v", got.emailClaims, err)
			}
		})
		t.Run("carts_events", func(t *testing.T) {
			c := Cart{ID: randomID(), Buyer: "b", Items: []CartItem{{OrderItem: OrderItem{ProductID: "p", Quantity: 2, HoldID: "h"}}}}
			if err := s.PutCart(ctx, c); err != nil {
				t.Fatal(err)
			}
			if got, err := s.GetCart(ctx, c.ID); err != nil || len(got.Items) != 1 || got.Items[0].HoldID != "h" {
				t.Fatal(got, err)
			}
			if err := s.DeleteCart(ctx, c.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := s.GetCart(ctx, c.ID); !errors.Is(err, ErrNotFound) {
				t.Fatal(err)
			}
			if seen, _ := s.SeenEvent(ctx, "evt_1"); seen {
				t.Fatal("seen before")
			}
			if err := s.MarkEvent(ctx, "evt_1"); err != nil {
				t.Fatal(err)
			}
			if seen, _ := s.SeenEvent(ctx, "evt_1"); !seen {
				t.Fatal("not seen")
			}
		})
		t.Run("concurrent_reserve", func(t *testing.T) {
			mkProduct(t, s, "c1", 10, 0)
			var ok, sold atomic.Int32
			var wg sync.WaitGroup
			for i := range 100 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := reserve(s, "c1", fmt.Sprint("h", i), fmt.Sprint("b", i), 1, time.Now())
					var so *SoldOutError
					switch {
					case err == nil:
						ok.Add(1)
					case errors.As(err, &so):
						sold.Add(1)
					default:
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			if ok.Load() != 10 || sold.Load() != 90 || avail(t, s, "c1") != 0 {
				t.Fatalf("ok %d sold out %d", ok.Load(), sold.Load())
			}
			checkSoldInvariant(t, s, "c1")
		})
		t.Run("concurrent_orders", func(t *testing.T) {
			// Orders made, paid and cancelled concurrently: sold always
			// equals the paid units.
			mkProduct(t, s, "c2", 40, 0)
			var wg sync.WaitGroup
			for i := range 60 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					now := time.Now()
					hid := fmt.Sprint("o", i)
					h, err := reserve(s, "c2", hid, fmt.Sprint("b", i), 1+i%3, now)
					if err != nil {
						return // sold out
					}
					o := Order{ID: randomID(), Status: StatusPending, IdempotencyKey: hid, CreatedAt: now, HoldExpiresAt: h.ExpiresAt,
						Items: []OrderItem{h.item()}}
					if _, _, err := s.CreateOrder(ctx, o); err != nil {
						t.Error(err)
						return
					}
					if _, err := s.Commit(ctx, "c2", hid, now); err != nil {
						t.Error(err)
						return
					}
					to := StatusPaid
					if i%4 == 0 {
						to = StatusCancelled
						if _, err := s.Release(ctx, "c2", hid); err != nil {
							t.Error(err)
						}
					}
					if _, err := s.UpdateOrder(ctx, o.ID, func(o *Order) error { return o.Transition(to, now) }); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			if p, _ := s.GetProduct(ctx, "c2"); p.SKUs[0].Sold == 0 || p.SKUs[0].Held != 0 {
				t.Fatalf("after concurrent orders: %+v", p.SKUs[0])
			}
			checkSoldInvariant(t, s, "c2")
		})
	})
}
