package overlay

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"
)

func pub(t *testing.T, b Bus, stream string, p Publication) Event {
	t.Helper()
	ev, err := b.Publish(context.Background(), stream, p)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func evRest(i int) Publication {
	return Publication{Type: "order", Rest: []byte(fmt.Sprintf(`"order":{"n":%d}}`, i))}
}

type recorder struct {
	mu  sync.Mutex
	evs []Event
}

func (r *recorder) fn(ev Event) {
	r.mu.Lock()
	r.evs = append(r.evs, ev)
	r.mu.Unlock()
}

func (r *recorder) get() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.evs...)
}

func (r *recorder) waitN(t *testing.T, n int) []Event {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d events", n), func() bool { return len(r.get()) >= n })
	return r.get()
}

// TestBusConformance runs the same Bus checks on both implementations.
func TestBusConformance(t *testing.T) {
	ctx := context.Background()
	forEachBus(t, 3, func(t *testing.T, impl busImpl) {
		b := impl.newBus(t, 8)

		st, err := b.State(ctx, "s1")
		if err != nil || st.Epoch != "" || st.Seq != 0 || st.Card != nil || len(st.Stock) != 0 {
			t.Fatalf("state of unknown stream: %+v %v", st, err)
		}
		if evs, ok, err := b.Since(ctx, "s1", "", 0); err != nil || !ok || len(evs) != 0 {
			t.Fatalf("since on empty stream: %v %v %v", evs, ok, err)
		}

		var rec, rec2 recorder
		cancel, err := b.Subscribe(ctx, "s1", rec.fn)
		if err != nil {
			t.Fatal(err)
		}
		cancel2, err := b.Subscribe(ctx, "s1", rec2.fn)
		if err != nil {
			t.Fatal(err)
		}
		var epoch string
		for i := 1; i <= 5; i++ {
			ev := pub(t, b, "s1", evRest(i))
			if ev.Seq != uint64(i) || ev.Type != "order" || ev.Epoch == "" {
				t.Fatalf("publish %d: %+v", i, ev)
			}
			if epoch == "" {
				epoch = ev.Epoch
			} else if ev.Epoch != epoch {
				t.Fatalf("epoch changed: %s -> %s", epoch, ev.Epoch)
			}
			want := fmt.Sprintf(`{"type":"order","seq":%d,"order":{"n":%d}}`, i, i)
			if string(ev.Data) != want || !json.Valid(ev.Data) {
				t.Fatalf("data %s, want %s", ev.Data, want)
			}
		}
		for _, r := range []*recorder{&rec, &rec2} {
			got := r.waitN(t, 5)
			for i, ev := range got {
				if ev.Seq != uint64(i+1) || ev.Epoch != epoch || ev.Reset {
					t.Fatalf("subscriber got %+v at %d", ev, i)
				}
			}
		}
		cancel2()
		pub(t, b, "s1", evRest(6))
		rec.waitN(t, 6)
		time.Sleep(50 * time.Millisecond)
		if n := len(rec2.get()); n != 5 {
			t.Fatalf("cancelled subscriber got %d events", n)
		}
		cancel()

		// History.
		evs, ok, err := b.Since(ctx, "s1", epoch, 3)
		if err != nil || !ok || len(evs) != 3 || evs[0].Seq != 4 || evs[2].Seq != 6 || string(evs[0].Data) != `{"type":"order","seq":4,"order":{"n":4}}` {
			t.Fatalf("since 3: %+v %v %v", evs, ok, err)
		}
		if evs, ok, _ := b.Since(ctx, "s1", epoch, 6); !ok || len(evs) != 0 {
			t.Fatalf("since last: %v %v", evs, ok)
		}
		if _, ok, _ := b.Since(ctx, "s1", epoch, 7); ok {
			t.Fatal("since in the future must not be ok")
		}
		if _, ok, _ := b.Since(ctx, "s1", "other", 3); ok {
			t.Fatal("since with another epoch must not be ok")
		}
		for i := 7; i <= 20; i++ {
			pub(t, b, "s1", evRest(i))
		}
		if _, ok, _ := b.Since(ctx, "s1", epoch, 3); ok {
			t.Fatal("since past the history must not be ok")
		}
		if evs, ok, _ := b.Since(ctx, "s1", epoch, 12); !ok || len(evs) != 8 || evs[0].Seq != 13 {
			t.Fatalf("since 12 within history of 8: %d %v", len(evs), ok)
		}

		// State changes.
		card := json.RawMessage(`{"product_id":"p1","title":"Mug"}`)
		pub(t, b, "s1", Publication{Type: "card", Rest: []byte(`"x":1}`), Change: Change{Kind: SetCard, Card: card, CardID: "c1"}})
		pub(t, b, "s1", Publication{Type: "live", Key: "live", Rest: []byte(`"live":true}`), Change: Change{Kind: SetLive, Live: true}})
		pub(t, b, "s1", Publication{Type: "stock", Key: "stock:p1", Rest: []byte(`"available":3}`), Change: Change{Kind: SetStock, ProductID: "p1", Available: 3}})
		pub(t, b, "s1", Publication{Type: "stock", Key: "stock:p 2", Rest: []byte(`"available":0}`), Change: Change{Kind: SetStock, ProductID: "p 2", Available: 0}})
		st, err = b.State(ctx, "s1")
		if err != nil || st.Seq != 24 || st.Epoch != epoch || !st.Live || string(st.Card) != string(card) || st.CardID != "c1" ||
			st.Stock["p1"] != 3 || len(st.Stock) != 2 {
			t.Fatalf("state: %+v %v", st, err)
		}
		evs, ok, _ = b.Since(ctx, "s1", epoch, 22)
		if !ok || len(evs) != 2 || evs[1].Key != "stock:p 2" || evs[1].Type != "stock" {
			t.Fatalf("keys in history: %+v", evs)
		}
		pub(t, b, "s1", Publication{Type: "card", Rest: []byte(`"x":1}`), Change: Change{Kind: ClearCard}})
		if st, _ = b.State(ctx, "s1"); st.Card != nil || st.CardID != "" {
			t.Fatalf("card not cleared: %+v", st)
		}

		streams, err := b.Streams(ctx)
		if err != nil || len(streams) != 1 || streams[0] != "s1" {
			t.Fatalf("streams: %v %v", streams, err)
		}

		// Concurrent publishers: one order for everybody.
		var rec3 recorder
		cancel3, err := b.Subscribe(ctx, "s2", rec3.fn)
		if err != nil {
			t.Fatal(err)
		}
		defer cancel3()
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 50; i++ {
					if _, err := b.Publish(ctx, "s2", evRest(i)); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		for i, ev := range rec3.waitN(t, 200) {
			if ev.Seq != uint64(i+1) {
				t.Fatalf("concurrent: event %d has seq %d", i, ev.Seq)
			}
		}
	})
}

// TestBusNodes: two buses on one storage see one sequence.
func TestBusNodes(t *testing.T) {
	ctx := context.Background()
	leakCheck(t)
	impl := busImpls(t, 3)[1] // the in-process bus is one node
	{
		a, b := impl.newBus(t, 16), impl.newBus(t, 16)
		var ra, rb recorder
		ca, err := a.Subscribe(ctx, "s", ra.fn)
		if err != nil {
			t.Fatal(err)
		}
		defer ca()
		cb, err := b.Subscribe(ctx, "s", rb.fn)
		if err != nil {
			t.Fatal(err)
		}
		defer cb()
		for i := 0; i < 10; i++ {
			bus := a
			if i%2 == 1 {
				bus = b
			}
			pub(t, bus, "s", evRest(i))
		}
		ga, gb := ra.waitN(t, 10), rb.waitN(t, 10)
		for i := range ga {
			if ga[i].Seq != uint64(i+1) || string(ga[i].Data) != string(gb[i].Data) {
				t.Fatalf("nodes disagree at %d: %s vs %s", i, ga[i].Data, gb[i].Data)
			}
		}
		// Deliveries lost on the way (a publication whose PUBLISH nobody
		// got): the next event reveals the gap, the history fills it.
		rb0 := a.(*RedisBus)
		if err := publishScript.Run(ctx, rb0.c, streamKeys("s"), newID(), "order", `"order":{"lost":true}}`, 16,
			"nobody-listens", "", "", "", "", MaxStockPerStream, "", MaxChatPerStream).Err(); err != nil {
			t.Fatal(err)
		}
		pub(t, b, "s", evRest(12))
		for _, r := range []*recorder{&ra, &rb} {
			got := r.waitN(t, 12)
			if got[10].Seq != 11 || string(got[10].Data) != `{"type":"order","seq":11,"order":{"lost":true}}` || got[11].Seq != 12 {
				t.Fatalf("gap not filled: %+v", got[10:])
			}
		}
		// History lost (Redis flushed): a new epoch, and subscribers are told.
		epoch := ga[0].Epoch
		impl.flush(t)
		ev := pub(t, a, "s", evRest(99))
		if ev.Seq != 1 || ev.Epoch == epoch {
			t.Fatalf("after flush: %+v (old epoch %s)", ev, epoch)
		}
		got := ra.waitN(t, 13)
		if !got[12].Reset {
			t.Fatalf("want a Reset after the epoch changed, got %+v", got[12])
		}
		if _, ok, _ := a.Since(ctx, "s", epoch, 5); ok {
			t.Fatal("since with the lost epoch must not be ok")
		}
		streams, _ := b.Streams(ctx)
		if len(streams) != 1 || streams[0] != "s" {
			t.Fatalf("streams after flush: %v", streams)
		}
	}
}

func TestParsePayload(t *testing.T) {
	ev, ok := parsePayload("s", `ep 12 stock 8 0 stock:p {"type":"stock"}`)
	if !ok || ev.Epoch != "ep" || ev.Seq != 12 || ev.Type != "stock" || ev.Key != "stock:p " || string(ev.Data) != `{"type":"stock"}` {
		t.Fatalf("%+v %v", ev, ok)
	}
	ev, ok = parsePayload("s", `ep 3 card 0 0 {"a":1}`)
	if !ok || ev.Key != "" || ev.Audience != "" || string(ev.Data) != `{"a":1}` {
		t.Fatalf("%+v %v", ev, ok)
	}
	ev, ok = parsePayload("s", `ep 4 chat 0 3 v42{"a":1}`)
	if !ok || ev.Key != "" || ev.Audience != "v42" || string(ev.Data) != `{"a":1}` {
		t.Fatalf("%+v %v", ev, ok)
	}
	for _, bad := range []string{"", "ep", "ep x card 0 0 {}", "ep 1 card 99 0 {}", "ep 1 card 0 99 {}", "ep 1 card 0 {}"} {
		if _, ok := parsePayload("s", bad); ok {
			t.Fatalf("%q parsed", bad)
		}
	}
}
