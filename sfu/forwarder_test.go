package sfu

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// sinkWriter stands in for a viewer's SRTP writer: it records what it gets.
type sinkWriter struct {
	n       atomic.Int64
	lastSeq uint16
	lastTS  uint32
	lastPT  uint8
	fail    bool
}

func (w *sinkWriter) WriteRTP(h *rtp.Header, p []byte) (int, error) {
	if w.fail {
		return 0, errTestWrite
	}
	w.n.Add(1)
	w.lastSeq, w.lastTS, w.lastPT = h.SequenceNumber, h.Timestamp, h.PayloadType
	return len(p), nil
}
func (w *sinkWriter) Write(b []byte) (int, error) { return len(b), nil }

type testErr string

func (e testErr) Error() string { return string(e) }

const errTestWrite = testErr("write failed")

var h264 = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: "packetization-mode=1;profile-level-id=42e01f"}

func testForwarder(t testing.TB) (*forwarder, *int) {
	return testForwarderWorkers(t, 1)
}

// testForwarderWorkers spreads passes over more than 4 subscribers over workers.
func testForwarderWorkers(t testing.TB, workers int) (*forwarder, *int) {
	tun := DefaultTuning()
	plis := 0
	fan := newFanout(nil, 4, workers)
	t.Cleanup(fan.close)
	f := newForwarder(true, &tun, newMetrics(), fan, func(int) { plis++ })
	return f, &plis
}

func viewer(f *forwarder, w webrtc.TrackLocalWriter) *downTrack {
	d := newDownTrack("video", "s", webrtc.RTPCodecTypeVideo)
	d.params = []webrtc.RTPCodecParameters{{RTPCodecCapability: h264, PayloadType: 102}}
	d.writer = w
	d.ssrc = 1234
	f.add(d)
	return d
}

var (
	idr   = []byte{0x65, 0x88, 0x84, 0x00}
	slice = []byte{0x41, 0x9a, 0x02, 0x00}
)

func pkt(seq uint16, ts uint32, payload []byte, marker bool) *rtp.Packet {
	return &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: ts, Marker: marker, SSRC: 99}, Payload: payload}
}

func TestForwarderJoinFromCacheAndSplice(t *testing.T) {
	f, plis := testForwarder(t)
	gen := f.attach(h264)
	now := time.Now()
	a := &sinkWriter{}
	viewer(f, a)
	f.write(gen, pkt(100, 9000, slice, true), now) // before any keyframe: dropped
	if a.n.Load() != 0 {
		t.Fatal("forwarded before the first keyframe")
	}
	f.write(gen, pkt(101, 12000, idr, true), now)
	f.write(gen, pkt(102, 15000, slice, true), now)
	if a.n.Load() != 2 || a.lastPT != 102 {
		t.Fatalf("viewer a got %d packets pt %d", a.n.Load(), a.lastPT)
	}
	// A late joiner gets the cached GOP (IDR + slice) at once, no PLI.
	b := &sinkWriter{}
	viewer(f, b)
	f.write(gen, pkt(103, 18000, slice, true), now)
	if b.n.Load() != 3 || *plis != 0 {
		t.Fatalf("late joiner got %d packets (want 3 from cache+live), %d PLIs", b.n.Load(), *plis)
	}
	// A new source is spliced in: sequence continues, timestamps move on.
	lastSeq, lastTS := a.lastSeq, a.lastTS
	f.detach(0, gen)
	gen2 := f.attach(h264)
	later := now.Add(100 * time.Millisecond)
	f.write(gen2, pkt(5000, 777, slice, true), later) // waits for a keyframe
	f.write(gen2, pkt(5001, 999, idr, true), later)
	if a.lastSeq != lastSeq+1+spliceSlack {
		t.Fatalf("seq after splice %d, want %d", a.lastSeq, lastSeq+1+spliceSlack)
	}
	// A late packet of the splice keyframe (its SPS, retransmitted) still
	// reaches viewers, in the slot left for it; older ones do not.
	n0 := a.n.Load()
	f.write(gen2, pkt(5000, 999, []byte{0x67, 0x42}, false), later)
	if a.n.Load() != n0+1 || a.lastSeq != lastSeq+spliceSlack {
		t.Fatalf("late SPS of the splice keyframe: forwarded %d, seq %d", a.n.Load()-n0, a.lastSeq)
	}
	f.write(gen2, pkt(4999, 777, slice, true), later)
	if a.n.Load() != n0+1 {
		t.Fatal("a packet of an older frame was forwarded after the splice")
	}
	if d := int32(a.lastTS - lastTS); d < 8000 || d > 10000 {
		t.Fatalf("ts advanced by %d over 100 ms, want ~9000", d)
	}
	// Writes from the old generation are ignored.
	n := a.n.Load()
	f.write(gen, pkt(104, 21000, slice, true), later)
	if a.n.Load() != n {
		t.Fatal("a stale source was forwarded")
	}
}

func TestForwarderNoCacheRequestsKeyframeAndFailingViewer(t *testing.T) {
	f, plis := testForwarder(t)
	gen := f.attach(h264)
	now := time.Now()
	f.write(gen, pkt(1, 0, idr, true), now)
	f.layers[0].gop.invalidate() // e.g. the GOP outgrew the cache
	bad := &sinkWriter{fail: true}
	good := &sinkWriter{}
	viewer(f, bad)
	viewer(f, good)
	f.write(gen, pkt(2, 3000, slice, true), now)
	if *plis != 1 {
		t.Fatalf("joiners without a cache asked for %d keyframes, want 1", *plis)
	}
	f.write(gen, pkt(3, 6000, idr, true), now)
	f.write(gen, pkt(4, 9000, slice, true), now)
	if good.n.Load() != 2 {
		t.Fatalf("good viewer got %d packets, want 2 (from the keyframe)", good.n.Load())
	}
}

func TestGOPCacheBounded(t *testing.T) {
	g := newGOPCache(1000)
	g.startKeyframe(1)
	for i := 0; i < 5; i++ {
		if !g.add(uint16(i), 1, false, make([]byte, 200)) {
			t.Fatalf("packet %d refused under the bound", i)
		}
	}
	if g.add(5, 1, false, make([]byte, 200)) || g.valid {
		t.Fatal("cache grew past its bound")
	}
}

func TestNACKFromSharedCache(t *testing.T) {
	f, _ := testForwarder(t)
	gen := f.attach(h264)
	w := &sinkWriter{}
	d := viewer(f, w)
	now := time.Now()
	f.write(gen, pkt(10, 0, idr, true), now)
	f.write(gen, pkt(11, 3000, slice, true), now)
	n := w.n.Load()
	f.retransmit(d, []uint16{10, 11, 500})
	if w.n.Load() != n+2 {
		t.Fatalf("retransmitted %d, want 2", w.n.Load()-n)
	}
}

func TestMediaClockWholeFrames(t *testing.T) {
	f, _ := testForwarder(t)
	gen := f.attach(h264)
	t0 := time.Now()
	f.write(gen, pkt(1, 90000, idr, true), t0)
	f.write(gen, pkt(2, 93000, slice, true), t0.Add(33*time.Millisecond))
	ts, live := f.mediaTime(t0.Add(40*time.Millisecond), time.Second)
	if !live || ts != 93000 {
		t.Fatalf("media time %d live %v, want the newest frame 93000", ts, live)
	}
	ts, _ = f.mediaTime(t0.Add(33*time.Millisecond+80*time.Millisecond), time.Second)
	if ts != 99000 {
		t.Fatalf("after a 80 ms stall media time %d, want two frame steps on (99000)", ts)
	}
}

func TestKeyframeDetection(t *testing.T) {
	cases := []struct {
		k    codecKind
		p    []byte
		want bool
	}{
		{codecH264, []byte{0x65}, true},
		{codecH264, []byte{0x67}, true},
		{codecH264, []byte{0x41}, false},
		{codecH264, []byte{0x18, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0x01}, true}, // STAP-A SPS+PPS
		{codecH264, []byte{0x7c, 0x85}, true},                               // FU-A start of IDR
		{codecH264, []byte{0x7c, 0x05}, false},                              // FU-A middle
		{codecVP8, []byte{0x10, 0x00}, true},
		{codecVP8, []byte{0x10, 0x01}, false},
		{codecVP8, []byte{0x90, 0x80, 0x12, 0x00}, true}, // X, I: 7-bit picture id
		{codecVP9, []byte{0x08}, true},
		{codecVP9, []byte{0x48}, false},
		{codecAV1, []byte{0x08}, true},
		{codecAV1, []byte{0x00}, false},
		{codecH265, []byte{19 << 1, 1}, true},
		{codecH265, []byte{1 << 1, 1}, false},
	}
	for i, c := range cases {
		if got := isKeyframeStart(c.k, c.p); got != c.want {
			t.Errorf("case %d: got %v want %v", i, got, c.want)
		}
	}
}

// The fan-out allocates nothing per packet, alone or spread over workers,
// with or without the transport-wide CC extension and its send record.
func TestFanoutAllocatesNothing(t *testing.T) {
	for _, workers := range []int{1, 3} {
		t.Run(itoa(workers), func(t *testing.T) { fanoutAllocs(t, workers, false) })
		t.Run(itoa(workers)+"-twcc", func(t *testing.T) { fanoutAllocs(t, workers, true) })
	}
}

// countSent is a SentRecorder that counts.
type countSent struct{ n atomic.Int64 }

func (c *countSent) Sent(uint16, int, time.Time) { c.n.Add(1) }

func fanoutAllocs(t *testing.T, workers int, twcc bool) {
	f, _ := testForwarderWorkers(t, workers)
	f.stamp = &atomic.Bool{}
	f.stamp.Store(twcc)
	gen := f.attach(h264)
	rec := &countSent{}
	for i := 0; i < 50; i++ {
		d := viewer(f, &sinkWriter{})
		if twcc {
			tcc := &transportCC{}
			var r SentRecorder = rec
			tcc.sent.Store(&r)
			d.tcc, d.tccID = tcc, 3
		}
	}
	now := time.Now()
	f.write(gen, pkt(0, 0, idr, true), now)
	seq := uint16(1)
	payload := make([]byte, 1100)
	payload[0] = 0x41
	p := pkt(0, 0, payload, true)
	allocs := testing.AllocsPerRun(1000, func() {
		p.SequenceNumber = seq
		p.Timestamp = uint32(seq) * 3000
		f.write(gen, p, now)
		seq++
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per forwarded packet", allocs)
	}
	if twcc && rec.n.Load() < 50*1000 {
		t.Fatalf("%d packets recorded for the estimate, want every one", rec.n.Load())
	}
}

func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{10, 100, 300} {
		b.Run(itoa(n), func(b *testing.B) {
			f, _ := testForwarderWorkers(b, 1)
			gen := f.attach(h264)
			for i := 0; i < n; i++ {
				viewer(f, &sinkWriter{})
			}
			now := time.Now()
			f.write(gen, pkt(0, 0, idr, true), now)
			payload := make([]byte, 1100)
			payload[0] = 0x41
			key := make([]byte, 1100)
			key[0] = 0x65
			p := pkt(0, 0, payload, false)
			b.ReportAllocs()
			b.SetBytes(int64(len(payload) * n))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				// 8 packets a frame, a keyframe every 30 frames (1 s GOP).
				p.SequenceNumber = uint16(i + 1)
				p.Timestamp = uint32(i/8) * 3000
				p.Payload = payload
				if i%240 == 0 {
					p.Payload = key
				}
				f.write(gen, p, now)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/packet-viewer")
		})
	}
}

func itoa(n int) string {
	s := ""
	for {
		s = string(rune('0'+n%10)) + s
		n /= 10
		if n == 0 {
			return s
		}
	}
}

// With sender reports that agree with the local clock, the media clock
// names the frame being captured now, not just the newest to arrive.
func TestMediaClockSenderReport(t *testing.T) {
	f, _ := testForwarder(t)
	gen := f.attach(h264)
	t0 := time.Now()
	f.write(gen, pkt(1, 90000, idr, true), t0)
	f.write(gen, pkt(2, 93000, slice, true), t0.Add(10*time.Millisecond))
	// Frame 93000 was captured 80 ms before it arrived (a slow encoder).
	f.senderReport(0, gen, t0.Add(10*time.Millisecond-80*time.Millisecond), 93000)
	ts, _ := f.mediaTime(t0.Add(10*time.Millisecond), time.Second)
	if ts != 93000+2*3000 {
		t.Fatalf("media time %d, want %d: the frame captured now, two frames on", ts, 93000+2*3000)
	}
	// A report from a clock far off is ignored.
	f.senderReport(0, gen, t0.Add(-time.Hour), 93000)
	if ts, _ := f.mediaTime(t0.Add(10*time.Millisecond), time.Second); ts != 93000 {
		t.Fatalf("media time %d with a skewed sender clock, want the newest frame 93000", ts)
	}
}

// A viewer asking for more than its retransmission budget gets only the budget.
func TestRetransmitBudget(t *testing.T) {
	var b rtxBudget
	now := time.Now()
	if got := b.take(1000, 400, now); got != 400 {
		t.Fatalf("first burst: %d, want 400", got)
	}
	if got := b.take(100, 400, now.Add(100*time.Millisecond)); got != 40 {
		t.Fatalf("after 100 ms: %d, want 40", got)
	}
}

// A push just past a frame boundary names the earlier frame: frames are not
// exactly one step apart, and a stamp must not name a frame not yet captured.
func TestMediaClockNearBoundary(t *testing.T) {
	f, _ := testForwarder(t)
	gen := f.attach(h264)
	t0 := time.Now()
	f.write(gen, pkt(1, 90000, idr, true), t0)
	f.write(gen, pkt(2, 93000, slice, true), t0.Add(33*time.Millisecond))
	if ts, _ := f.mediaTime(t0.Add(33*time.Millisecond+35*time.Millisecond), time.Second); ts != 93000 {
		t.Fatalf("35 ms after a 33 ms frame: %d, want 93000", ts)
	}
}
