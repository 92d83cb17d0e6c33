package overlay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// BenchmarkBroadcast10k: one event to 10,000 in-memory subscribers (the hub's
// fan-out: encode once, queue on every connection, the writer's dequeue;
// no sockets). allocs/op is per event, for all 10,000 subscribers.
func BenchmarkBroadcast10k(b *testing.B) {
	s := &Server{}
	if err := s.Initialize(); err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const n = 10000
	r := &room{s: s, stream: "bench"}
	for i := 0; i < n; i++ {
		c := &conn{s: s, r: r, idx: i, notify: make(chan struct{}, 1), q: make([]qentry, 8)}
		r.conns = append(r.conns, c)
	}
	data := []byte(`{"type":"card","seq":0,"id":"0123456789abcdef","action":"show","card":{"product_id":"p1","title":"Mug","price":{"amount":4900,"currency":"eur"}},"media":{"rtp_ts":123456,"live":true},"server_time":1700000000000}`)
	ev := Event{Stream: "bench", Type: "card", Data: data}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev.Seq = uint64(i + 1)
		r.deliver(ev)
		for _, c := range r.conns {
			if _, ok, _ := c.pop(); !ok {
				b.Fatal("not queued")
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/subscriber")
}

// BenchmarkLoopback1000: 1,000 real WebSocket clients on loopback; each
// iteration publishes one card and waits until every client has it.
// Reports push -> received latency percentiles over all deliveries.
func BenchmarkLoopback1000(b *testing.B) {
	const n = 1000
	s, ts := testServer(b, nil, func(s *Server) { s.WriteTimeout = 10 * time.Second })
	var (
		mu       sync.Mutex
		sentAt   = map[uint64]time.Time{}
		lat      []time.Duration
		received atomic.Int64
	)
	var wg sync.WaitGroup
	conns := make([]*websocket.Conn, 0, n)
	for i := 0; i < n; i++ {
		ws, _, err := websocket.DefaultDialer.Dial(wsURL(ts, "load", ""), nil)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, ws)
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 1024)
			defer func() {
				mu.Lock()
				lat = append(lat, local...)
				mu.Unlock()
			}()
			for {
				_, data, err := ws.ReadMessage()
				now := time.Now()
				if err != nil {
					return
				}
				if !bytes.HasPrefix(data, []byte(`{"type":"card"`)) {
					continue
				}
				var m struct{ Seq uint64 }
				_ = json.Unmarshal(data, &m)
				mu.Lock()
				t0 := sentAt[m.Seq]
				mu.Unlock()
				local = append(local, now.Sub(t0))
				received.Add(1)
			}
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for s.Viewers("load") < n {
		if time.Now().After(deadline) {
			b.Fatal("viewers did not join")
		}
		time.Sleep(10 * time.Millisecond)
	}
	card := json.RawMessage(`{"product_id":"p1","title":"Mug","price":{"amount":4900,"currency":"eur"}}`)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		want := int64(i+1) * n
		mu.Lock()
		sentAt[uint64(i+1)] = time.Now() // a fresh stream: seq i+1
		mu.Unlock()
		if _, err := s.PublishCard(bg, "load", "show", card); err != nil {
			b.Fatal(err)
		}
		for received.Load() < want {
			time.Sleep(100 * time.Microsecond)
		}
	}
	b.StopTimer()
	for _, ws := range conns {
		_ = ws.Close()
	}
	wg.Wait()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(1), "max-ms")
	if testing.Verbose() {
		fmt.Printf("loopback %d clients, %d deliveries: p50 %.2fms p99 %.2fms max %.2fms\n", n, len(lat), pct(.5), pct(.99), pct(1))
	}
}

// TestBroadcastAllocsConstant: the fan-out allocates per event, never per
// connection.
func TestBroadcastAllocsConstant(t *testing.T) {
	s := &Server{}
	if err := s.Initialize(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	allocs := func(n int) float64 {
		r := &room{s: s, stream: "a"}
		for i := 0; i < n; i++ {
			r.conns = append(r.conns, &conn{s: s, r: r, idx: i, notify: make(chan struct{}, 1), q: make([]qentry, 8)})
		}
		ev := Event{Type: "stock", Key: "stock:p1", Data: []byte(`{"type":"stock","seq":1,"product_id":"p1","available":1}`)}
		return testing.AllocsPerRun(50, func() {
			ev.Seq++
			r.deliver(ev)
			for _, c := range r.conns {
				c.pop()
			}
		})
	}
	if a, b := allocs(10), allocs(2000); a != b {
		t.Fatalf("allocs per event: %v with 10 connections, %v with 2000", a, b)
	}
}
