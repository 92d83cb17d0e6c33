package cart

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamd/streamd/internal/testenv"
)

type attempt struct {
	key, buyer string
	qty        int
	r          resp
}

// TestRedisOutageDuringCheckouts kills the Redis server under concurrent
// checkouts and restarts it: every 201 is an order committed as it says
// (paid, indexed, found again after the restart), every other answer is
// 503 store_unavailable with Retry-After, the same key afterwards gives one
// order, no order is missing from the index, sold equals paid units, and
// the same Service serves again without a restart.
func TestRedisOutageDuringCheckouts(t *testing.T) {
	srv := testenv.StartRedisServer(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = client.Close() })
	st := NewRedisStore(client)
	var clockSkew atomic.Int64
	h := newHarness(t, st, func(s *Service) {
		s.Now = func() time.Time { return time.Now().Add(time.Duration(clockSkew.Load())) }
		s.SweepInterval = time.Hour // swept by hand below
	})
	h.mustCode(h.staff("POST", "/api/products", map[string]any{"id": "drop", "title": "Drop",
		"price": map[string]any{"amount": 2500, "currency": "eur"}, "stock": 1_000_000}), 201, "")

	var phase atomic.Int32 // 0 before the kill, 1 down, 2 after the restart
	var mu sync.Mutex
	var outs []attempt
	afterRestart := 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				key, buyer := fmt.Sprintf("w%d-%d", w, n), fmt.Sprint("buyer", w)
				p := phase.Load()
				r := h.buy(key, buyer, "drop", 1+n%2)
				mu.Lock()
				outs = append(outs, attempt{key, buyer, 1 + n%2, r})
				if p == 2 && r.code == 201 {
					afterRestart++
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	srv.Kill()
	phase.Store(1)
	// Stay down until buyers have seen the outage (under load a request may
	// outlast a short one in the client's retries).
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		mu.Lock()
		n := 0
		for _, o := range outs {
			if o.r.code == 503 {
				n++
			}
		}
		mu.Unlock()
		if n >= 16 || time.Now().After(deadline) {
			break
		}
	}
	srv.Start()
	phase.Store(2)
	// Run on until orders flow again (the client reconnects by itself).
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		mu.Lock()
		n := afterRestart
		mu.Unlock()
		if n >= 200 || time.Now().After(deadline) {
			break
		}
	}
	close(stop)
	wg.Wait()

	ctx := context.Background()
	created, unavailable := map[string]string{}, 0
	for _, o := range outs {
		switch {
		case o.r.code == 201:
			created[o.key] = o.r.body["order_id"].(string)
			if o.r.body["status"] != "paid" {
				t.Errorf("201 with status %v (the dev provider pays at once): %s", o.r.body["status"], o.r.raw)
			}
		case o.r.code == 503:
			unavailable++
			if o.r.body["error"] != "store_unavailable" || o.r.hdr.Get("Retry-After") == "" {
				t.Errorf("503 without store_unavailable/Retry-After: %v %s", o.r.hdr, o.r.raw)
			}
		default:
			t.Errorf("%s: %d %s", o.key, o.r.code, o.r.raw)
		}
	}
	mu.Lock()
	t.Logf("%d checkouts: %d created, %d answered 503 store_unavailable, %d created after the restart",
		len(outs), len(created), unavailable, afterRestart)
	mu.Unlock()
	if unavailable == 0 || afterRestart == 0 {
		t.Fatalf("the outage was not exercised: %d 503s, %d orders after the restart", unavailable, afterRestart)
	}
	// Every 201 is there after the restart, paid, as it said.
	for key, id := range created {
		o, err := st.GetOrder(ctx, id)
		if err != nil || o.Status != StatusPaid || o.IdempotencyKey != key {
			t.Errorf("order %s acknowledged with 201: %+v %v", id, o.Status, err)
		}
	}
	// Buyers retry what failed, with the same key: one order each. Every
	// other failed checkout is never retried: the sweeper must clean up
	// whatever it left.
	retried, abandoned := 0, 0
	for i, o := range outs {
		if o.r.code != 503 {
			continue
		}
		if i%2 == 1 {
			abandoned++
			continue
		}
		retried++
		r := h.buy(o.key, o.buyer, "drop", 0) // wrong body: must be refused, not answered with the order
		if r.code != 422 && r.code != 400 {
			t.Errorf("retry with another body: %d %s", r.code, r.raw)
		}
		r = h.buy(o.key, o.buyer, "drop", o.qty)
		h.mustCode(r, 201, "")
		if prev, ok := created[o.key]; ok && prev != r.body["order_id"] {
			t.Errorf("key %s: two orders %s and %s", o.key, prev, r.body["order_id"])
		}
		created[o.key] = r.body["order_id"].(string)
	}
	// Nothing is left pending once holds would have expired.
	clockSkew.Store(int64(time.Hour))
	h.svc.SweepOnce(ctx)
	// No order outside the index; one order per key.
	ids, err := client.Keys(ctx, "streamd:cart:order:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	perKey := map[string]int{}
	leftovers := map[OrderStatus]int{}
	for _, k := range ids {
		id := k[len("streamd:cart:order:"):]
		if _, err := client.ZScore(ctx, "streamd:cart:orders", id).Result(); err != nil {
			t.Errorf("order %s is missing from the order index: %v", id, err)
		}
		o, err := st.GetOrder(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		perKey[o.IdempotencyKey]++
		if o.Status == StatusPending {
			t.Errorf("order %s still pending after its holds expired", id)
		}
		if _, ok := created[o.IdempotencyKey]; !ok {
			leftovers[o.Status]++ // made by an abandoned checkout
		}
	}
	for key, n := range perKey {
		if n != 1 {
			t.Errorf("key %s has %d orders", key, n)
		}
	}
	for key := range created {
		if perKey[key] != 1 {
			t.Errorf("acknowledged key %s has %d orders in the store", key, perKey[key])
		}
	}
	t.Logf("%d failed checkouts retried with their key, %d abandoned (their half-made orders afterwards: %v); %d orders in the store, all indexed",
		retried, abandoned, leftovers, len(ids))
	checkSoldInvariant(t, st)
}

// TestStoreUnreachable: with the store gone (Redis down, the bbolt file
// closed) every cart route answers 503 store_unavailable with Retry-After,
// never 500 internal.
func TestStoreUnreachable(t *testing.T) {
	routes := []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/products", nil},
		{"GET", "/api/products/p1", nil},
		{"POST", "/api/products", map[string]any{"id": "p2", "title": "P2", "price": map[string]any{"amount": 1, "currency": "eur"}, "stock": 1}},
		{"PATCH", "/api/products/p1", map[string]any{"stock": 3}},
		{"PUT", "/api/products/p1/deal", map[string]any{"price": map[string]any{"amount": 1, "currency": "eur"}, "ends_at": time.Now().Add(time.Hour)}},
		{"DELETE", "/api/products/p1/deal", nil},
		{"POST", "/api/carts", nil},
		{"GET", "/api/carts/c1", nil},
		{"PUT", "/api/carts/c1/items", map[string]any{"product_id": "p1", "quantity": 1}},
		{"DELETE", "/api/carts/c1/items/p1", nil},
		{"POST", "/api/checkout", map[string]any{"items": []map[string]any{{"product_id": "p1", "quantity": 1}}}},
		{"GET", "/api/orders", nil},
		{"GET", "/api/orders/o1", nil},
		{"POST", "/api/orders/o1/cancel", nil},
	}
	check := func(t *testing.T, h *harness) {
		start := time.Now()
		defer func() {
			t.Logf("%d routes answered 503 in %v each on average", len(routes), time.Since(start)/time.Duration(len(routes)))
		}()
		for _, rt := range routes {
			r := h.do(rt.method, rt.path, rt.body, "Authorization", "Bearer "+staffToken, "Idempotency-Key", "k1", "X-Buyer-Id", "b1")
			if r.code != 503 || r.body["error"] != "store_unavailable" || r.hdr.Get("Retry-After") == "" || r.body["message"] == nil {
				t.Errorf("%s %s: %d Retry-After=%q %s", rt.method, rt.path, r.code, r.hdr.Get("Retry-After"), r.raw)
			}
		}
	}
	t.Run("redis", func(t *testing.T) {
		srv := testenv.StartRedisServer(t)
		client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
		t.Cleanup(func() { _ = client.Close() })
		h := newHarness(t, NewRedisStore(client), nil)
		h.mustCode(h.staff("POST", "/api/products", map[string]any{"id": "p1", "title": "P1", "price": map[string]any{"amount": 1, "currency": "eur"}, "stock": 1}), 201, "")
		srv.Kill()
		check(t, h)
		srv.Start() // and back, without restarting anything else
		back := time.Now()
		for r := h.buy("after", "b1", "p1", 1); r.code != 201; r = h.buy("after", "b1", "p1", 1) {
			if r.code != 503 || time.Since(back) > 20*time.Second {
				t.Fatalf("after the restart: %d %s", r.code, r.raw)
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("checkouts work again %v after Redis is back", time.Since(back).Round(time.Millisecond))
	})
	t.Run("bolt", func(t *testing.T) {
		db := openBolt(t, filepath.Join(t.TempDir(), "streamd.db"))
		st, err := NewBoltStore(db)
		if err != nil {
			t.Fatal(err)
		}
		h := newHarness(t, st, nil)
		h.mustCode(h.staff("POST", "/api/products", map[string]any{"id": "p1", "title": "P1", "price": map[string]any{"amount": 1, "currency": "eur"}, "stock": 1}), 201, "")
		_ = db.Close()
		check(t, h)
	})
}
