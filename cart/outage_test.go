package cart

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamd/streamd/internal/testenv"
)

// ownRedis is a redis-server this test starts (and kills) itself, with an
// fsync-always AOF in dir so that what it acknowledged survives SIGKILL.
type ownRedis struct {
	t    *testing.T
	bin  string
	dir  string
	port int
	cmd  *exec.Cmd
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (r *ownRedis) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

func (r *ownRedis) start() {
	r.t.Helper()
	r.cmd = exec.Command(r.bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--dir", r.dir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "")
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: r.addr(), MaxRetries: -1})
	defer c.Close()
	for i := 0; ; i++ {
		if err := c.Ping(context.Background()).Err(); err == nil {
			return
		} else if i > 200 {
			r.t.Fatalf("redis-server on %s did not come up: %v", r.addr(), err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// kill ends the server with SIGKILL, by its PID.
func (r *ownRedis) kill() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

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
	srv := &ownRedis{t: t, bin: testenv.LookPath(t, "redis-server", "apt-get install -y redis-server"), dir: t.TempDir(), port: freePort(t)}
	srv.start()
	t.Cleanup(srv.kill)
	client := redis.NewClient(&redis.Options{Addr: srv.addr()})
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
	srv.kill()
	phase.Store(1)
	time.Sleep(1500 * time.Millisecond)
	srv.start()
	phase.Store(2)
	time.Sleep(1500 * time.Millisecond)
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
	// Buyers retry what failed, with the same key: one order each.
	retried := 0
	for _, o := range outs {
		if o.r.code != 503 {
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
	}
	for key, n := range perKey {
		if n != 1 {
			t.Errorf("key %s has %d orders", key, n)
		}
	}
	if len(perKey) != len(created) {
		t.Errorf("%d keys with orders in the store, %d acknowledged", len(perKey), len(created))
	}
	t.Logf("%d failed checkouts retried with their key; %d orders in the store, all indexed", retried, len(ids))
	checkSoldInvariant(t, st)
}
