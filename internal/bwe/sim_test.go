package bwe

import (
	"testing"
	"time"

	"github.com/pion/rtcp"
)

// A deterministic simulated path from the SFU to one viewer: a token-bucket
// bottleneck like Linux tbf ("rate R latency L": packets that would wait
// longer than L in its queue are dropped), propagation delay each way, a
// receiver that sends TWCC feedback every 50 ms, and a sender of 30 fps
// video (frames sent back to back in 1200-byte packets), 40 kbit/s audio and
// probe padding.

const (
	tick       = time.Millisecond
	fbInterval = 50 * time.Millisecond
	oneWay     = 20 * time.Millisecond
	pktSize    = 1200
	audioSize  = 100 // every 20 ms: 40 kbit/s
	audioRate  = audioSize * 8 * 50
	// The receiver's clock is 12 s short of the 24-bit reference-time
	// wrap, so every long run crosses it.
	remoteOffsetUs = (1<<24)*64_000 - 12_000_000
)

var testLayers = []int{150_000, 600_000, 2_500_000}

type bottleneck struct {
	rate      float64 // bits/s
	latency   time.Duration
	busyUntil time.Duration
}

// pass returns when a packet entering at t leaves the bottleneck, or false
// when the queue is too long and it is dropped.
func (b *bottleneck) pass(t time.Duration, size int) (time.Duration, bool) {
	start := max(t, b.busyUntil)
	if start-t > b.latency {
		return 0, false
	}
	b.busyUntil = start + time.Duration(float64(size*8)/b.rate*1e9)
	return b.busyUntil, true
}

type inFlight struct {
	seq uint16
	at  time.Duration // arrival at the receiver
}

type sentFB struct {
	at time.Duration // arrival at the sender
	fb *rtcp.TransportLayerCC
}

type switchEvent struct {
	at       time.Duration
	from, to int
}

type sim struct {
	t    testing.TB
	now  time.Duration
	link bottleneck
	est  *Estimator
	ch   *Chooser // nil: send fixedRate
	cur  int

	fixedRate int

	seq       uint16
	videoDebt float64 // bytes owed to the video stream
	padDebt   float64
	probeRate int
	wire      []inFlight // in arrival order: the path is FIFO
	feedback  []sentFB

	// Receiver.
	started  bool
	next     uint16 // first sequence number not yet reported
	pending  []status
	fbCount  uint8
	lastFBAt time.Duration

	switches []switchEvent
	probes   []time.Duration // when each probe started
	results  []ProbeResult
	judged   []time.Duration // when each result was first seen
}

func newSim(t testing.TB, rate float64, ch *Chooser, cur int) *sim {
	return &sim{
		t:    t,
		link: bottleneck{rate: rate, latency: 100 * time.Millisecond},
		est:  New(Config{}),
		ch:   ch,
		cur:  cur,
		seq:  65000, // the transport sequence wraps within a few seconds
		next: 65001,
	}
}

func (s *sim) wall() time.Time { return t0.Add(s.now) }

func (s *sim) videoRate() int {
	if s.ch == nil {
		return s.fixedRate
	}
	return testLayers[s.cur]
}

func (s *sim) send(size int) {
	s.seq++
	s.est.Sent(s.seq, size, s.wall())
	if out, ok := s.link.pass(s.now, size); ok {
		s.wire = append(s.wire, inFlight{seq: s.seq, at: out + oneWay})
	}
}

// runFor advances the simulation by d, one tick at a time.
func (s *sim) runFor(d time.Duration) {
	for end := s.now + d; s.now < end; s.now += tick {
		s.sendTick()
		s.receiveTick()
		s.senderTick()
	}
}

func (s *sim) sendTick() {
	if s.now%(20*time.Millisecond) == 0 {
		s.send(audioSize)
	}
	s.videoDebt += float64(s.videoRate()) / 8 * tick.Seconds()
	if s.now%(33*time.Millisecond) == 0 {
		for s.videoDebt > 0 {
			n := min(pktSize, int(s.videoDebt)+1)
			s.send(n)
			s.videoDebt -= float64(n)
		}
	}
	if s.probeRate > 0 && s.est.Probing(s.wall()) {
		s.padDebt += float64(s.probeRate-s.videoRate()-audioRate) / 8 * tick.Seconds()
		for s.padDebt >= pktSize {
			s.send(pktSize)
			s.padDebt -= pktSize
		}
	} else {
		s.padDebt = 0
	}
}

// receiveTick delivers arrived packets and sends feedback every 50 ms.
func (s *sim) receiveTick() {
	for len(s.wire) > 0 && s.wire[0].at <= s.now {
		p := s.wire[0]
		s.wire = s.wire[1:]
		for s.next+uint16(len(s.pending)) != p.seq+1 {
			s.pending = append(s.pending, status{}) // lost, unless it was this one
		}
		s.pending[len(s.pending)-1] = status{received: true, arrUs: remoteOffsetUs + p.at.Microseconds()}
	}
	if s.now-s.lastFBAt < fbInterval || len(s.pending) == 0 {
		return
	}
	s.lastFBAt = s.now
	fb := buildFeedback(s.t, s.next, s.fbCount, s.pending)
	s.fbCount++
	s.next += uint16(len(s.pending))
	s.pending = s.pending[:0]
	s.feedback = append(s.feedback, sentFB{at: s.now + oneWay, fb: fb})
}

// senderTick hands arrived feedback to the estimator and asks the chooser.
func (s *sim) senderTick() {
	for len(s.feedback) > 0 && s.feedback[0].at <= s.now {
		s.est.Feedback(s.feedback[0].fb, s.wall())
		s.feedback = s.feedback[1:]
		if s.ch == nil {
			continue
		}
		est := s.est.Estimate()
		if n := len(s.results); est.Probe.Done && (n == 0 || s.results[n-1].ID != est.Probe.ID) {
			s.results = append(s.results, est.Probe)
			s.judged = append(s.judged, s.now)
		}
		d := s.ch.Choose(s.wall(), est, testLayers, s.cur)
		if d.Target != s.cur {
			s.switches = append(s.switches, switchEvent{at: s.now, from: s.cur, to: d.Target})
			s.cur = d.Target
		}
		if d.ProbeRate > 0 {
			s.est.StartProbe(d.ProbeRate, d.ProbeFor, s.wall())
			s.probeRate = d.ProbeRate
			s.probes = append(s.probes, s.now)
		}
	}
}

// (a) 2.5 Mbit/s into a 700 kbit/s link: congestion, and an estimate below
// the link rate, within 2 s.
func TestSimOverloadDecreases(t *testing.T) {
	s := newSim(t, 700_000, nil, 0)
	s.fixedRate = 2_500_000
	var congestedAt, belowAt time.Duration = -1, -1
	for s.now < 2*time.Second {
		s.runFor(10 * time.Millisecond)
		est := s.est.Estimate()
		if est.Congested && congestedAt < 0 {
			congestedAt = s.now
		}
		if est.Ready && est.Bitrate < 700_000 && belowAt < 0 {
			belowAt = s.now
		}
	}
	est := s.est.Estimate()
	t.Logf("congested at %v, estimate < 700k at %v; now %+v", congestedAt, belowAt, est)
	if congestedAt < 0 || belowAt < 0 {
		t.Fatalf("after 2 s: congested at %v, below 700k at %v (want both)", congestedAt, belowAt)
	}
	if est.Bitrate >= 700_000 || est.Delivered > 720_000 || est.Loss < 0.5 {
		t.Fatalf("after 2 s: %+v, want bitrate < 700k, delivered ≤ link, loss ≥ 50 %%", est)
	}
}

// (b) A top-layer viewer behind 700 kbit/s. 0.85 × 700k = 595k is below the
// 600k layer, so the rules step down to layer 0 within 2 s; a probe at
// 1.25 × 600k = 750k then shows 700k delivered (≥ 1.1 × 600k = 660k), so
// the viewer settles on layer 1 (640k with audio), and probes for layer 2
// fail with growing backoff. No flapping: exactly those two switches in 60 s.
func TestSimStepsDownWithoutFlapping(t *testing.T) {
	s := newSim(t, 700_000, NewChooser(ChooserConfig{}), 2)
	s.runFor(2 * time.Second)
	if len(s.switches) == 0 || s.cur != 0 {
		t.Fatalf("after 2 s: layer %d, switches %v; want layer 0", s.cur, s.switches)
	}
	t.Logf("stepped down at %v", s.switches[0].at)
	s.runFor(58 * time.Second)
	t.Logf("switches %v, probes at %v", s.switches, s.probes)
	for _, r := range s.results {
		t.Logf("probe %+v", r)
	}
	if len(s.switches) != 2 || s.switches[1].to != 1 || s.cur != 1 {
		t.Fatalf("switches %v, want 2→0 then 0→1 and nothing more", s.switches)
	}
}

// (c) An unconstrained link: a top-layer viewer stays there.
func TestSimUnconstrainedStaysAtTop(t *testing.T) {
	s := newSim(t, 50_000_000, NewChooser(ChooserConfig{}), 2)
	s.runFor(60 * time.Second)
	est := s.est.Estimate()
	t.Logf("estimate after 60 s: %+v", est)
	if len(s.switches) != 0 || len(s.probes) != 0 {
		t.Fatalf("switches %v, probes %v; want none", s.switches, s.probes)
	}
	if est.Congested || est.Bitrate < 2_500_000 {
		t.Fatalf("estimate %+v: want uncongested, ≥ 2.5 Mbit/s", est)
	}
}

// (d) The link recovers from 700 kbit/s to 10 Mbit/s: probes bring the
// viewer back to the top layer. The wait is whatever backoff the probes that
// failed while the link was narrow left: after 30 s at 700k (down to layer 0
// at ~1.2 s, up to 1 by probe at ~8 s, probes for 2 failing at ~13 s and
// ~21 s) a 16 s hold runs to ~37 s; that probe passes and the switch follows
// ~0.5 s later, ~8 s after the restore. Hence the 10 s bound. In general the
// wait is at most the backoff in force (≤ 60 s) plus a second.
func TestSimRecoversViaProbe(t *testing.T) {
	s := newSim(t, 700_000, NewChooser(ChooserConfig{}), 2)
	s.runFor(30 * time.Second)
	if s.cur == 2 {
		t.Fatalf("still on layer 2 on a 700k link")
	}
	restored := s.now
	s.link.rate = 10_000_000
	for s.cur != 2 && s.now-restored < 60*time.Second {
		s.runFor(100 * time.Millisecond)
	}
	took := s.now - restored
	t.Logf("back on top %v after the restore; switches %v, probes %v", took, s.switches, s.probes)
	if s.cur != 2 || took > 10*time.Second {
		t.Fatalf("layer %d %v after the restore; want 2 within 10 s", s.cur, took)
	}
	// And it stays there.
	n := len(s.switches)
	s.runFor(30 * time.Second)
	if len(s.switches) != n {
		t.Fatalf("switches after recovery: %v", s.switches[n:])
	}
}

// (e) Failed probes back off: on a 700k link the viewer on layer 1 probes
// for layer 2, fails, and each next probe waits longer (8, 16, 32, 60 s).
func TestSimFailedProbesBackOff(t *testing.T) {
	s := newSim(t, 700_000, NewChooser(ChooserConfig{}), 1)
	s.runFor(150 * time.Second)
	t.Logf("switches %v, probes at %v", s.switches, s.probes)
	for _, r := range s.results {
		if r.OK && r.Delivered >= 2_750_000 {
			t.Fatalf("probe %+v passed on a 700k link", r)
		}
	}
	if len(s.probes) < 4 {
		t.Fatalf("%d probes in 150 s, want ≥ 4", len(s.probes))
	}
	for i := 2; i < len(s.probes); i++ {
		prev, gap := s.probes[i-1]-s.probes[i-2], s.probes[i]-s.probes[i-1]
		if gap <= prev && gap < 60*time.Second {
			t.Fatalf("probe gaps %v then %v: want growing up to 60 s (probes %v)", prev, gap, s.probes)
		}
	}
	if gap := s.probes[1] - s.probes[0]; gap < 8*time.Second {
		t.Fatalf("first retry after %v, want ≥ 8 s", gap)
	}
	// Each failed as soon as its feedback showed loss, well before its
	// 500 ms were up, so the padding stopped early.
	for i, r := range s.results {
		if took := s.judged[i] - s.probes[i]; r.OK || took >= 500*time.Millisecond {
			t.Fatalf("probe %+v judged %v after it started, want failed within 500 ms", r, took)
		}
	}
}

// A new viewer (no layer yet) on a fast link starts at the layer under the
// initial 1 Mbit/s, and a probe takes it to the top once 5 s have been quiet.
func TestSimNewViewerClimbs(t *testing.T) {
	s := newSim(t, 50_000_000, NewChooser(ChooserConfig{}), 0)
	s.cur = s.ch.Choose(s.wall(), s.est.Estimate(), testLayers, -1).Target
	if s.cur != 1 {
		t.Fatalf("start layer %d, want 1", s.cur)
	}
	s.runFor(20 * time.Second)
	t.Logf("switches %v, probes %v", s.switches, s.probes)
	if s.cur != 2 || len(s.switches) != 1 || s.switches[0].at > 6*time.Second {
		t.Fatalf("switches %v, want one, to layer 2, by 6 s", s.switches)
	}
}
