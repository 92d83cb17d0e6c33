package sfu

import (
	"sync/atomic"
	"time"
)

// mediaClock says which outgoing RTP timestamp is live now: the overlay
// stamps product cards with it. The forwarder feeds it the newest frames and
// the publisher's sender reports; readers (card pushes) read it without locks.
type mediaClock struct {
	ts    atomic.Uint32 // outgoing timestamp of the newest packet
	nanos atomic.Int64  // its arrival
	rate  atomic.Uint32
	step  atomic.Uint32 // the shortest of the recent frame steps
	steps [8]uint32     // recent steps (the writer only)
	idx   int
	// The publisher's last sender report, mapping its wall clock to its RTP
	// timestamps (source timeline), and the source→outgoing offset.
	srNanos    atomic.Int64
	srRTP      atomic.Uint32
	srOffset   atomic.Uint32
	srOffsetOK atomic.Bool
}

// newSource resets what belongs to a source: its rate and sender reports.
func (c *mediaClock) newSource(rate uint32) {
	c.rate.Store(rate)
	c.srNanos.Store(0)
	c.srOffsetOK.Store(false)
}

// spliced records the source→outgoing offset of the current source.
func (c *mediaClock) spliced(offset uint32) {
	c.srOffset.Store(offset)
	c.srOffsetOK.Store(true)
}

// newest records the newest packet sent; step is its timestamp step from the
// previous one (0: unknown).
func (c *mediaClock) newest(ts uint32, arrival time.Time, step uint32) {
	if step > 0 && step < c.rate.Load() {
		c.noteStep(step)
	}
	c.ts.Store(ts)
	c.nanos.Store(arrival.UnixNano())
}

// noteStep records the timestamp step to a new frame. The clock
// extrapolates by the shortest recent step: frames are not evenly spaced,
// and extrapolating by a long one would name a frame not yet captured.
func (c *mediaClock) noteStep(step uint32) {
	c.steps[c.idx] = step
	c.idx = (c.idx + 1) % len(c.steps)
	least := step
	for _, s := range c.steps {
		if s != 0 && s < least {
			least = s
		}
	}
	c.step.Store(least)
}

// senderReport records a publisher's RTCP sender report (source timeline).
func (c *mediaClock) senderReport(wall time.Time, rtpTS uint32) {
	c.srRTP.Store(rtpTS)
	c.srNanos.Store(wall.UnixNano())
}

// lastArrival is when the newest packet arrived (zero time: never).
func (c *mediaClock) lastArrival() time.Time {
	n := c.nanos.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// at is the outgoing RTP timestamp of the frame live at now.
//
// Frames reach the sfu some time after they were captured (encoder, network,
// load). Where the publisher's sender reports map its clock to RTP time and
// agree with ours (same machine or NTP-synced: the implied capture-to-arrival
// delay is between 0 and 1 s), the stamp is the frame being captured now.
// Otherwise it is the newest frame forwarded. Either way it is snapped to
// the frame grid of the newest frame, so it names a frame viewers actually
// receive rather than a point between two, and it never runs more than
// maxExtrapolation past what has arrived.
func (c *mediaClock) at(now time.Time, maxExtrapolation time.Duration) (uint32, bool) {
	nanos := c.nanos.Load()
	if nanos == 0 {
		return 0, false
	}
	ts := c.ts.Load()
	rate := float64(c.rate.Load())
	ahead := now.Sub(time.Unix(0, nanos)) // since the newest packet arrived
	if sr := c.srNanos.Load(); sr != 0 && c.srOffsetOK.Load() && now.Sub(time.Unix(0, sr)) < 30*time.Second {
		capNow := c.srRTP.Load() + uint32(now.Sub(time.Unix(0, sr)).Seconds()*rate) + c.srOffset.Load()
		if d := int32(capNow - ts); d >= 0 && float64(d) <= rate {
			ahead = time.Duration(float64(d) / rate * float64(time.Second))
		}
	}
	if ahead > maxExtrapolation {
		ahead = maxExtrapolation
	}
	if step := c.step.Load(); ahead > 0 && step > 0 {
		// Frames are not exactly one step apart (capture jitter, load), so
		// a point near a frame boundary is given to the earlier frame: a
		// card stamped a frame early is still on the host's frame, one a
		// frame late would name a frame not yet captured at the push.
		if aheadTS := uint32(ahead.Seconds() * rate); aheadTS > step/4 {
			ts += (aheadTS - step/4) / step * step
		}
	}
	return ts, true
}
