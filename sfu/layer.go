package sfu

import (
	"sort"
	"time"

	"github.com/pion/webrtc/v4"
)

// A simulcast publisher (a=simulcast: OBS's WHIP simulcast, a browser with
// sendEncodings) sends one picture in up to maxLayers sizes, each its own RTP
// stream. The video forwarder keeps one layerIn per stream it receives (a
// plain publisher is layer slot 0 alone) and gives every viewer the layer
// its quality asks for — pinned (low, medium, high) or automatic, from the
// viewer's bandwidth estimate — switching it only at a keyframe of the
// target layer.
//
// One outgoing timeline per stream across layers: each layer's timestamps
// are moved onto the timeline of the reference layer (the one with the most
// bytes: the largest the publisher's uplink holds), from the layers' sender
// reports where they have them and their arrival times otherwise, and then
// snapped to the reference's frames (refine), since all layers are encodings
// of the same captured frames. So one RTP timestamp names one frame on every
// layer, and a product card stamped with it lands on that frame whichever
// layer a viewer gets. Sequence numbers are per viewer (downTrack.seqOff):
// a switch continues the viewer's numbering.
const maxLayers = 3

// layerWindow is how often layer bitrates are measured, the layers ranked
// and the reference re-chosen; refHysteresis is how many times the current
// reference's bytes another layer needs to take over (keyframe bursts must
// not make it flap).
const (
	layerWindow   = 1500 * time.Millisecond
	refHysteresis = 1.25
	// firstWindow: the first ranking comes sooner, so viewers pinned to a
	// layer get it within a fraction of a second of the publisher starting.
	firstWindow = 300 * time.Millisecond
	// refineFor: after a layer is spliced in, its offset is snapped to the
	// reference's frames during this long.
	refineFor = 3 * time.Second
)

// layerIn is one incoming layer of a forwarder. Guarded by the forwarder's
// write lock.
type layerIn struct {
	slot     int
	gen      uint64
	active   bool
	codec    webrtc.RTPCodecCapability
	ckind    codecKind
	tl       timeline
	cache    *packetCache
	gop      *gopCache
	gopBytes int

	// Recent frames' outgoing timestamps (alignment snaps to them).
	frames  [16]uint32
	nFrames int
	lastArr time.Time
	// refineUntil: until then, frames are matched against the reference's.
	refineUntil time.Time

	winBytes int
	bps      int // bitrate over the last window
	pixels   int // picture size from its newest keyframe (0: unknown)

	srWall time.Time // the layer's last sender report
	srRTP  uint32
}

func newLayerIn(slot int, video bool, tun *Tuning) *layerIn {
	l := &layerIn{slot: slot}
	if video {
		l.cache = newPacketCache(tun.NACKCacheSize)
		l.gop = newGOPCache(tun.KeyframeCacheBytes)
	} else {
		l.cache = newPacketCache(tun.NACKCacheSize / 4)
	}
	return l
}

// noteFrame records a new frame's outgoing timestamp.
func (l *layerIn) noteFrame(ts uint32) {
	if l.nFrames > 0 && l.frames[(l.nFrames-1)%len(l.frames)] == ts {
		return
	}
	l.frames[l.nFrames%len(l.frames)] = ts
	l.nFrames++
}

// frameStep is the shortest step between the layer's recent frames (0: unknown).
func (l *layerIn) frameStep() uint32 {
	n := min(l.nFrames, len(l.frames))
	var least uint32
	for i := 1; i < n; i++ {
		a := l.frames[(l.nFrames-i)%len(l.frames)]
		b := l.frames[(l.nFrames-i-1)%len(l.frames)]
		if d := a - b; int32(d) > 0 && (least == 0 || d < least) {
			least = d
		}
	}
	return least
}

// nearestFrame is the recent frame timestamp nearest ts and the distance
// (signed: frame − ts).
func (l *layerIn) nearestFrame(ts uint32) (uint32, int32, bool) {
	n := min(l.nFrames, len(l.frames))
	best, bestD, ok := uint32(0), int32(0), false
	for i := range n {
		d := int32(l.frames[i] - ts)
		if !ok || abs32(d) < abs32(bestD) {
			best, bestD, ok = l.frames[i], d, true
		}
	}
	return best, bestD, ok
}

func abs32(v int32) int32 {
	if v < 0 {
		return -v
	}
	return v
}

// live reports whether the layer is attached, spliced in and sending.
func (l *layerIn) live(now time.Time) bool {
	return l != nil && l.active && l.tl.synced && now.Sub(l.lastArr) < time.Second
}

// layerSnap is what readers outside the write lock see of the layers: the
// live slots ranked by bitrate, lowest first.
type layerSnap struct {
	slots []int
	bps   []int
	names []string // rankName of each, made once per window, not per reader
}

// alignTS is the outgoing timestamp for pkt, the keyframe that splices
// layer l in: aligned to another live layer if there is one, else
// continuing the stream's timeline by the wall time since its last packet.
func (f *forwarder) alignTS(l *layerIn, pktTS uint32, arrival time.Time) uint32 {
	rate := float64(l.codec.ClockRate)
	if r := f.alignTo(l, arrival); r != nil {
		out := r.tl.lastOutTS + uint32(int64(arrival.Sub(r.lastArr).Seconds()*rate))
		if !l.srWall.IsZero() && !r.srWall.IsZero() &&
			arrival.Sub(l.srWall) < 30*time.Second && arrival.Sub(r.srWall) < 30*time.Second {
			capWall := l.srWall.Add(time.Duration(float64(int32(pktTS-l.srRTP)) / rate * float64(time.Second)))
			rIn := r.srRTP + uint32(int64(capWall.Sub(r.srWall).Seconds()*rate))
			out = rIn + r.tl.offset()
		}
		snapped := int32(0)
		if step := r.frameStep(); step > 0 {
			if ts, d, ok := r.nearestFrame(out); ok && abs32(d) < int32(step/2) {
				out, snapped = ts, d
			}
		}
		l.refineUntil = arrival.Add(refineFor)
		f.log.Debug("layer spliced in", "slot", l.slot, "aligned_to", r.slot, "sender_reports", !l.srWall.IsZero() && !r.srWall.IsZero(), "snapped", snapped)
		return out
	}
	if f.haveTS {
		step := uint32(int64(arrival.Sub(f.lastArr).Seconds() * rate))
		if step == 0 {
			step = 1
		}
		return f.lastTS + step
	}
	return pktTS
}

// alignTo is the layer l's timestamps are aligned to: the reference if it
// is live, else any other live layer.
func (f *forwarder) alignTo(l *layerIn, now time.Time) *layerIn {
	if f.ref >= 0 && f.ref != l.slot && f.layers[f.ref].live(now) {
		return f.layers[f.ref]
	}
	for _, o := range f.layers {
		if o != nil && o != l && o.live(now) {
			return o
		}
	}
	return nil
}

// refine snaps a recently spliced layer's offset onto the reference's
// frames: alignment from arrival times (or sender reports rounded) can be
// a few ms off, and the same frame must carry the same timestamp on every
// layer. It moves the layer's timestamps by at most a third of a frame,
// once it finds a match.
func (f *forwarder) refine(l *layerIn, now time.Time) {
	if f.ref < 0 || l.slot == f.ref || now.After(l.refineUntil) || l.nFrames == 0 {
		return
	}
	r := f.layers[f.ref]
	step := r.frameStep()
	if step == 0 {
		return
	}
	// Any of the layer's recent frames may be the one matched: a small
	// layer's frame often arrives before the reference's same frame.
	for i := range min(l.nFrames, len(l.frames)) {
		if _, d, ok := r.nearestFrame(l.frames[i]); ok && abs32(d) < int32(step/2) {
			f.log.Debug("layer refined", "slot", l.slot, "ref", r.slot, "moved", d)
			if d != 0 {
				l.tl.tsOffset += uint32(d)
				for j := range l.frames {
					l.frames[j] += uint32(d)
				}
			}
			l.refineUntil = time.Time{}
			return
		}
	}
}

// checkAlignment re-aligns layers whose timestamps disagree with the
// reference's by more than refine can snap, once both have sender reports.
// A layer spliced in before any report was aligned by arrival time, which
// is wrong by however long its first packets were held up (e.g. while the
// publisher's peer connection was still working out which rid a new SSRC
// is): frames off by a few steps would carry another frame's timestamp.
func (f *forwarder) checkAlignment(now time.Time) {
	if f.ref < 0 {
		return
	}
	r := f.layers[f.ref]
	if r.srWall.IsZero() || now.Sub(r.srWall) > 30*time.Second || !r.tl.synced {
		return
	}
	step := r.frameStep()
	if step == 0 {
		return
	}
	for _, l := range f.layers {
		if l == nil || l == r || !l.tl.synced || l.srWall.IsZero() || now.Sub(l.srWall) > 30*time.Second {
			continue
		}
		rate := float64(r.codec.ClockRate)
		rIn := r.srRTP + uint32(int64(l.srWall.Sub(r.srWall).Seconds()*rate))
		off := rIn + r.tl.offset() - l.srRTP
		d := int32(off - l.tl.offset())
		f.log.Debug("layer alignment by sender reports", "slot", l.slot, "ref", r.slot, "off_by", d)
		if abs32(d) >= int32(step/3) {
			l.tl.tsOffset = off
			for j := range l.frames {
				l.frames[j] += uint32(d)
			}
			l.refineUntil = now.Add(refineFor)
			f.m.layerRealigns.Inc()
		}
	}
}

// endWindow measures the layers' bitrates over the window that ended at
// now, ranks the live ones and re-chooses the reference.
func (f *forwarder) endWindow(now time.Time) {
	secs := now.Sub(f.winStart).Seconds()
	f.winStart = now
	var slots []int
	for _, l := range f.layers {
		if l == nil {
			continue
		}
		l.bps = int(float64(l.winBytes*8) / secs)
		l.winBytes = 0
		if l.live(now) && l.bps > 0 {
			slots = append(slots, l.slot)
		}
	}
	// By picture size where every live layer has told it, else by bitrate.
	bySize := true
	for _, sl := range slots {
		bySize = bySize && f.layers[sl].pixels > 0
	}
	sort.SliceStable(slots, func(i, j int) bool {
		a, b := f.layers[slots[i]], f.layers[slots[j]]
		if bySize && a.pixels != b.pixels {
			return a.pixels < b.pixels
		}
		return a.bps < b.bps
	})
	snap := &layerSnap{slots: slots, bps: make([]int, len(slots)), names: make([]string, len(slots))}
	for i, s := range slots {
		snap.bps[i] = f.layers[s].bps
		snap.names[i] = rankName(i, len(slots))
	}
	if old := f.snap.Load(); old == nil || len(old.slots) != len(slots) {
		f.log.Debug("layers live", "slots", slots)
	}
	f.snap.Store(snap)
	if f.stamp != nil {
		f.stamp.Store(len(slots) > 1)
	}
	if len(slots) > 0 {
		best := slots[len(slots)-1]
		if f.ref < 0 || !f.layers[f.ref].live(now) ||
			(best != f.ref && float64(f.layers[best].bps) > refHysteresis*float64(f.layers[f.ref].bps)) {
			f.setRef(best)
		}
	}
	f.retargetAll()
}

// setRef makes slot the reference layer: the media clock follows it.
func (f *forwarder) setRef(slot int) {
	if f.ref == slot {
		return
	}
	f.log.Debug("reference layer", "slot", slot, "was", f.ref)
	f.ref = slot
	l := f.layers[slot]
	f.clock.newSource(l.codec.ClockRate)
	if l.tl.synced {
		f.clock.spliced(l.tl.offset())
	}
	if !l.srWall.IsZero() {
		f.clock.senderReport(l.srWall, l.srRTP)
	}
}

// Wanted layers: a rank (0 lowest) pinned by the viewer, or one of these.
const (
	wantAuto   int32 = -1 // the viewer's bandwidth chooser decides (autoRank)
	wantFollow int32 = -2 // the reference layer (sinks, taps)
)

// targetFor is the slot d should receive.
func (f *forwarder) targetFor(d *downTrack) int {
	snap := f.snap.Load()
	if snap == nil || len(snap.slots) == 0 {
		return max(f.ref, 0)
	}
	rank := d.want.Load()
	if rank == wantAuto {
		rank = d.autoRank.Load()
	}
	if rank < 0 {
		return max(f.ref, 0)
	}
	return snap.slots[min(int(rank), len(snap.slots)-1)]
}

// retargetAll re-chooses every live subscriber's target layer and asks for
// a keyframe of each layer someone now waits for.
func (f *forwarder) retargetAll() {
	if !f.video {
		return
	}
	var need [maxLayers]bool
	for _, d := range f.subs.list() {
		t := f.targetFor(d)
		if t != d.target {
			f.log.Debug("viewer target", "slot", t, "was", d.target, "on", d.layer)
			d.target = t
		}
		if d.layer != d.target || d.needKeyframe {
			need[d.target] = true
		}
	}
	for slot, n := range need {
		if n {
			f.keyframeNeeded(slot)
		}
	}
}

// rankOf is the rank of slot among the live layers (-1: not live).
func (s *layerSnap) rankOf(slot int32) int {
	for i, x := range s.slots {
		if int32(x) == slot {
			return i
		}
	}
	return -1
}
