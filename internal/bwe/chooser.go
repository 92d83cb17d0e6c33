package bwe

import (
	"time"
)

// ChooserConfig holds a Chooser's tunables; zero fields take the defaults.
type ChooserConfig struct {
	// StartBitrate picks a new viewer's layer: the highest whose bitrate is
	// at most this (default 1 Mbit/s, the Estimator's InitialBitrate).
	StartBitrate int
	// UpMargin: a layer fits for going up when the estimate is at least
	// UpMargin × its bitrate (default 1.25).
	UpMargin float64
	// UpAfter is how long that headroom must last (default 2.5 s).
	UpAfter time.Duration
	// DownFactor: on congestion the target is the highest layer whose
	// bitrate is at most DownFactor × Delivered (default 0.85).
	DownFactor float64
	// DownAfter is how long congestion must last before stepping down
	// (default 1 s; with detection this steps down within ~1.5 s).
	DownAfter time.Duration
	// LowFactor: without congestion, an estimate below LowFactor × the
	// current layer's bitrate for LowAfter also steps down (defaults 0.9,
	// 2 s).
	LowFactor float64
	LowAfter  time.Duration
	// QuietFor is how long the current layer must go without congestion
	// before probing for the next one (default 5 s).
	QuietFor time.Duration
	// ProbeMargin × the next layer's bitrate is the probe rate (default
	// 1.25), for ProbeFor (default 500 ms).
	ProbeMargin float64
	ProbeFor    time.Duration
	// ProbeUpFactor: a successful probe moves up when it delivered at least
	// ProbeUpFactor × the next layer's bitrate (default 1.1).
	ProbeUpFactor float64
	// ProbeWait is how long after the probe's end its result may take
	// before the probe counts as failed (default 2 s).
	ProbeWait time.Duration
	// ProbeGrace is how long after a probe's end congestion is taken to be
	// the probe's own doing and not a reason to step down (default 2 s:
	// the queue a failed probe leaves takes about that to drain).
	ProbeGrace time.Duration
	// BackoffMin and BackoffMax bound the wait after a failed probe or an
	// undone up-switch; it doubles on each (defaults 8 s, 60 s).
	BackoffMin time.Duration
	BackoffMax time.Duration
	// UndoWindow: a step down this soon after a step up undoes it and
	// backs off (default 10 s).
	UndoWindow time.Duration
	// StaleAfter: an estimate older than this (no feedback) freezes the
	// choice (default 2 s).
	StaleAfter time.Duration
}

func (c ChooserConfig) withDefaults() ChooserConfig {
	orDefault(&c.StartBitrate, 1_000_000)
	orDefault(&c.UpMargin, 1.25)
	orDefault(&c.UpAfter, 2500*time.Millisecond)
	orDefault(&c.DownFactor, 0.85)
	orDefault(&c.DownAfter, time.Second)
	orDefault(&c.LowFactor, 0.9)
	orDefault(&c.LowAfter, 2*time.Second)
	orDefault(&c.QuietFor, 5*time.Second)
	orDefault(&c.ProbeMargin, 1.25)
	orDefault(&c.ProbeFor, 500*time.Millisecond)
	orDefault(&c.ProbeUpFactor, 1.1)
	orDefault(&c.ProbeWait, 2*time.Second)
	orDefault(&c.ProbeGrace, 2*time.Second)
	orDefault(&c.BackoffMin, 8*time.Second)
	orDefault(&c.BackoffMax, 60*time.Second)
	orDefault(&c.UndoWindow, 10*time.Second)
	orDefault(&c.StaleAfter, 2*time.Second)
	return c
}

// Decision is what Choose says to do now.
type Decision struct {
	// Target is the layer index the viewer should get.
	Target int
	// ProbeRate, when not 0, asks the caller to StartProbe(ProbeRate,
	// ProbeFor, now) on the viewer's Estimator and pad up to that rate.
	ProbeRate int
	ProbeFor  time.Duration
}

// Chooser picks one viewer's simulcast layer from its estimates. It is
// deterministic (the caller passes the time) and not safe for concurrent use:
// call it from one goroutine per viewer. The zero value uses the defaults;
// Config is read on the first Choose.
//
// Rules, with the defaults:
//   - A new viewer (cur < 0) starts at the highest layer ≤ StartBitrate.
//   - Down: after 1 s of congestion, to the highest layer ≤ 0.85 × Delivered
//     (below the current one, at least the lowest); or after 2 s of an
//     estimate below 0.9 × the current layer.
//   - Up: after 2.5 s of an estimate ≥ 1.25 × the next layer, to the highest
//     layer it covers 1.25 times; or one layer after a probe delivered
//     ≥ 1.1 × the next layer.
//   - Probe at 1.25 × the next layer for 500 ms once the current layer has
//     been free of congestion for 5 s.
//   - A failed probe, or a step down within 10 s of a step up, holds all
//     upward moves for a backoff (8 s, doubling to 60 s); an up-switch that
//     lasts 10 s resets the backoff.
//   - No feedback for 2 s freezes the choice.
type Chooser struct {
	Config ChooserConfig

	cfg   ChooserConfig
	ready bool
	last  int // the last target returned; -1 before the first

	congestedSince time.Time // zero: not congested
	lowSince       time.Time
	headroomSince  time.Time
	quietSince     time.Time // last congestion or switch
	lastUp         time.Time // zero once the up-switch is settled or undone
	backoff        time.Duration
	holdUntil      time.Time

	probing       bool
	probeSeen     uint64 // the estimator's probe ID before ours started
	probeEnd      time.Time
	probeDeadline time.Time
}

// NewChooser returns a Chooser with cfg's zero fields defaulted.
func NewChooser(cfg ChooserConfig) *Chooser {
	return &Chooser{Config: cfg}
}

func (c *Chooser) setup() {
	if c.ready {
		return
	}
	c.ready = true
	c.cfg = c.Config.withDefaults()
	c.backoff = c.cfg.BackoffMin
	c.last = -1
}

// Choose returns the layer (an index into layers, ascending bits/s, all
// available) the viewer should get now, given its estimate and its layer
// cur; and whether to probe. cur is the layer the viewer was last assigned
// (the previous Target), not the one still being forwarded while a switch
// waits for a keyframe; < 0 for a viewer with no layer yet. A cur other than
// the previous Target (the caller moved the viewer itself) restarts the
// timers.
func (c *Chooser) Choose(now time.Time, est Estimate, layers []int, cur int) Decision {
	c.setup()
	if len(layers) == 0 {
		return Decision{}
	}
	if cur < 0 || cur >= len(layers) {
		t := fit(layers, float64(c.cfg.StartBitrate))
		if est.Ready {
			t = fit(layers, float64(est.Bitrate)/c.cfg.UpMargin)
		}
		c.reset(now, t)
		return Decision{Target: t}
	}
	if cur != c.last {
		// First call, or the caller moved the viewer by itself: timers
		// measured on another layer say nothing about this one.
		c.reset(now, cur)
	}
	if !est.Ready || now.Sub(est.At) > c.cfg.StaleAfter {
		c.lowSince, c.headroomSince = time.Time{}, time.Time{}
		return Decision{Target: cur}
	}
	if !c.lastUp.IsZero() && now.Sub(c.lastUp) >= c.cfg.UndoWindow {
		c.lastUp = time.Time{}
		c.backoff = c.cfg.BackoffMin
	}
	if t, ok := c.probeOutcome(now, est, layers, cur); ok {
		return c.switchTo(now, t, cur)
	}
	if t, ok := c.down(now, est, layers, cur); ok {
		return c.switchTo(now, t, cur)
	}
	return c.up(now, est, layers, cur)
}

// probeOutcome handles the result of a probe in flight; ok means move to t.
func (c *Chooser) probeOutcome(now time.Time, est Estimate, layers []int, cur int) (t int, ok bool) {
	if !c.probing {
		return 0, false
	}
	pr := est.Probe
	if pr.ID > c.probeSeen && pr.Done {
		c.probing = false
		if pr.OK && cur+1 < len(layers) &&
			float64(pr.Delivered) >= c.cfg.ProbeUpFactor*float64(layers[cur+1]) {
			return cur + 1, true
		}
		c.fail(now)
	} else if now.After(c.probeDeadline) {
		// Feedback lost, or the caller did not probe: same as failing.
		c.probing = false
		c.fail(now)
	}
	return 0, false
}

// down decides a step down; ok means move to t.
func (c *Chooser) down(now time.Time, est Estimate, layers []int, cur int) (t int, ok bool) {
	// Congestion right after our own probe is the probe's doing: the probe
	// has failed (and backs off), the layer that was fine before still is.
	ownProbe := !c.probeEnd.IsZero() && now.Before(c.probeEnd.Add(c.cfg.ProbeGrace))
	congested := est.Congested && !ownProbe
	if !congested {
		c.congestedSince = time.Time{}
	} else {
		c.quietSince = now
		if c.congestedSince.IsZero() {
			c.congestedSince = now
		}
		if cur > 0 && now.Sub(c.congestedSince) >= c.cfg.DownAfter {
			return min(fit(layers, c.cfg.DownFactor*float64(est.Delivered)), cur-1), true
		}
	}
	if cur == 0 || float64(est.Bitrate) >= c.cfg.LowFactor*float64(layers[cur]) {
		c.lowSince = time.Time{}
		return 0, false
	}
	if c.lowSince.IsZero() {
		c.lowSince = now
	}
	if now.Sub(c.lowSince) >= c.cfg.LowAfter {
		return min(fit(layers, float64(est.Bitrate)), cur-1), true
	}
	return 0, false
}

// up decides a step up or a probe.
func (c *Chooser) up(now time.Time, est Estimate, layers []int, cur int) Decision {
	d := Decision{Target: cur}
	if est.Congested || cur+1 >= len(layers) || c.probing || now.Before(c.holdUntil) {
		c.headroomSince = time.Time{}
		return d
	}
	next := float64(layers[cur+1])
	if float64(est.Bitrate) >= c.cfg.UpMargin*next {
		if c.headroomSince.IsZero() {
			c.headroomSince = now
		}
		if now.Sub(c.headroomSince) >= c.cfg.UpAfter {
			return c.switchTo(now, fit(layers, float64(est.Bitrate)/c.cfg.UpMargin), cur)
		}
		// The estimate already says the next layer fits: a probe would
		// tell nothing the headroom timer is not about to.
		return d
	}
	c.headroomSince = time.Time{}
	if now.Sub(c.quietSince) >= c.cfg.QuietFor {
		c.probing = true
		c.probeSeen = est.Probe.ID
		c.probeEnd = now.Add(c.cfg.ProbeFor)
		c.probeDeadline = c.probeEnd.Add(c.cfg.ProbeWait)
		d.ProbeRate = int(c.cfg.ProbeMargin * next)
		d.ProbeFor = c.cfg.ProbeFor
	}
	return d
}

// switchTo records a move from cur to t.
func (c *Chooser) switchTo(now time.Time, t, cur int) Decision {
	switch {
	case t > cur:
		c.lastUp = now
	case t < cur && !c.lastUp.IsZero():
		// The last step up did not hold.
		c.fail(now)
	}
	c.reset(now, t)
	return Decision{Target: t}
}

// fail backs off upward moves after a failed probe or an undone step up.
func (c *Chooser) fail(now time.Time) {
	c.holdUntil = now.Add(c.backoff)
	c.backoff = min(2*c.backoff, c.cfg.BackoffMax)
	c.lastUp = time.Time{}
}

// reset starts the per-layer timers afresh on layer t.
func (c *Chooser) reset(now time.Time, t int) {
	c.last = t
	c.congestedSince, c.lowSince, c.headroomSince = time.Time{}, time.Time{}, time.Time{}
	c.quietSince = now
	c.probing = false
}

// fit returns the highest layer whose bitrate is at most limit, at least 0.
func fit(layers []int, limit float64) int {
	t := 0
	for i, b := range layers {
		if float64(b) <= limit {
			t = i
		}
	}
	return t
}
