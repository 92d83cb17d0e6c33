package overlay

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// Two Servers (two nodes) sharing one Redis: one sequence, both audiences.
func TestTwoServersOneRedis(t *testing.T) {
	leakCheck(t)
	impl := busImpls(t, 2)[1]
	stock := &fakeStock{}
	clock := &fakeClock{}
	clock.ts.Store(1234)
	s1, ts1 := testServer(t, impl.newBus(t, 64), func(s *Server) { s.Stock, s.Clock = stock, clock; s.StockInterval = 100 * time.Millisecond })
	s2, ts2 := testServer(t, impl.newBus(t, 64), func(s *Server) { s.Stock, s.Clock = stock, clock; s.StockInterval = 100 * time.Millisecond })

	mustCard(t, s1, "show", "show", `{"n":0}`)
	var viewers []*client
	for i := 0; i < 3; i++ {
		viewers = append(viewers, dial(t, ts1, "show", ""), dial(t, ts2, "show", ""))
	}
	var epoch string
	for _, v := range viewers {
		m := v.next(t)
		if m.Type != "snapshot" || m.Seq != 1 || string(m.Card) != `{"n":0}` {
			t.Fatalf("snapshot: %s", m.raw)
		}
		if epoch == "" {
			epoch = m.Epoch
		} else if m.Epoch != epoch {
			t.Fatal("nodes disagree on the epoch")
		}
	}
	waitFor(t, "viewers", func() bool { return s1.Viewers("show") == 3 && s2.Viewers("show") == 3 })

	// Pushes on both nodes, concurrently: everybody sees one order.
	done := make(chan error, 2)
	for k, s := range []*Server{s1, s2} {
		go func() {
			for i := 0; i < 25; i++ {
				if _, err := s.PublishCard(bg, "show", "update", json.RawMessage(fmt.Sprintf(`{"node":%d,"i":%d}`, k, i))); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for i := 0; i < 2; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	var ref []string
	for vi, v := range viewers {
		var got []string
		for want := uint64(2); want <= 51; want++ {
			m := v.next(t)
			if m.Seq != want || m.Type != "card" || m.Media == nil || m.Media.RTPTS == nil || *m.Media.RTPTS != 1234 {
				t.Fatalf("viewer %d: want seq %d, got %s", vi, want, m.raw)
			}
			got = append(got, string(m.raw))
		}
		if ref == nil {
			ref = got
		} else {
			for i := range got {
				if got[i] != ref[i] {
					t.Fatalf("viewer %d differs at %d: %s vs %s", vi, i, got[i], ref[i])
				}
			}
		}
	}

	// Stock changes signalled on node 1 reach node 2's viewers, coalesced.
	for i := 1; i <= 50; i++ {
		stock.set("p9", 50-i)
		s1.StockChanged("p9")
		time.Sleep(2 * time.Millisecond)
	}
	for vi, v := range viewers {
		n := 0
		for {
			m := v.nextOfType(t, "stock")
			n++
			if m.Available == 0 {
				break
			}
		}
		if n > 5 {
			t.Fatalf("viewer %d: %d stock messages for 50 changes", vi, n)
		}
	}
	// A snapshot on either node has the latest stock.
	c := dial(t, ts2, "show", "")
	if m := c.next(t); m.Stock["p9"] != 0 || m.Seq < 52 {
		t.Fatalf("snapshot after stock: %s", m.raw)
	}
	// Resume across nodes: what node 1 served, node 2 resumes.
	c.close()
	c = dial(t, ts2, "show", fmt.Sprintf("since=40&epoch=%s", epoch))
	if m := c.next(t); m.Type != "card" || m.Seq != 41 || string(m.raw) != ref[39] {
		t.Fatalf("cross-node resume: %s", m.raw)
	}
}
