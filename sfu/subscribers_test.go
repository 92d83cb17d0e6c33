package sfu

import (
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

func TestSubscriberSet(t *testing.T) {
	s := newSubscriberSet()
	a := newDownTrack("a", "s", webrtc.RTPCodecTypeVideo)
	b := newDownTrack("b", "s", webrtc.RTPCodecTypeVideo)
	sink := newDownTrack("sink", "s", webrtc.RTPCodecTypeVideo)
	sink.sink = sinkFunc(nil)
	s.add(a)
	s.add(sink)
	before := s.list()
	if len(before) != 0 || s.count() != 1 {
		t.Fatalf("joiners are live before admission: %d live, count %d", len(before), s.count())
	}
	if got := s.admit(); len(got) != 2 {
		t.Fatalf("admitted %d, want 2", len(got))
	}
	if s.admit() != nil {
		t.Fatal("admitted twice")
	}
	s.add(b)
	s.remove(b) // leaves while waiting
	s.remove(a)
	if len(before) != 0 {
		t.Fatal("a list handed out was modified (copy-on-write broken)")
	}
	if l := s.list(); len(l) != 1 || l[0] != sink || s.count() != 0 {
		t.Fatalf("after removals: %d live, count %d (sinks are not viewers)", len(l), s.count())
	}
}

// Setting one knob keeps the defaults of the others.
func TestTuningDefaultsPerField(t *testing.T) {
	got := Tuning{PLIInterval: time.Second}.withDefaults()
	want := DefaultTuning()
	want.PLIInterval = time.Second
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}
