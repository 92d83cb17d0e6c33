package bwe

import (
	"math"
	"sync"
	"time"
)

// Config holds the Estimator's tunables. A zero field takes its default
// (field by field), so Config{} is the recommended setting.
type Config struct {
	// InitialBitrate is the estimate before any feedback (default 1 Mbit/s).
	InitialBitrate int
	// MinBitrate and MaxBitrate bound the estimate (defaults 100 kbit/s and
	// 50 Mbit/s).
	MinBitrate int
	MaxBitrate int
	// History is how many sent packets are remembered; rounded up to a power
	// of two (default 4096: ~2.5 s at 2.5 Mbit/s of 1200-byte packets, far
	// more than a feedback interval).
	History int
	// Window is how much feedback Delivered and Loss are measured over
	// (default 1 s).
	Window time.Duration
	// BaselineWindow is how long the minimum one-way delay is remembered
	// (default 10 s).
	BaselineWindow time.Duration
	// DelayThreshold is the queue delay above which a non-draining queue
	// counts as congestion (default 70 ms).
	DelayThreshold time.Duration
	// DelayTrend is how long the queue delay must stay above DelayThreshold
	// without draining (default 200 ms).
	DelayTrend time.Duration
	// LossThreshold is the loss fraction over Window that counts as
	// congestion (default 0.10).
	LossThreshold float64
	// DecreaseFactor times Delivered is the estimate on congestion (default
	// 0.85).
	DecreaseFactor float64
	// DecreaseInterval is the least time between two decreases (default
	// 200 ms, about one RTT).
	DecreaseInterval time.Duration
	// IncreasePerSecond is the relative growth per second without
	// congestion (default 0.06).
	IncreasePerSecond float64
	// AppLimitedCap times Delivered is as far as growth goes (default 1.5).
	AppLimitedCap float64
	// ProbeMinRatio is the delivered/sent ratio a probe must reach (default
	// 0.9).
	ProbeMinRatio float64
	// ProbeMaxLoss is the loss a probe may show (default 0.05).
	ProbeMaxLoss float64
	// ProbeTimeout is how long after a probe's end its feedback may take
	// before it counts as failed (default 2 s).
	ProbeTimeout time.Duration
}

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	orDefault(&c.InitialBitrate, 1_000_000)
	orDefault(&c.MinBitrate, 100_000)
	orDefault(&c.MaxBitrate, 50_000_000)
	orDefault(&c.History, 4096)
	orDefault(&c.Window, time.Second)
	orDefault(&c.BaselineWindow, 10*time.Second)
	orDefault(&c.DelayThreshold, 70*time.Millisecond)
	orDefault(&c.DelayTrend, 200*time.Millisecond)
	orDefault(&c.LossThreshold, 0.10)
	orDefault(&c.DecreaseFactor, 0.85)
	orDefault(&c.DecreaseInterval, 200*time.Millisecond)
	orDefault(&c.IncreasePerSecond, 0.06)
	orDefault(&c.AppLimitedCap, 1.5)
	orDefault(&c.ProbeMinRatio, 0.9)
	orDefault(&c.ProbeMaxLoss, 0.05)
	orDefault(&c.ProbeTimeout, 2*time.Second)
	// A power of two lets Sent index the ring with a mask.
	n := 1
	for n < c.History {
		n <<= 1
	}
	c.History = n
	return c
}

// orDefault sets a zero (or negative, meaningless for every tunable) field
// to its default.
func orDefault[T int | float64 | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// Estimate is the Estimator's current view of the link.
type Estimate struct {
	// Ready is false until feedback has measured a delivered rate; until
	// then Bitrate is Config.InitialBitrate and the rest is zero.
	Ready bool
	// At is when the feedback behind this estimate arrived.
	At time.Time
	// Bitrate is the estimated available bits/s.
	Bitrate int
	// Delivered is the bits/s the receiver got over the last Config.Window.
	Delivered int
	// Loss is the fraction of packets lost over that window.
	Loss float64
	// QueueDelay is the one-way queuing delay above the baseline delay.
	QueueDelay time.Duration
	// Congested says the link is overloaded now (loss or a growing queue).
	Congested bool
	// Probe is the state of the latest probe.
	Probe ProbeResult
}

// ProbeResult is the outcome of the latest StartProbe.
type ProbeResult struct {
	// ID counts StartProbe calls; 0 means no probe was ever started.
	ID uint64
	// Done is true once the probe was judged (or timed out).
	Done bool
	// OK says the link carried the probe (only meaningful when Done).
	OK bool
	// Rate is the rate StartProbe asked for, bits/s.
	Rate int
	// Sent and Delivered are the bits/s sent and received during the probe.
	Sent      int
	Delivered int
}

// Totals counts feedback outcomes since New, for metrics and tests.
type Totals struct {
	Acked   uint64 // packets reported received
	Lost    uint64 // packets reported lost (and not received later)
	Unknown uint64 // reported packets no longer (or never) in the history
}

// noSeq marks an empty ring slot.
const noSeq = math.MinInt64

// Packet states in the history ring.
const (
	stateSent uint8 = iota
	stateLost
	stateAcked
)

// sentPacket is one ring entry. seq is unwrapped (64-bit) so a stale entry
// left from an earlier lap is never mistaken for the packet being reported.
type sentPacket struct {
	seq    int64
	sendNs int64 // since the Estimator's epoch
	size   int32
	state  uint8
	probe  uint64 // probe ID the packet belongs to; 0 for none
}

// Estimator is a send-side bandwidth estimator for one viewer. Sent, Feedback,
// StartProbe and the getters are safe for concurrent use.
type Estimator struct {
	cfg Config

	mu      sync.Mutex
	started bool
	epoch   time.Time // time origin: the first call that passed a time
	ring    []sentPacket
	mask    int64
	haveSeq bool
	highest int64 // highest unwrapped seq sent; meaningful once haveSeq

	remote   remoteClock
	window   window
	baseline baseline
	probe    probe

	est          Estimate
	bitrate      float64
	lastUpdateNs int64
	lastDecrease int64
	decreased    bool
	totals       Totals
}

// New returns an Estimator with cfg's zero fields defaulted.
func New(cfg Config) *Estimator {
	cfg = cfg.withDefaults()
	e := &Estimator{
		cfg:     cfg,
		ring:    make([]sentPacket, cfg.History),
		mask:    int64(cfg.History - 1),
		bitrate: float64(cfg.InitialBitrate),
	}
	// Mark every slot as holding no packet. Unwrapped numbers may go
	// negative (a reordered packet from before the first one), never this low.
	for i := range e.ring {
		e.ring[i].seq = noSeq
	}
	e.est.Bitrate = cfg.InitialBitrate
	return e
}

// sinceEpoch converts now to nanoseconds since the epoch, setting the epoch
// on first use. Holding mu.
func (e *Estimator) sinceEpoch(now time.Time) int64 {
	if !e.started {
		e.started = true
		e.epoch = now
		return 0
	}
	// A caller's clock read can predate the epoch by a hair (goroutines
	// race to Sent); clamping keeps all times non-negative.
	return max(int64(now.Sub(e.epoch)), 0)
}

// unwrap extends a 16-bit sequence number to 64 bits relative to the highest
// sent, which works for numbers within ±32768 of it: feedback and
// slightly-out-of-order Sent calls are far closer than that. Holding mu.
func (e *Estimator) unwrap(seq uint16) int64 {
	return e.highest + int64(int16(seq-uint16(e.highest)))
}

// Sent records a packet (transport-wide sequence number, size in bytes with
// headers) sent at now. It allocates nothing and only takes a mutex, so the
// fan-out path may call it for every packet; callers may share one clock
// read across viewers.
func (e *Estimator) Sent(seq uint16, size int, now time.Time) {
	e.mu.Lock()
	u := int64(seq)
	if e.haveSeq {
		u = e.unwrap(seq)
	}
	if !e.haveSeq || u > e.highest {
		e.haveSeq = true
		e.highest = u
	}
	ns := e.sinceEpoch(now)
	p := &e.ring[u&e.mask]
	p.seq = u
	p.sendNs = ns
	p.size = int32(min(size, math.MaxInt32))
	p.state = stateSent
	p.probe = e.probe.onSent(size, ns)
	e.mu.Unlock()
}

// Estimate returns the current estimate.
func (e *Estimator) Estimate() Estimate {
	e.mu.Lock()
	defer e.mu.Unlock()
	est := e.est
	est.Probe = e.probe.result
	return est
}

// Totals returns the feedback counters.
func (e *Estimator) Totals() Totals {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.totals
}

// update recomputes the estimate after a feedback packet at nowNs. Holding mu.
func (e *Estimator) update(nowNs int64) {
	cfg := &e.cfg
	w := e.window.stats(nowNs, int64(cfg.Window), int64(cfg.DelayTrend))
	switch {
	case w.rateValid:
	case !e.est.Ready:
		// Nothing measured yet: keep the initial estimate.
		return
	case w.received == 0:
		// Everything in the window was lost: a blackout delivers nothing.
		w.delivered = 0
	default:
		// Too few arrivals to measure (a pause): keep the last rate.
		w.delivered = float64(e.est.Delivered)
	}
	e.est.Ready = true
	e.est.At = e.epoch.Add(time.Duration(nowNs))
	e.est.Delivered = int(w.delivered)
	e.est.Loss = w.loss
	e.est.QueueDelay = time.Duration(max(w.lastQD, 0))

	lossCongested := w.lossValid && w.loss > cfg.LossThreshold
	thr := int64(cfg.DelayThreshold)
	delayCongested := w.trendSamples >= 2 && w.minQD > thr &&
		w.lastQD >= w.firstQD-int64(delayTolerance)
	e.est.Congested = lossCongested || delayCongested

	dt := float64(min(nowNs-e.lastUpdateNs, int64(time.Second))) / float64(time.Second)
	e.lastUpdateNs = nowNs
	if e.est.Congested {
		if !e.decreased || nowNs-e.lastDecrease >= int64(cfg.DecreaseInterval) {
			e.bitrate = min(e.bitrate, cfg.DecreaseFactor*w.delivered)
			e.lastDecrease = nowNs
			e.decreased = true
		}
	} else {
		limit := cfg.AppLimitedCap * w.delivered
		if grown := e.bitrate * (1 + cfg.IncreasePerSecond*dt); e.bitrate < limit {
			e.bitrate = min(grown, limit)
		}
		e.bitrate = max(e.bitrate, w.delivered)
	}
	e.setBitrate(e.bitrate)
}

// setBitrate clamps and publishes b. Holding mu.
func (e *Estimator) setBitrate(b float64) {
	b = min(max(b, float64(e.cfg.MinBitrate)), float64(e.cfg.MaxBitrate))
	e.bitrate = b
	e.est.Bitrate = int(b)
}

// delayTolerance is how far the queue delay may fall across DelayTrend and
// still count as "not draining": jitter of a packet or two, not a real drain.
const delayTolerance = 5 * time.Millisecond

// remoteClock unwraps TWCC reference times (24 bits of 64 ms, wrapping
// every ~12 days) into nanoseconds on the receiver's clock.
type remoteClock struct {
	have bool
	last int64 // unwrapped reference time, 64 ms units
}

const refTimeUnit = 64 * time.Millisecond

// ns returns the receiver-clock nanoseconds of a reference time.
func (r *remoteClock) ns(ref uint32) int64 {
	u := int64(ref & 0xFFFFFF)
	if r.have {
		// Signed 24-bit distance from the latest: reordered feedback steps
		// back a little, wrap-around steps forward.
		d := (u - r.last) & 0xFFFFFF
		if d >= 1<<23 {
			d -= 1 << 24
		}
		u = r.last + d
	}
	if !r.have || u > r.last {
		r.have = true
		r.last = u
	}
	return u * int64(refTimeUnit)
}
