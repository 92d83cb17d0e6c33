package overlay

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

var bg = context.Background()

func mustCard(t testing.TB, s *Server, stream, action, card string) Event {
	t.Helper()
	var raw json.RawMessage
	if card != "" {
		raw = json.RawMessage(card)
	}
	ev, err := s.PublishCard(bg, stream, action, raw)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestHubSnapshotAndOrder(t *testing.T) {
	forEachBus(t, 1, func(t *testing.T, impl busImpl) {
		clock := &fakeClock{}
		stock := &fakeStock{}
		stock.set("p1", 7)
		s, ts := testServer(t, impl.newBus(t, 64), func(s *Server) { s.Clock, s.Stock = clock, stock })

		// Empty stream: a snapshot with nothing.
		c0 := dial(t, ts, "show", "")
		m := c0.next(t)
		if m.Type != "snapshot" || m.Seq != 0 || string(m.Card) != "null" || m.Live == nil || *m.Live || m.Stock == nil || m.ServerTime == 0 {
			t.Fatalf("empty snapshot: %s", m.raw)
		}
		c0.close()

		clock.ts.Store(90000)
		if _, err := s.SetLive(bg, "show", true); err != nil {
			t.Fatal(err)
		}
		ev := mustCard(t, s, "show", "show", `{ "product_id": "p1", "title": "Mug" }`)
		if ev.Seq != 2 || ev.ID == "" || ev.ServerTime == 0 {
			t.Fatalf("card event: %+v", ev)
		}
		s.StockChanged("p1")
		waitFor(t, "stock in state", func() bool {
			st, _ := s.Bus.State(bg, "show")
			return st.Stock["p1"] == 7
		})

		c := dial(t, ts, "show", "")
		snap := c.next(t)
		if snap.Type != "snapshot" || snap.Seq != 3 || snap.Epoch == "" || !*snap.Live || string(snap.Card) != `{"product_id":"p1","title":"Mug"}` ||
			snap.CardID != ev.ID || snap.Stock["p1"] != 7 {
			t.Fatalf("snapshot: %s", snap.raw)
		}
		waitFor(t, "viewer counted", func() bool { return s.Viewers("show") == 1 })

		clock.ts.Store(93000)
		ev = mustCard(t, s, "show", "update", `{"product_id":"p1","title":"Mug","deal":{"price":900}}`)
		m = c.next(t)
		if m.Type != "card" || m.Seq != 4 || m.ID != ev.ID || m.Action != "update" || m.Media == nil || m.Media.RTPTS == nil ||
			*m.Media.RTPTS != 93000 || !m.Media.Live || m.ServerTime != ev.ServerTime {
			t.Fatalf("card: %s", m.raw)
		}
		clock.ts.Store(0) // not live: no rtp_ts
		mustCard(t, s, "show", "hide", "")
		m = c.next(t)
		if m.Type != "card" || m.Seq != 5 || m.Action != "hide" || string(m.Card) != "null" || m.Media == nil || m.Media.RTPTS != nil || m.Media.Live {
			t.Fatalf("hide: %s", m.raw)
		}
		if _, err := s.PublishEvent(bg, "show", "order", json.RawMessage(`{"id":"o1","items":2}`)); err != nil {
			t.Fatal(err)
		}
		m = c.next(t)
		if m.Type != "order" || m.Seq != 6 || string(m.Order) != `{"id":"o1","items":2}` {
			t.Fatalf("order: %s", m.raw)
		}
		// Many events in order.
		for i := 0; i < 50; i++ {
			mustCard(t, s, "show", "update", fmt.Sprintf(`{"i":%d}`, i))
		}
		for i := 0; i < 50; i++ {
			if m := c.next(t); m.Seq != uint64(7+i) {
				t.Fatalf("event %d: %s", i, m.raw)
			}
		}
		// Bad publishes.
		if _, err := s.PublishCard(bg, "show", "show", json.RawMessage(`[1]`)); err == nil {
			t.Fatal("a non-object card was accepted")
		}
		if _, err := s.PublishCard(bg, "show", "wave", nil); err == nil {
			t.Fatal("a bad action was accepted")
		}
		if _, err := s.PublishCard(bg, "bad{name}", "hide", nil); err == nil {
			t.Fatal("a bad stream was accepted")
		}
		if _, err := s.PublishEvent(bg, "show", "card", json.RawMessage(`{}`)); err == nil {
			t.Fatal("PublishEvent accepted a reserved type")
		}
		c.close()
		waitFor(t, "viewer gone", func() bool { return s.Viewers("show") == 0 })
	})
}

func TestHubResume(t *testing.T) {
	forEachBus(t, 1, func(t *testing.T, impl busImpl) {
		s, ts := testServer(t, impl.newBus(t, 8), nil)
		for i := 0; i < 3; i++ {
			mustCard(t, s, "r", "show", fmt.Sprintf(`{"i":%d}`, i))
		}
		c := dial(t, ts, "r", "")
		snap := c.next(t)
		if snap.Type != "snapshot" || snap.Seq != 3 {
			t.Fatalf("snapshot: %s", snap.raw)
		}
		mustCard(t, s, "r", "update", `{"i":3}`)
		if m := c.next(t); m.Seq != 4 {
			t.Fatalf("got %s", m.raw)
		}
		c.close() // dropped connection

		for i := 4; i < 9; i++ {
			mustCard(t, s, "r", "update", fmt.Sprintf(`{"i":%d}`, i))
		}
		// Resume: exactly what was missed, no snapshot.
		c = dial(t, ts, "r", fmt.Sprintf("since=4&epoch=%s", snap.Epoch))
		for want := uint64(5); want <= 9; want++ {
			m := c.next(t)
			if m.Type != "card" || m.Seq != want {
				t.Fatalf("resume: want seq %d, got %s", want, m.raw)
			}
		}
		mustCard(t, s, "r", "update", `{"i":9}`)
		if m := c.next(t); m.Seq != 10 {
			t.Fatalf("live after resume: %s", m.raw)
		}
		c.close()

		// Up to date: nothing to send, then live events.
		c = dial(t, ts, "r", fmt.Sprintf("since=10&epoch=%s", snap.Epoch))
		mustCard(t, s, "r", "update", `{"i":10}`)
		if m := c.next(t); m.Type != "card" || m.Seq != 11 {
			t.Fatalf("up to date resume: %s", m.raw)
		}
		c.close()

		// History no longer reaches back (8 kept): a new snapshot.
		for i := 0; i < 20; i++ {
			mustCard(t, s, "r", "update", fmt.Sprintf(`{"j":%d}`, i))
		}
		c = dial(t, ts, "r", fmt.Sprintf("since=11&epoch=%s", snap.Epoch))
		if m := c.next(t); m.Type != "snapshot" || m.Seq != 31 || string(m.Card) != `{"j":19}` {
			t.Fatalf("want a fresh snapshot, got %s", m.raw)
		}
		c.close()
		// Another epoch: a new snapshot.
		c = dial(t, ts, "r", "since=30&epoch=nope")
		if m := c.next(t); m.Type != "snapshot" || m.Seq != 31 {
			t.Fatalf("want a snapshot for a foreign epoch, got %s", m.raw)
		}
		c.close()

		if impl.flush == nil {
			return
		}
		// Redis flushed while a viewer is connected: it gets a fresh
		// snapshot of the new epoch; a resume with the old epoch too.
		c = dial(t, ts, "r", "")
		if m := c.next(t); m.Type != "snapshot" {
			t.Fatalf("got %s", m.raw)
		}
		impl.flush(t)
		mustCard(t, s, "r", "show", `{"after":"flush"}`)
		m := c.nextOfType(t, "snapshot")
		if m.Epoch == snap.Epoch || m.Seq != 1 || string(m.Card) != `{"after":"flush"}` {
			t.Fatalf("after flush: %s", m.raw)
		}
		c2 := dial(t, ts, "r", fmt.Sprintf("since=5&epoch=%s", snap.Epoch))
		if m2 := c2.next(t); m2.Type != "snapshot" || m2.Epoch != m.Epoch {
			t.Fatalf("resume with lost epoch: %s", m2.raw)
		}
		mustCard(t, s, "r", "update", `{"x":2}`)
		if m := c.next(t); m.Seq != 2 {
			t.Fatalf("after reset: %s", m.raw)
		}
		if m := c2.next(t); m.Seq != 2 {
			t.Fatalf("after reset: %s", m.raw)
		}
	})
}

func TestHubSlowConsumer(t *testing.T) {
	forEachBus(t, 1, func(t *testing.T, impl busImpl) {
		reg := prometheus.NewRegistry()
		// 64 KiB: room for the paced lag of a fast viewer on a loaded
		// machine (5 cards of 1.9 KB), far below the 285 KB the slow one
		// never reads.
		s := &Server{Bus: impl.newBus(t, 64), QueueBytes: 64 << 10, WriteTimeout: 2 * time.Second, Registerer: reg}
		if err := s.Initialize(); err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		s.Register(mux)
		ts := httptest.NewUnstartedServer(mux)
		ts.Listener = smallBufListener{ts.Listener}
		ts.Start()
		t.Cleanup(func() { s.Close(); ts.Close() })
		mustCard(t, s, "busy", "show", `{"start":true}`)

		// The slow viewer: tiny receive buffer, never reads.
		slow, _, err := smallRecvDialer.Dial(wsURL(ts, "busy", ""), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer slow.Close()

		const fast, events = 200, 150
		var got [fast]struct {
			mu   sync.Mutex
			last uint64
			err  string
		}
		var wg sync.WaitGroup
		for i := 0; i < fast; i++ {
			ws, _, err := websocket.DefaultDialer.Dial(wsURL(ts, "busy", ""), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			wg.Add(1)
			go func() {
				defer wg.Done()
				g := &got[i]
				for {
					_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
					_, data, err := ws.ReadMessage()
					if err != nil {
						g.mu.Lock()
						g.err = err.Error()
						g.mu.Unlock()
						return
					}
					var m wireMsg
					_ = json.Unmarshal(data, &m)
					g.mu.Lock()
					if m.Type != "snapshot" && m.Seq != g.last+1 {
						g.err = fmt.Sprintf("gap: %d after %d", m.Seq, g.last)
					}
					g.last = m.Seq
					done := g.last >= events+1
					g.mu.Unlock()
					if done {
						return
					}
				}
			}()
		}
		waitFor(t, "all viewers joined", func() bool { return s.Viewers("busy") == fast+1 })
		card := `{"pad":"` + strings.Repeat("x", 1900) + `"}`
		for i := 0; i < events; i++ {
			mustCard(t, s, "busy", "update", card)
			if i%5 == 4 { // pace: let fast viewers keep up (bounded lag)
				want := uint64(i + 2)
				waitFor(t, "fast viewers", func() bool {
					for j := range got {
						got[j].mu.Lock()
						l, e := got[j].last, got[j].err
						got[j].mu.Unlock()
						if l < want && e == "" {
							return false
						}
					}
					return true
				})
			}
		}
		wg.Wait()
		for i := range got {
			if got[i].err != "" || got[i].last != events+1 {
				t.Fatalf("fast viewer %d: last %d err %s", i, got[i].last, got[i].err)
			}
		}
		waitFor(t, "slow viewer dropped", func() bool { return s.Viewers("busy") == fast })
		if n := counterValue(s.m.slowDisconnects); n != 1 {
			t.Fatalf("slow disconnects = %v", n)
		}
		if n := counterValue(s.m.sent); n < fast*events {
			t.Fatalf("sent = %v", n)
		}
	})
}

// A slow viewer's queue keeps only the newest stock per product; the older
// ones become skip markers so seq stays gap-free.
func TestQueueCoalescing(t *testing.T) {
	s := &Server{}
	if err := s.Initialize(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := &conn{s: s, notify: make(chan struct{}, 1), q: make([]qentry, 2)}
	pm := []byte(`{}`)
	c.enqueue(qentry{data: pm, seq: 1, size: 100, key: "stock:p1"})
	c.enqueue(qentry{data: pm, seq: 2, size: 100})
	c.enqueue(qentry{data: pm, seq: 3, size: 100, key: "stock:p2"})
	c.enqueue(qentry{data: pm, seq: 4, size: 100, key: "stock:p1"})
	var kinds []string
	for {
		e, ok, _ := c.pop()
		if !ok {
			break
		}
		k := "msg"
		if e.data == nil {
			k = "skip"
		}
		kinds = append(kinds, fmt.Sprintf("%d:%s", e.seq, k))
	}
	if got := strings.Join(kinds, " "); got != "1:skip 2:msg 3:msg 4:msg" {
		t.Fatalf("queue: %s", got)
	}
	if c.qbytes != 0 {
		t.Fatalf("qbytes = %d", c.qbytes)
	}
	// Over the cap: closed as slow, with a reason.
	s.QueueBytes = 250
	c.enqueue(qentry{data: pm, seq: 5, size: 100})
	c.enqueue(qentry{data: pm, seq: 6, size: 100})
	c.enqueue(qentry{data: pm, seq: 7, size: 100})
	if !c.closing || c.closeCode != closeSlow || c.closeText != "slow consumer" || counterValue(s.m.slowDisconnects) != 1 {
		t.Fatalf("closing %v code %d %q", c.closing, c.closeCode, c.closeText)
	}
}

func TestHubClientMessages(t *testing.T) {
	forEachBus(t, 1, func(t *testing.T, impl busImpl) {
		s, ts := testServer(t, impl.newBus(t, 64), nil)
		mustCard(t, s, "c", "show", `{"a":1}`)

		c := dial(t, ts, "c", "")
		c.next(t)
		// Clock sync.
		if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","t":1700000000123.5}`)); err != nil {
			t.Fatal(err)
		}
		m := c.next(t)
		if m.Type != "pong" || m.T != 1700000000123.5 || m.Seq != 1 || m.ServerTime == 0 {
			t.Fatalf("pong: %s", m.raw)
		}
		// Bad payloads get an error and the connection stays.
		for _, bad := range []string{`nope`, `{"type":"dance"}`, `{"type":"ping","t":"x"}`} {
			_ = c.ws.WriteMessage(websocket.TextMessage, []byte(bad))
			if m := c.next(t); m.Type != "error" || m.Error == "" {
				t.Fatalf("for %s: %s", bad, m.raw)
			}
		}
		mustCard(t, s, "c", "update", `{"a":2}`)
		if m := c.next(t); m.Type != "card" || m.Seq != 2 {
			t.Fatalf("after bad payloads: %s", m.raw)
		}
		c.close()

		// Oversized message: closed with 1009.
		c = dial(t, ts, "c", "")
		c.next(t)
		_ = c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","t":1,"pad":"`+strings.Repeat("x", 5000)+`"}`))
		if err := c.closed(t); closeCode(err) != websocket.CloseMessageTooBig {
			t.Fatalf("oversized: %v", err)
		}

		// Too fast: closed with 1008.
		c = dial(t, ts, "c", "")
		c.next(t)
		for i := 0; i < 40; i++ {
			if c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","t":1}`)) != nil {
				break
			}
		}
		if err := c.closed(t); closeCode(err) != websocket.ClosePolicyViolation {
			t.Fatalf("too fast: %v", err)
		}

		// Binary: closed with 1003.
		c = dial(t, ts, "c", "")
		c.next(t)
		_ = c.ws.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3})
		if err := c.closed(t); closeCode(err) != websocket.CloseUnsupportedData {
			t.Fatalf("binary: %v", err)
		}

		// Bad stream name and bad since: 400 before the upgrade.
		for _, u := range []string{wsURL(ts, "a%7Bb%7D", ""), wsURL(ts, "c", "since=x")} {
			_, resp, err := websocket.DefaultDialer.Dial(u, nil)
			if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("%s: %v %v", u, err, resp)
			}
		}
		waitFor(t, "no viewers", func() bool { return s.Viewers("c") == 0 })
	})
}

func TestHubOrigin(t *testing.T) {
	leakCheck(t)
	try := func(ts *httptest.Server, origin string) int {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		ws, resp, err := websocket.DefaultDialer.Dial(wsURL(ts, "o", ""), h)
		if err != nil {
			if resp == nil {
				t.Fatal(err)
			}
			return resp.StatusCode
		}
		ws.Close()
		return http.StatusSwitchingProtocols
	}
	_, ts := testServer(t, nil, nil)
	host := strings.TrimPrefix(ts.URL, "http://")
	for origin, want := range map[string]int{"": 101, "http://" + host: 101, "http://evil.example": 403} {
		if got := try(ts, origin); got != want {
			t.Errorf("same-host policy, origin %q: %d, want %d", origin, got, want)
		}
	}
	_, ts2 := testServer(t, nil, func(s *Server) { s.AllowedOrigins = []string{"https://shop.example"} })
	for origin, want := range map[string]int{"https://shop.example": 101, "http://evil.example": 403} {
		if got := try(ts2, origin); got != want {
			t.Errorf("list policy, origin %q: %d, want %d", origin, got, want)
		}
	}
	_, ts3 := testServer(t, nil, func(s *Server) { s.AllowedOrigins = []string{"*"} })
	if got := try(ts3, "http://evil.example"); got != 101 {
		t.Errorf("* policy: %d", got)
	}
}

func TestServerCloseGoingAway(t *testing.T) {
	leakCheck(t)
	s, ts := testServer(t, nil, nil)
	clients := []*client{dial(t, ts, "a", ""), dial(t, ts, "a", ""), dial(t, ts, "b", "")}
	for _, c := range clients {
		c.next(t)
	}
	s.Close()
	for _, c := range clients {
		if err := c.closed(t); closeCode(err) != websocket.CloseGoingAway {
			t.Fatalf("close: %v", err)
		}
	}
	if _, err := s.PublishCard(bg, "a", "hide", nil); err == nil {
		t.Fatal("publish after Close succeeded")
	}
	_, resp, err := websocket.DefaultDialer.Dial(wsURL(ts, "a", ""), nil)
	if err == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial after close: %v", err)
	}
}

func TestStockCoalescing(t *testing.T) {
	forEachBus(t, 1, func(t *testing.T, impl busImpl) {
		stock := &fakeStock{}
		s, ts := testServer(t, impl.newBus(t, 64), func(s *Server) { s.Stock = stock; s.StockInterval = 100 * time.Millisecond })
		mustCard(t, s, "a", "show", `{"a":1}`)
		mustCard(t, s, "b", "show", `{"b":1}`)
		ca, cb := dial(t, ts, "a", ""), dial(t, ts, "b", "")
		ca.next(t)
		cb.next(t)
		for i := 1; i <= 100; i++ {
			stock.set("p1", 100-i)
			s.StockChanged("p1") // never blocks
			time.Sleep(time.Millisecond)
		}
		for _, c := range []*client{ca, cb} {
			n := 0
			for {
				m := c.nextOfType(t, "stock")
				n++
				if m.ProductID != "p1" {
					t.Fatalf("stock: %s", m.raw)
				}
				if m.Available == 0 {
					break
				}
			}
			// ~100ms of changes at one publish per 100ms: a handful, not 100.
			if n > 6 {
				t.Fatalf("%d stock messages for 100 changes", n)
			}
		}
		if r := stock.reads.Load(); r > 6 {
			t.Fatalf("%d stock reads", r)
		}
	})
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	return m.GetCounter().GetValue()
}

// A viewer who joined before the stream's first event learns the epoch from
// pongs and can resume; and leaves no state behind on the in-process bus.
func TestHubJoinBeforeFirstEvent(t *testing.T) {
	forEachBus(t, 1, func(t *testing.T, impl busImpl) {
		s, ts := testServer(t, impl.newBus(t, 64), nil)
		c := dial(t, ts, "early", "")
		if m := c.next(t); m.Type != "snapshot" || m.Epoch != "" || m.Seq != 0 {
			t.Fatalf("snapshot: %s", m.raw)
		}
		ev := mustCard(t, s, "early", "show", `{"a":1}`)
		if m := c.next(t); m.Seq != 1 {
			t.Fatalf("card: %s", m.raw)
		}
		_ = c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","t":5}`))
		pong := c.nextOfType(t, "pong")
		if pong.Seq != 1 || pong.Epoch != ev.Epoch {
			t.Fatalf("pong: %s (epoch %s)", pong.raw, ev.Epoch)
		}
		c.close()
		mustCard(t, s, "early", "update", `{"a":2}`)
		c = dial(t, ts, "early", "since=1&epoch="+pong.Epoch)
		if m := c.next(t); m.Type != "card" || m.Seq != 2 {
			t.Fatalf("resume: %s", m.raw)
		}
		c.close()

		if mb, ok := s.Bus.(*MemoryBus); ok {
			g := dial(t, ts, "ghost", "")
			g.next(t)
			g.close()
			waitFor(t, "ghost gone", func() bool {
				mb.mu.Lock()
				defer mb.mu.Unlock()
				_, ok := mb.streams["ghost"]
				return !ok
			})
		}
	})
}
