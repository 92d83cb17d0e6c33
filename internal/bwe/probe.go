package bwe

import (
	"time"
)

// minProbePackets is how many timed packets a probe needs to be judged on
// anything but failure: fewer cannot give a delivered rate worth jumping to.
const minProbePackets = 5

// probe is the state of the latest probe window.
type probe struct {
	active  bool // started and not yet judged
	startNs int64
	endNs   int64
	pending int // probe packets sent and not yet reported

	sent     arrivals // send times, to measure the rate actually sent
	acked    int64
	lost     int64
	arr      arrivals // receive times of the acked probe packets
	maxDelay int64    // highest one-way delay of a probe packet, ns

	result ProbeResult
}

// onSent claims a packet sent at ns for the probe; it returns the probe ID to
// stamp on the packet, 0 when no probe window is open. Holding mu.
func (p *probe) onSent(size int, ns int64) uint64 {
	if !p.active || ns < p.startNs || ns >= p.endNs {
		return 0
	}
	p.sent.add(ns, int64(size))
	p.pending++
	return p.result.ID
}

// inProbe says whether p belongs to the probe still being judged. Holding mu.
func (e *Estimator) inProbe(p *sentPacket) bool {
	return e.probe.active && p.probe != 0 && p.probe == e.probe.result.ID
}

// StartProbe opens a probe window of d from now: the caller pads the
// viewer's stream so that everything sent in the window (media and padding,
// all passed to Sent) totals rate bits/s. A probe still open is abandoned as
// failed. Watch ProbeResult (or Estimate().Probe) for the outcome, and stop
// padding as soon as Probing turns false.
func (e *Estimator) StartProbe(rate int, d time.Duration, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ns := e.sinceEpoch(now)
	id := e.probe.result.ID + 1
	e.probe = probe{
		active:  true,
		startNs: ns,
		endNs:   ns + int64(d),
		result:  ProbeResult{ID: id, Rate: rate},
	}
}

// Probing says whether the caller should still pad for the current probe:
// its window is open and it has not already failed.
func (e *Estimator) Probing(now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.probe.active && e.sinceEpoch(now) < e.probe.endNs
}

// ProbeResult returns the state of the latest probe.
func (e *Estimator) ProbeResult() ProbeResult {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.probe.result
}

// judgeProbe decides the probe when its feedback is in, or fails it early
// when the link already shows it cannot carry it. Holding mu.
func (e *Estimator) judgeProbe(nowNs int64) {
	p := &e.probe
	if !p.active {
		return
	}
	cfg := &e.cfg
	tooLossy := false
	if n := p.acked + p.lost; n >= minLossPackets || (nowNs >= p.endNs && n > 0) {
		// One loss is noise (a 1 % random-loss link drops one of the
		// first ten packets one time in ten); two is a pattern.
		tooLossy = p.lost >= 2 && float64(p.lost) > cfg.ProbeMaxLoss*float64(n)
	}
	queued := false
	if base, ok := e.baseline.get(nowNs, int64(cfg.BaselineWindow)); ok && p.arr.n > 0 {
		queued = p.maxDelay-base > int64(cfg.DelayThreshold)
	}
	complete := nowNs >= p.endNs && p.pending <= 0
	timedOut := nowNs >= p.endNs+int64(cfg.ProbeTimeout)
	if !tooLossy && !queued && !complete && !timedOut {
		return
	}
	sent, sentOK := p.sent.rate()
	delivered, ok := p.arr.rate()
	p.result.Done = true
	p.result.Sent = int(sent)
	p.result.Delivered = int(delivered)
	p.result.OK = ok && sentOK && complete && !tooLossy && !queued &&
		p.arr.n >= minProbePackets && delivered >= cfg.ProbeMinRatio*sent
	p.active = false
	if p.result.OK {
		e.setBitrate(max(e.bitrate, delivered))
	}
}
