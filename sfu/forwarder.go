package sfu

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// forwarder fans one track of a stream (its video or its audio) out to every
// subscriber. It outlives publishers: each new source is spliced into one
// outgoing timeline (sequence numbers and timestamps continue where the last
// source stopped), so viewers keep their sessions across reconnects and
// takeovers, and one RTP timestamp means the same frame for every viewer —
// which is what lets the overlay stamp a product card once for everybody.
//
// The publisher's reader goroutine calls write; it walks a copy-on-write
// slice of subscribers and writes to each synchronously. Writes go to a UDP
// socket and never wait on a peer, and a write that fails sends that viewer
// back to waiting for a keyframe without touching the others.
type forwarder struct {
	video   bool
	kindIdx int
	tun     *Tuning
	m       *metrics
	// keyframeNeeded asks the publisher for a keyframe (throttled by the stream).
	keyframeNeeded func()

	subsMu     sync.Mutex
	subs       atomic.Pointer[[]*downTrack]
	pending    []*downTrack
	hasPending atomic.Bool

	// wmu serialises everything below: the current source's writes, source
	// switches and NACK retransmissions.
	wmu        sync.Mutex
	gen        uint64
	codec      webrtc.RTPCodecCapability
	ckind      codecKind
	synced     bool
	firstInSeq uint16
	spliceTS   uint32
	sinceSync  int
	seqOffset  uint16
	tsOffset   uint32
	haveOut    bool
	lastOutSeq uint16
	lastOutTS  uint32
	lastArr    time.Time
	cache      *packetCache
	gop        *gopCache
	gopBytes   int

	// The media clock, read without locks.
	clockTS    atomic.Uint32
	clockNanos atomic.Int64
	clockRate  atomic.Uint32
	clockStep  atomic.Uint32 // the shortest of the recent frame steps
	steps      [8]uint32     // recent timestamp steps between frames (wmu)
	stepIdx    int
	active     atomic.Bool
	// The publisher's last sender report, mapping its wall clock to its RTP
	// timestamps (source timeline), and the source→outgoing offset.
	srNanos    atomic.Int64
	srRTP      atomic.Uint32
	srOffset   atomic.Uint32
	srOffsetOK atomic.Bool
}

func newForwarder(video bool, tun *Tuning, m *metrics, keyframeNeeded func()) *forwarder {
	f := &forwarder{video: video, tun: tun, m: m, keyframeNeeded: keyframeNeeded}
	if video {
		f.kindIdx = 1
		f.cache = newPacketCache(tun.NACKCacheSize)
		f.gop = newGOPCache(tun.KeyframeCacheBytes)
	} else {
		f.cache = newPacketCache(tun.NACKCacheSize / 4)
	}
	empty := []*downTrack{}
	f.subs.Store(&empty)
	return f
}

// attach makes a new source current and returns its generation; writes from
// older generations are ignored from now on.
func (f *forwarder) attach(codec webrtc.RTPCodecCapability) uint64 {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	f.gen++
	f.codec, f.ckind = codec, kindOfMime(codec.MimeType)
	f.synced = false
	f.clockRate.Store(codec.ClockRate)
	f.srNanos.Store(0)
	f.srOffsetOK.Store(false)
	if f.gop != nil {
		f.dropGOPLocked()
	}
	for _, d := range *f.subs.Load() {
		d.selectCodec(codec)
		d.needKeyframe = f.video
	}
	f.active.Store(true)
	return f.gen
}

// detach ends the source of generation gen, if it is still current.
func (f *forwarder) detach(gen uint64) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if gen != f.gen {
		return
	}
	f.gen++
	f.active.Store(false)
}

// dropGOP drops the GOP cache (and its bytes from the gauge).
func (f *forwarder) dropGOP() {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	f.dropGOPLocked()
}

// dropGOPLocked is dropGOP with f.wmu held.
func (f *forwarder) dropGOPLocked() {
	f.gop.invalidate()
	f.m.gopCacheBytes.Sub(float64(f.gopBytes))
	f.gopBytes = 0
}

// write forwards one packet of source generation gen.
func (f *forwarder) write(gen uint64, pkt *rtp.Packet, arrival time.Time) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if gen != f.gen {
		f.m.dropStale.Inc()
		return
	}
	payload := pkt.Payload
	if len(payload) > maxPacketPayload {
		f.m.dropTooLarge.Inc()
		return
	}
	f.m.packetsIn[f.kindIdx].Inc()
	f.m.bytesIn[f.kindIdx].Add(float64(len(payload)))

	key := f.video && isKeyframeStart(f.ckind, payload)
	if !f.synced {
		if f.video && !key {
			f.m.dropBeforeKeyframe.Inc()
			return
		}
		f.sync(pkt, arrival)
	} else if f.sinceSync < 4096 {
		// Packets from before the splice point belong to no picture the
		// viewers can decode — except late ones of the splice keyframe
		// itself (e.g. its SPS/PPS lost and retransmitted after the IDR),
		// which fit in the sequence numbers sync left free for them.
		f.sinceSync++
		if d := int16(pkt.SequenceNumber - f.firstInSeq); d < 0 && (pkt.Timestamp != f.spliceTS || d < -spliceSlack) {
			f.m.dropStale.Inc()
			return
		}
	}
	outSeq := pkt.SequenceNumber + f.seqOffset
	outTS := pkt.Timestamp + f.tsOffset
	if !f.haveOut || int16(outSeq-f.lastOutSeq) > 0 {
		if step := outTS - f.lastOutTS; f.haveOut && step > 0 && step < f.codec.ClockRate {
			f.noteStep(step)
		}
		f.haveOut, f.lastOutSeq, f.lastOutTS, f.lastArr = true, outSeq, outTS, arrival
		f.clockTS.Store(outTS)
		f.clockNanos.Store(arrival.UnixNano())
	}
	frameStart := key && (!f.gop.valid || outTS != f.gop.keyTS)

	if f.hasPending.Load() {
		f.admitPending(frameStart)
	}
	if f.video {
		if frameStart {
			f.gop.startKeyframe(outTS)
		}
		wasValid := f.gop.valid
		if !f.gop.add(outSeq, outTS, pkt.Marker, payload) && wasValid {
			f.m.gopCacheOverflows.Inc()
		}
		if b := f.gop.bytes(); b != f.gopBytes {
			f.m.gopCacheBytes.Add(float64(b - f.gopBytes))
			f.gopBytes = b
		}
	}
	f.cache.store(outSeq, outTS, pkt.Marker, payload)

	sent := 0
	for _, d := range *f.subs.Load() {
		if d.needKeyframe {
			if !frameStart {
				f.m.dropWaitingKeyframe.Inc()
				continue
			}
			d.needKeyframe = false
		}
		if !d.ptOK {
			f.m.dropNoCodec.Inc()
			continue
		}
		if err := d.write(outSeq, outTS, pkt.Marker, payload); err != nil {
			f.m.dropWriteError.Inc()
			d.needKeyframe = f.video
			continue
		}
		sent++
		f.m.forwardDelay.Observe(time.Since(arrival).Seconds())
	}
	if sent > 0 {
		f.m.packetsOut[f.kindIdx].Add(float64(sent))
		f.m.bytesOut[f.kindIdx].Add(float64(sent * len(payload)))
	}
}

// spliceSlack sequence numbers are left free before a splice point, for
// late packets of the keyframe the new source is spliced in at.
const spliceSlack = 8

// noteStep records the timestamp step to a new frame. The media clock
// extrapolates by the shortest recent step: frames are not evenly spaced,
// and extrapolating by a long one would name a frame not yet captured.
func (f *forwarder) noteStep(step uint32) {
	f.steps[f.stepIdx] = step
	f.stepIdx = (f.stepIdx + 1) % len(f.steps)
	least := step
	for _, s := range f.steps {
		if s != 0 && s < least {
			least = s
		}
	}
	f.clockStep.Store(least)
}

// sync splices a new source into the outgoing timeline at pkt.
func (f *forwarder) sync(pkt *rtp.Packet, arrival time.Time) {
	if f.haveOut {
		step := uint32(arrival.Sub(f.lastArr).Seconds() * float64(f.codec.ClockRate))
		if step == 0 {
			step = 1
		}
		f.tsOffset = f.lastOutTS + step - pkt.Timestamp
		f.seqOffset = f.lastOutSeq + 1 + spliceSlack - pkt.SequenceNumber
	}
	f.spliceTS = pkt.Timestamp
	f.synced = true
	f.srOffset.Store(f.tsOffset)
	f.srOffsetOK.Store(true)
	f.firstInSeq = pkt.SequenceNumber
	f.sinceSync = 0
}

// admitPending moves joiners into the live set. A video joiner gets the
// cached GOP first, so it has a picture at once; if there is no usable cache
// it waits for the next keyframe, which is requested (merged, throttled).
func (f *forwarder) admitPending(frameStart bool) {
	f.subsMu.Lock()
	pend := f.pending
	f.pending = nil
	f.hasPending.Store(false)
	cur := *f.subs.Load()
	next := make([]*downTrack, 0, len(cur)+len(pend))
	next = append(append(next, cur...), pend...)
	f.subs.Store(&next)
	f.subsMu.Unlock()

	needKey := false
	for _, d := range pend {
		d.selectCodec(f.codec)
		d.needKeyframe = false
		if !f.video {
			continue
		}
		switch {
		case frameStart:
			// This very packet opens a keyframe; start from it.
			d.needKeyframe = true
		case f.gop.valid && d.ptOK:
			f.m.cacheReplays.Inc()
			n := 0
			f.gop.each(func(seq uint16, ts uint32, marker bool, p []byte) {
				if d.write(seq, ts, marker, p) == nil {
					n++
				}
			})
			f.m.cacheReplayPackets.Add(float64(n))
		default:
			d.needKeyframe = true
			needKey = true
		}
	}
	if needKey {
		f.keyframeNeeded()
	}
}

// add queues a subscriber's track; it joins at the next packet.
func (f *forwarder) add(d *downTrack) {
	f.subsMu.Lock()
	f.pending = append(f.pending, d)
	f.hasPending.Store(true)
	f.subsMu.Unlock()
}

func (f *forwarder) remove(d *downTrack) {
	f.subsMu.Lock()
	defer f.subsMu.Unlock()
	for i, p := range f.pending {
		if p == d {
			f.pending = append(f.pending[:i:i], f.pending[i+1:]...)
			f.hasPending.Store(len(f.pending) > 0)
			break
		}
	}
	cur := *f.subs.Load()
	next := make([]*downTrack, 0, len(cur))
	for _, p := range cur {
		if p != d {
			next = append(next, p)
		}
	}
	f.subs.Store(&next)
}

// retransmit answers a viewer's NACK from the shared cache.
//
// Packets are copied out under the lock and written after it is released:
// a burst of NACKs from many viewers must never hold up the publisher's
// packets (that makes more gaps, hence more NACKs). Each viewer also has a
// retransmission budget, so a lossy viewer cannot make the sfu resend more
// than RetransmitRate packets a second on its behalf.
func (f *forwarder) retransmit(d *downTrack, seqs []uint16) {
	f.m.nackReceived.Add(float64(len(seqs)))
	allowed := d.rtx.take(len(seqs), f.tun.RetransmitRate, time.Now())
	if allowed < len(seqs) {
		f.m.nackMissed.Add(float64(len(seqs) - allowed))
		seqs = seqs[:allowed]
	}
	if len(seqs) == 0 {
		return
	}
	type held struct {
		seq      uint16
		ts       uint32
		marker   bool
		off, end int
	}
	out := make([]held, 0, len(seqs))
	var buf []byte
	f.wmu.Lock()
	pt, ssrc, usable := d.pt, d.ssrc, d.ptOK && !d.needKeyframe
	if usable {
		for _, seq := range seqs {
			ts, marker, p, ok := f.cache.get(seq)
			if !ok {
				continue
			}
			off := len(buf)
			buf = append(buf, p...)
			out = append(out, held{seq, ts, marker, off, len(buf)})
		}
	}
	f.wmu.Unlock()
	f.m.nackMissed.Add(float64(len(seqs) - len(out)))
	for _, h := range out {
		hdr := rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: h.seq, Timestamp: h.ts, Marker: h.marker, SSRC: ssrc}
		if _, err := d.writer.WriteRTP(&hdr, buf[h.off:h.end]); err == nil {
			f.m.nackRetransmitted.Inc()
		}
	}
}

// rtxBudget is a token bucket of retransmissions for one viewer track. Only
// that viewer's RTCP goroutine touches it.
type rtxBudget struct {
	tokens float64
	last   time.Time
}

// take returns how many of n retransmissions fit the budget (rate per second,
// bursts up to one second's worth).
func (b *rtxBudget) take(n int, rate float64, now time.Time) int {
	if rate <= 0 {
		return n
	}
	if b.last.IsZero() {
		b.tokens = rate
	} else {
		b.tokens += now.Sub(b.last).Seconds() * rate
		if b.tokens > rate {
			b.tokens = rate
		}
	}
	b.last = now
	if float64(n) > b.tokens {
		n = int(b.tokens)
	}
	b.tokens -= float64(n)
	return n
}

// senderReport records a publisher's RTCP sender report.
func (f *forwarder) senderReport(gen uint64, wall time.Time, rtpTS uint32) {
	f.wmu.Lock()
	current := gen == f.gen
	f.wmu.Unlock()
	if current {
		f.srRTP.Store(rtpTS)
		f.srNanos.Store(wall.UnixNano())
	}
}

// mediaTime is the outgoing RTP timestamp of the frame live now.
//
// Frames reach the sfu some time after they were captured (encoder, network,
// load). Where the publisher's sender reports map its clock to RTP time and
// agree with ours (same machine or NTP-synced: the implied capture-to-arrival
// delay is between 0 and 1 s), the stamp is the frame being captured now.
// Otherwise it is the newest frame forwarded. Either way it is snapped to
// the frame grid of the newest frame, so it names a frame viewers actually
// receive rather than a point between two, and it never runs more than
// maxExtrapolation past what has arrived.
func (f *forwarder) mediaTime(now time.Time, maxExtrapolation time.Duration) (uint32, bool) {
	nanos := f.clockNanos.Load()
	if nanos == 0 {
		return 0, false
	}
	ts := f.clockTS.Load()
	rate := float64(f.clockRate.Load())
	ahead := now.Sub(time.Unix(0, nanos)) // since the newest packet arrived
	if sr := f.srNanos.Load(); sr != 0 && f.srOffsetOK.Load() && now.Sub(time.Unix(0, sr)) < 30*time.Second {
		capNow := f.srRTP.Load() + uint32(now.Sub(time.Unix(0, sr)).Seconds()*rate) + f.srOffset.Load()
		if d := int32(capNow - ts); d >= 0 && float64(d) <= rate {
			ahead = time.Duration(float64(d) / rate * float64(time.Second))
		}
	}
	if ahead > maxExtrapolation {
		ahead = maxExtrapolation
	}
	if step := f.clockStep.Load(); ahead > 0 && step > 0 {
		// Frames are not exactly one step apart (capture jitter, load), so
		// a point near a frame boundary is given to the earlier frame: a
		// card stamped a frame early is still on the host's frame, one a
		// frame late would name a frame not yet captured at the push.
		if aheadTS := uint32(ahead.Seconds() * rate); aheadTS > step/4 {
			ts += (aheadTS - step/4) / step * step
		}
	}
	return ts, f.active.Load()
}

func (f *forwarder) count() int {
	f.subsMu.Lock()
	defer f.subsMu.Unlock()
	return len(*f.subs.Load()) + len(f.pending)
}
