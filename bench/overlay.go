package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// wsViewer is one overlay WebSocket viewer: it checks seq continuity and
// records when each card event arrived.
type wsViewer struct {
	conn *websocket.Conn

	mu      sync.Mutex
	lastSeq int64 // -1 before the snapshot
	gaps    int   // events missing between consecutive seqs
	cards   map[uint64]int64
	closed  bool
}

type wsMsg struct {
	Type string `json:"type"`
	Seq  uint64 `json:"seq"`
}

func dialViewer(ctx context.Context, d *websocket.Dialer, url string) (*wsViewer, error) {
	c, _, err := d.DialContext(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	v := &wsViewer{conn: c, lastSeq: -1, cards: map[uint64]int64{}}
	go v.read()
	return v, nil
}

func (v *wsViewer) read() {
	var m wsMsg
	for {
		_, b, err := v.conn.ReadMessage()
		now := time.Now().UnixNano()
		if err != nil {
			v.mu.Lock()
			v.closed = true
			v.mu.Unlock()
			return
		}
		m = wsMsg{}
		if json.Unmarshal(b, &m) != nil {
			continue
		}
		v.mu.Lock()
		switch m.Type {
		case "snapshot":
			v.lastSeq = int64(m.Seq)
		case "pong", "error":
		default:
			if v.lastSeq >= 0 {
				if d := int64(m.Seq) - v.lastSeq; d > 1 {
					v.gaps += int(d - 1)
				}
			}
			if int64(m.Seq) > v.lastSeq {
				v.lastSeq = int64(m.Seq)
			}
			if m.Type == "card" {
				v.cards[m.Seq] = now
			}
		}
		v.mu.Unlock()
	}
}

func (v *wsViewer) ready() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.lastSeq >= 0
}

func (v *wsViewer) close() {
	v.mu.Lock()
	v.closed = true
	v.mu.Unlock()
	_ = v.conn.Close()
}

func runOverlay(ctx context.Context, e *Env) ([]Row, error) {
	o := e.Opts
	srv, err := e.target(ctx, "overlay")
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	stream := fmt.Sprintf("bench-overlay-%d", time.Now().Unix())
	if _, err := srv.CreateStream(ctx, stream); err != nil {
		return nil, err
	}
	const product = "bench-card"
	if err := srv.EnsureProduct(ctx, product, 10); err != nil {
		return nil, err
	}
	wsURL := "ws" + strings.TrimPrefix(srv.Base, "http") + "/ws/" + stream
	d := &websocket.Dialer{HandshakeTimeout: 20 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 256}

	var viewers []*wsViewer
	defer func() {
		for _, v := range viewers {
			v.close()
		}
	}()
	rssBase, _ := procRSS(srv.PID)
	var rows []Row
	for _, m := range o.Viewers {
		if ctx.Err() != nil {
			break
		}
		// Connect up to m viewers, 64 dials at a time.
		var mu sync.Mutex
		var dialErr error
		var failures atomic.Int64
		sem := make(chan struct{}, 64)
		var wg sync.WaitGroup
		tc := time.Now()
		for i := len(viewers); i < m && ctx.Err() == nil; i++ {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				v, err := dialViewer(ctx, d, wsURL)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failures.Add(1)
					if dialErr == nil {
						dialErr = err
					}
					return
				}
				viewers = append(viewers, v)
				if len(viewers)%100 == 0 {
					e.Progress.Set("overlay: connecting %d/%d viewers", len(viewers), m)
				}
			}()
		}
		wg.Wait()
		if dialErr != nil {
			return rows, fmt.Errorf("connect viewers (%d of %d, %d failed): %w", len(viewers), m, failures.Load(), dialErr)
		}
		connectS := time.Since(tc).Seconds()
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
			n := 0
			for _, v := range viewers {
				if v.ready() {
					n++
				}
			}
			e.Progress.Set("overlay: %d/%d snapshots", n, m)
			if n == len(viewers) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		time.Sleep(500 * time.Millisecond)
		rss, rssOK := procRSS(srv.PID)
		gaps0 := make([]int, len(viewers))
		for i, v := range viewers {
			v.mu.Lock()
			gaps0[i] = v.gaps
			clear(v.cards)
			v.mu.Unlock()
		}

		// Push a card every interval for the duration.
		pushes := max(1, int(o.OverlayDuration/o.CardInterval))
		pushAt := map[uint64]int64{}
		u := startUsage(srv.PID)
		mBefore, _ := scrape(ctx, srv.Base+"/metrics")
		next := time.Now()
		var pushLat []float64
		for i := 0; i < pushes && ctx.Err() == nil; i++ {
			time.Sleep(time.Until(next))
			next = next.Add(o.CardInterval)
			var resp struct {
				Seq uint64 `json:"seq"`
			}
			t0 := time.Now()
			if _, err := srv.API(ctx, "POST", "/api/streams/"+stream+"/cards", map[string]any{"action": "show", "product_id": product}, &resp); err != nil {
				return rows, fmt.Errorf("push card: %w", err)
			}
			pushLat = append(pushLat, float64(time.Since(t0).Microseconds())/1000)
			pushAt[resp.Seq] = t0.UnixNano()
			e.Progress.Set("overlay: M=%d push %d/%d", len(viewers), i+1, pushes)
		}
		cores, cpu, self := u.end()
		time.Sleep(2 * time.Second) // deliveries land
		var lat []float64
		lost, gaps, closed := 0, 0, 0
		for i, v := range viewers {
			v.mu.Lock()
			for seq, t0 := range pushAt {
				if t, ok := v.cards[seq]; ok {
					lat = append(lat, float64(t-t0)/1e6)
				} else {
					lost++
				}
			}
			gaps += v.gaps - gaps0[i]
			if v.closed {
				closed++
			}
			v.mu.Unlock()
		}
		sl := sortedCopy(lat)
		r := Row{Scenario: "overlay"}
		r.add("M", len(viewers))
		r.add("connect_s", connectS)
		r.add("pushes", len(pushAt))
		r.add("push_p50_ms", percentile(sl, 0.5))
		r.add("push_p99_ms", percentile(sl, 0.99))
		r.add("push_max_ms", percentile(sl, 1))
		r.add("api_p50_ms", percentile(sortedCopy(pushLat), 0.5))
		// The server's own push → written-to-socket delay (overlay histogram).
		mAfter, _ := scrape(ctx, srv.Base+"/metrics")
		r.add("written_p99_ms", histQuantile(mBefore, mAfter, "streamd_overlay_push_delay_seconds", 0.99)*1000)
		r.add("lost", lost)
		r.add("seq_gaps", gaps)
		r.add("closed", closed)
		r.add("server_cores", cores)
		perMsg := -1.0
		if cores >= 0 {
			perMsg = float64(cpu.Microseconds()) / float64(len(pushAt)*len(viewers))
		}
		r.add("server_cpu_us_per_msg", perMsg)
		rssMB, perConnKB := -1.0, -1.0
		if rssOK {
			rssMB = float64(rss) / (1 << 20)
			perConnKB = float64(rss-rssBase) / 1024 / float64(len(viewers))
		}
		r.add("server_rss_MB", rssMB)
		r.add("rss_KB_per_conn", perConnKB)
		r.add("bench_cores", self)
		rows = append(rows, r)
	}
	return rows, nil
}
