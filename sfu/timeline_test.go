package sfu

import (
	"testing"
	"time"
)

func TestTimelineSplicesSources(t *testing.T) {
	var tl timeline
	t0 := time.Now()
	// First source: passed through unchanged.
	tl.spliceAt(pkt(100, 5000, idr, true), 5000)
	if s, ts, newest, _ := tl.rewrite(pkt(100, 5000, idr, true), t0); s != 100 || ts != 5000 || !newest {
		t.Fatalf("first source rewritten: %d %d %v", s, ts, newest)
	}
	s, ts, _, step := tl.rewrite(pkt(101, 8000, slice, true), t0.Add(33*time.Millisecond))
	if s != 101 || ts != 8000 || step != 3000 {
		t.Fatalf("got %d %d step %d", s, ts, step)
	}
	// A reordered older packet is not the newest.
	if _, _, newest, _ := tl.rewrite(pkt(99, 2000, slice, true), t0); newest {
		t.Fatal("an older packet counted as the newest")
	}
	// A new source, numbered anywhere, spliced in at an outgoing timestamp
	// (the forwarder's alignTS picks it): seq continues after the slack.
	tl.newSource()
	at := t0.Add(233 * time.Millisecond)
	tl.spliceAt(pkt(40000, 123, idr, true), 8000+18000)
	s, ts, _, _ = tl.rewrite(pkt(40000, 123, idr, true), at)
	if s != 101+1+spliceSlack {
		t.Fatalf("seq after splice %d, want %d", s, 101+1+spliceSlack)
	}
	if ts != 26000 {
		t.Fatalf("ts after splice %d, want 26000", ts)
	}
	// Late packets of the splice keyframe fit in the slack; older frames do not.
	if tl.stale(pkt(39999, 123, []byte{0x67}, false)) {
		t.Fatal("a late packet of the splice keyframe is stale")
	}
	if !tl.stale(pkt(39999, 100, slice, true)) {
		t.Fatal("a packet of an older frame is not stale")
	}
	// spliceAt is how a layer switch would align on the shared clock.
	tl.spliceAt(pkt(7, 1000, idr, true), 50000)
	if _, ts, _, _ := tl.rewrite(pkt(8, 4000, slice, true), at); ts != 53000 {
		t.Fatalf("spliceAt: ts %d, want 53000", ts)
	}
}
