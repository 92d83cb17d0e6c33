package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// checkoutResult is one flash sale.
type checkoutResult struct {
	created, soldOut, other int
	available               int
	lat                     []float64
	wall                    time.Duration
	firstErr                string
}

// flashSale runs buyers concurrent "buy now" checkouts for one product.
func flashSale(ctx context.Context, e *Env, srv *Server, label string) (checkoutResult, error) {
	o := e.Opts
	var res checkoutResult
	product := fmt.Sprintf("bench-flash-%d", time.Now().UnixNano())
	if err := srv.CreateProduct(ctx, product, o.Stock); err != nil {
		return res, err
	}
	tr := &http.Transport{MaxIdleConns: o.Conns, MaxIdleConnsPerHost: o.Conns, MaxConnsPerHost: o.Conns, IdleConnTimeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	body, _ := json.Marshal(map[string]any{"items": []map[string]any{{"product_id": product, "quantity": 1}}, "stream": "bench",
		"buyer": map[string]any{"email": "bench@example.com", "name": "Bench"}, "delivery": map[string]any{"method": "pickup"}})
	var mu sync.Mutex
	lat := make([]float64, 0, o.Buyers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < o.Buyers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, _ := http.NewRequestWithContext(ctx, "POST", srv.Base+"/api/checkout", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", fmt.Sprintf("%s-%d", product, i))
			// No cookie: each request is a new buyer (the server issues the id).
			t0 := time.Now()
			r, err := client.Do(req)
			code := 0
			var msg []byte
			if err == nil {
				msg, _ = io.ReadAll(r.Body)
				r.Body.Close()
				code = r.StatusCode
			}
			d := float64(time.Since(t0).Microseconds()) / 1000
			mu.Lock()
			defer mu.Unlock()
			lat = append(lat, d)
			switch {
			case code == 201:
				res.created++
			case code == 409 && bytes.Contains(msg, []byte(`"sold_out"`)):
				res.soldOut++
			default:
				res.other++
				if res.firstErr == "" {
					if err != nil {
						res.firstErr = err.Error()
					} else {
						res.firstErr = fmt.Sprintf("%d %s", code, bytes.TrimSpace(msg))
					}
				}
			}
			if n := res.created + res.soldOut + res.other; n%250 == 0 {
				e.Progress.Set("checkout %s: %d/%d answered, %d orders", label, n, o.Buyers, res.created)
			}
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	res.wall = time.Since(t0)
	res.lat = lat
	var p struct {
		Available int `json:"available"`
	}
	if _, err := srv.API(ctx, "GET", "/api/products/"+product, nil, &p); err != nil {
		return res, err
	}
	res.available = p.Available
	return res, nil
}

func runCheckout(ctx context.Context, e *Env) ([]Row, error) {
	o := e.Opts
	type store struct{ name, redis string }
	stores := []store{{"embedded", ""}}
	if o.Redis != "" {
		stores = append(stores, store{"redis", o.Redis})
	}
	var rows []Row
	for _, st := range stores {
		var srv *Server
		var err error
		if st.redis != "" {
			if err := flushRedis(ctx, st.redis); err != nil {
				return rows, fmt.Errorf("redis: %w", err)
			}
			srv, err = e.StartServer(ctx, "checkout-redis", "--redis", st.redis)
		} else {
			srv, err = e.target(ctx, "checkout")
		}
		if err != nil {
			return rows, err
		}
		u := startUsage(srv.PID)
		res, err := flashSale(ctx, e, srv, st.name)
		cores, _, self := u.end()
		if err != nil {
			return rows, err
		}
		if res.other > 0 {
			e.Progress.Set("checkout %s: %d unexpected answers, first: %s", st.name, res.other, res.firstErr)
			e.Progress.Done()
		}
		sl := sortedCopy(res.lat)
		oversold := max(0, res.created-o.Stock)
		if res.available < 0 {
			oversold = max(oversold, -res.available)
		}
		r := Row{Scenario: "checkout"}
		r.add("store", st.name)
		r.add("stock", o.Stock)
		r.add("buyers", o.Buyers)
		r.add("req_s", float64(o.Buyers)/res.wall.Seconds())
		r.add("p50_ms", percentile(sl, 0.5))
		r.add("p99_ms", percentile(sl, 0.99))
		r.add("orders", res.created)
		r.add("sold_out", res.soldOut)
		r.add("errors", res.other)
		r.add("available_after", res.available)
		r.add("oversold", oversold)
		r.add("server_cores", cores)
		r.add("bench_cores", self)
		rows = append(rows, r)
		srv.Stop()
	}
	return rows, nil
}

// flushRedis empties the DB of a redis:// URL (the bench's own DB).
func flushRedis(ctx context.Context, raw string) error {
	opt, err := redis.ParseURL(raw)
	if err != nil {
		return err
	}
	if opt.DB == 0 { // also when the URL has no DB
		return fmt.Errorf("%s: give the DB explicitly (e.g. /12); the bench flushes it", raw)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return c.FlushDB(cctx).Err()
}
