package rtctest

import (
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
)

// frameAssembler is what a receiver does between the network and its H.264
// decoder: a jitter buffer that waits a while for a missing packet (its
// NACKed retransmission) before giving up on it, puts frames together
// from in-order packets (a frame ends at its marker bit), and passes on a
// frame only when a decoder could show it: complete, and every frame
// since the last keyframe complete too (the reference chain of a clip of
// IDR and P frames).
type frameAssembler struct {
	wait    time.Duration
	show    func(au []byte) // an Annex-B access unit the decoder shows
	pending map[int64]*rtp.Packet
	started bool
	next    int64     // extended sequence number of the next packet to pass on
	highest int64     // highest extended sequence number seen
	missing time.Time // since when next has been missing (zero: not missing)

	frame   []*rtp.Packet // the frame being put together
	whole   bool          // it started right after a marker and has no hole
	needKey bool          // a frame was lost since the last keyframe

	lost    int // packets given up on
	dropped int // frames not shown (incomplete, or their chain broken)
}

func newFrameAssembler(wait time.Duration, show func(au []byte)) *frameAssembler {
	return &frameAssembler{wait: wait, show: show, pending: map[int64]*rtp.Packet{}, needKey: true}
}

// push takes a received packet (duplicates and packets already given up
// on are dropped) and passes on what it completes.
func (a *frameAssembler) push(p *rtp.Packet, now time.Time) {
	if !a.started {
		a.started, a.next, a.highest = true, int64(p.SequenceNumber), int64(p.SequenceNumber)
		a.whole = startsFrame(p.Payload)
	}
	ext := a.highest + int64(int16(p.SequenceNumber-uint16(a.highest)))
	a.highest = max(a.highest, ext)
	if ext < a.next {
		return
	}
	a.pending[ext] = p
	a.flush(now)
}

// flush passes on the packets that are next in order, skipping a missing
// one that has been waited for long enough.
func (a *frameAssembler) flush(now time.Time) {
	for len(a.pending) > 0 {
		p, ok := a.pending[a.next]
		if !ok {
			if a.missing.IsZero() {
				a.missing = now
			}
			if now.Sub(a.missing) < a.wait {
				return
			}
			lowest := a.highest
			for n := range a.pending {
				lowest = min(lowest, n)
			}
			a.lost += int(lowest - a.next)
			a.next, a.whole, a.missing = lowest, false, time.Time{}
			continue
		}
		delete(a.pending, a.next)
		a.next++
		a.missing = time.Time{}
		if len(a.frame) > 0 && p.Timestamp != a.frame[0].Timestamp {
			a.finish() // its marker was lost: incomplete
			a.whole = false
		}
		a.frame = append(a.frame, p)
		if p.Marker {
			a.finish()
		}
	}
	a.missing = time.Time{}
}

// finish ends the frame being put together: shown, or dropped.
func (a *frameAssembler) finish() {
	whole := a.whole
	frame := a.frame
	a.frame, a.whole = nil, true
	if len(frame) == 0 {
		return
	}
	var au []byte
	if whole {
		var dep codecs.H264Packet
		for _, p := range frame {
			b, err := dep.Unmarshal(p.Payload)
			if err != nil {
				whole = false
				break
			}
			au = append(au, b...)
		}
	}
	switch {
	case !whole:
		a.dropped++
		a.needKey = true
	case a.needKey && !IsIDR(au):
		a.dropped++
	default:
		a.needKey = false
		a.show(au)
	}
}

// startsFrame guesses whether the first packet a viewer gets starts a
// frame (the server starts viewers on a keyframe): a whole NAL unit, an
// aggregate (SPS and PPS) or the first fragment of one.
func startsFrame(payload []byte) bool {
	if len(payload) < 2 {
		return false
	}
	switch t := payload[0] & 0x1f; {
	case t >= 1 && t <= 24:
		return true
	case t == 28:
		return payload[1]&0x80 != 0
	}
	return false
}
