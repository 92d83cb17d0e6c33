package app

import (
	"context"
	"net/http"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/streamd/streamd/internal/httpx"
)

// healthTimeout bounds each check: a load balancer polls /readyz often and
// must not pile up requests behind a Redis that does not answer.
const healthTimeout = time.Second

// component is the state of one thing the server depends on.
type component struct {
	Kind  string `json:"kind"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// health checks the store (a bbolt transaction, or a Redis PING) and the
// overlay bus (the Redis subscription; the in-process bus is always up),
// concurrently.
func (a *App) health(ctx context.Context) (ok bool, store, bus component) {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	var wg sync.WaitGroup
	check := func(c *component, kind string, fn func(context.Context) error) {
		c.Kind = kind
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx); err != nil {
				c.Error = err.Error()
				return
			}
			c.OK = true
		}()
	}
	if a.rdb != nil {
		check(&store, "redis", func(ctx context.Context) error { return a.rdb.Ping(ctx).Err() })
	} else {
		// A read transaction fails once the file is closed; bbolt has no
		// other way to fail a healthy process.
		check(&store, "bbolt", func(context.Context) error { return a.db.View(func(*bolt.Tx) error { return nil }) })
	}
	if a.redisBus != nil {
		check(&bus, "redis", a.redisBus.Health)
	} else {
		check(&bus, "memory", func(context.Context) error { return nil })
	}
	wg.Wait()
	return store.OK && bus.OK, store, bus
}

// handleHealthz reports each dependency: 200 when all are up, 503 (with
// what is down) when the server is degraded.
func (a *App) handleHealthz(w http.ResponseWriter, r *http.Request) {
	ok, store, bus := a.health(r.Context())
	status, code := http.StatusOK, "ok"
	if !ok {
		status, code = http.StatusServiceUnavailable, "degraded"
		w.Header().Set("Retry-After", "5")
	}
	httpx.WriteJSON(w, status, map[string]any{"status": code, "store": store, "bus": bus})
}

// handleReadyz is for load balancers: 200 when this node can serve viewers
// and buyers, else 503 in the contract's error shape.
func (a *App) handleReadyz(w http.ResponseWriter, r *http.Request) {
	ok, store, bus := a.health(r.Context())
	if ok {
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"status": "ready"})
		return
	}
	msg := "the store is unreachable: " + store.Error
	if store.OK {
		msg = "the event bus is unreachable: " + bus.Error
	}
	w.Header().Set("Retry-After", "5")
	httpx.WriteError(w, http.StatusServiceUnavailable, "not_ready", msg)
}
