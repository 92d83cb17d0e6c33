package bwe

import (
	"testing"
	"time"

	"github.com/pion/rtcp"
)

var t0 = time.Unix(1_700_000_000, 0)

const (
	lost  = rtcp.TypeTCCPacketNotReceived
	small = rtcp.TypeTCCPacketReceivedSmallDelta
	large = rtcp.TypeTCCPacketReceivedLargeDelta
)

// sendRange records count 1200-byte packets from seq on, 1 ms apart.
func sendRange(e *Estimator, seq uint16, count int) {
	for i := range count {
		e.Sent(seq+uint16(i), 1200, t0.Add(time.Duration(i)*time.Millisecond))
	}
}

func checkTotals(t *testing.T, e *Estimator, want Totals) {
	t.Helper()
	if got := e.Totals(); got != want {
		t.Fatalf("totals = %+v, want %+v", got, want)
	}
}

// handFeedback is a packet with explicit chunks: run-length, 2-bit vector,
// 1-bit vector and run-length again, across the 65535→0 wrap.
func handFeedback(t *testing.T) *rtcp.TransportLayerCC {
	t.Helper()
	chunks := []rtcp.PacketStatusChunk{
		// 65530–65533 received.
		&rtcp.RunLengthChunk{Type: rtcp.TypeTCCRunLengthChunk, PacketStatusSymbol: small, RunLength: 4},
		// 65534 lost, 65535 received (large, negative delta: reordered),
		// 0 lost, 1 and 2 received, 3 and 4 lost.
		&rtcp.StatusVectorChunk{Type: rtcp.TypeTCCStatusVectorChunk, SymbolSize: rtcp.TypeTCCSymbolSizeTwoBit,
			SymbolList: []uint16{lost, large, lost, small, small, lost, lost}},
		// 5–18: all received but 7 and 18.
		&rtcp.StatusVectorChunk{Type: rtcp.TypeTCCStatusVectorChunk, SymbolSize: rtcp.TypeTCCSymbolSizeOneBit,
			SymbolList: []uint16{1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0}},
		// 19 and 20 lost.
		&rtcp.RunLengthChunk{Type: rtcp.TypeTCCRunLengthChunk, PacketStatusSymbol: lost, RunLength: 2},
	}
	var deltas []*rtcp.RecvDelta
	for range 4 {
		deltas = append(deltas, &rtcp.RecvDelta{Type: small, Delta: 1000})
	}
	deltas = append(deltas, &rtcp.RecvDelta{Type: large, Delta: -2000})
	for range 2 + 12 {
		deltas = append(deltas, &rtcp.RecvDelta{Type: small, Delta: 1000})
	}
	return roundTrip(t, &rtcp.TransportLayerCC{
		BaseSequenceNumber: 65530,
		PacketStatusCount:  27,
		ReferenceTime:      100,
		PacketChunks:       chunks,
		RecvDeltas:         deltas,
	})
}

func TestFeedbackCountsAckedAndLostAcrossWrap(t *testing.T) {
	e := New(Config{})
	sendRange(e, 65530, 27)
	fb := handFeedback(t)
	if len(fb.RecvDeltas) != 19 {
		t.Fatalf("round trip kept %d deltas, want 19", len(fb.RecvDeltas))
	}
	now := t0.Add(100 * time.Millisecond)
	e.Feedback(fb, now)
	checkTotals(t, e, Totals{Acked: 19, Lost: 8})

	// The same feedback again (a duplicate) changes nothing.
	e.Feedback(handFeedback(t), now)
	checkTotals(t, e, Totals{Acked: 19, Lost: 8})

	// A later feedback says 0 (reported lost) did arrive, late.
	late := roundTrip(t, &rtcp.TransportLayerCC{
		BaseSequenceNumber: 0, PacketStatusCount: 1, ReferenceTime: 101,
		PacketChunks: []rtcp.PacketStatusChunk{&rtcp.RunLengthChunk{PacketStatusSymbol: small, RunLength: 1}},
		RecvDeltas:   []*rtcp.RecvDelta{{Type: small, Delta: 0}},
	})
	e.Feedback(late, now)
	checkTotals(t, e, Totals{Acked: 20, Lost: 7})

	// An older, reordered feedback calling 65530–65533 lost is ignored:
	// they were received.
	old := roundTrip(t, &rtcp.TransportLayerCC{
		BaseSequenceNumber: 65530, PacketStatusCount: 4, ReferenceTime: 99,
		PacketChunks: []rtcp.PacketStatusChunk{&rtcp.RunLengthChunk{PacketStatusSymbol: lost, RunLength: 4}},
	})
	e.Feedback(old, now)
	checkTotals(t, e, Totals{Acked: 20, Lost: 7})

	// Packets never sent are unknown, not lost.
	never := roundTrip(t, &rtcp.TransportLayerCC{
		BaseSequenceNumber: 1000, PacketStatusCount: 5, ReferenceTime: 102,
		PacketChunks: []rtcp.PacketStatusChunk{&rtcp.RunLengthChunk{PacketStatusSymbol: lost, RunLength: 5}},
	})
	e.Feedback(never, now)
	checkTotals(t, e, Totals{Acked: 20, Lost: 7, Unknown: 5})
}

// A status vector's unused tail (the packet ends mid-chunk) must not be
// read as more packets.
func TestFeedbackStopsAtStatusCount(t *testing.T) {
	e := New(Config{})
	sendRange(e, 10, 20)
	fb := roundTrip(t, &rtcp.TransportLayerCC{
		BaseSequenceNumber: 10, PacketStatusCount: 3, ReferenceTime: 5,
		PacketChunks: []rtcp.PacketStatusChunk{&rtcp.StatusVectorChunk{
			Type: rtcp.TypeTCCStatusVectorChunk, SymbolSize: rtcp.TypeTCCSymbolSizeOneBit,
			SymbolList: []uint16{1, 0, 1},
		}},
		RecvDeltas: []*rtcp.RecvDelta{{Type: small, Delta: 250}, {Type: small, Delta: 250}},
	})
	e.Feedback(fb, t0.Add(50*time.Millisecond))
	checkTotals(t, e, Totals{Acked: 2, Lost: 1})
}

// The generic builder (used by the simulator) must agree with the parser,
// including a 2-bit vector forced by a negative delta.
func TestBuiltFeedbackRoundTrips(t *testing.T) {
	e := New(Config{})
	sendRange(e, 65500, 60)
	var sts []status
	for i := range 60 {
		s := status{received: i%9 != 4, arrUs: 5_000_000 + int64(i)*1000}
		if i == 30 {
			s.arrUs -= 3000 // arrived before its predecessor
		}
		sts = append(sts, s)
	}
	fb := buildFeedback(t, 65500, 0, sts)
	e.Feedback(fb, t0.Add(100*time.Millisecond))
	checkTotals(t, e, Totals{Acked: 53, Lost: 7})
}

// One-way delay: packets that take 100 ms longer than the earliest ones
// show 100 ms of queue delay; Delivered is bytes over the arrival span.
func TestFeedbackQueueDelayAndDelivered(t *testing.T) {
	e := New(Config{})
	const n = 20
	for i := range 2 * n {
		e.Sent(uint16(i), 1200, t0.Add(time.Duration(i)*10*time.Millisecond))
	}
	// The receiver's clock is far from ours: only differences count.
	const offsetUs = 987_654_321
	fbAt := func(first int, extraUs int64) *rtcp.TransportLayerCC {
		sts := make([]status, n)
		for i := range sts {
			sts[i] = status{received: true, arrUs: offsetUs + int64(first+i)*10_000 + extraUs}
		}
		return buildFeedback(t, uint16(first), uint8(first), sts)
	}
	e.Feedback(fbAt(0, 0), t0.Add(250*time.Millisecond))
	est := e.Estimate()
	// 19 gaps of 10 ms carried 19 × 1200 bytes: 960 kbit/s.
	if want := 19 * 1200 * 8 * 1e9 / float64(190*time.Millisecond); !near(float64(est.Delivered), want, 0.01) {
		t.Fatalf("delivered = %d, want %.0f", est.Delivered, want)
	}
	if est.QueueDelay > time.Millisecond {
		t.Fatalf("queue delay = %v with a steady delay, want ~0", est.QueueDelay)
	}
	e.Feedback(fbAt(n, 100_000), t0.Add(500*time.Millisecond))
	est = e.Estimate()
	if d := est.QueueDelay - 100*time.Millisecond; d < -time.Millisecond || d > time.Millisecond {
		t.Fatalf("queue delay = %v, want 100 ms", est.QueueDelay)
	}
}

// The 24-bit reference time (64 ms units) wraps every ~12 days; arrival
// times must keep increasing across it and tolerate a reordered feedback.
func TestRemoteClockWraps(t *testing.T) {
	var r remoteClock
	unit := int64(refTimeUnit)
	a := r.ns(0xFFFFFE)
	b := r.ns(0x000001) // wrapped: three units later
	c := r.ns(0xFFFFFF) // a reordered, older feedback
	if b-a != 3*unit || c-a != unit {
		t.Fatalf("unwrapped %d %d %d: want steps of 3 and 1 units", a, b, c)
	}
}

func near(got, want, frac float64) bool {
	return got >= want*(1-frac) && got <= want*(1+frac)
}
