package sfu

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// forwarder fans one track of a stream (its video or its audio) out to every
// subscriber. It outlives publishers: each new source is spliced into one
// outgoing timeline (timeline), so viewers keep their sessions across
// reconnects and takeovers, and one RTP timestamp means the same frame for
// every viewer — which is what lets the overlay stamp a product card once
// for everybody (clock).
//
// The publisher's reader goroutine calls write; it walks the subscriber set
// (subs) and writes to each, in parallel above a few dozen subscribers
// (fanout). Writes go to a UDP socket and never wait on a peer, and a write
// that fails sends that viewer back to waiting for a keyframe without
// touching the others.
type forwarder struct {
	video   bool
	kindIdx int
	tun     *Tuning
	m       *metrics
	fan     *fanout
	// keyframeNeeded asks the publisher for a keyframe of a layer
	// (throttled by the stream).
	keyframeNeeded func(slot int)

	subs  *subscriberSet
	clock mediaClock
	sr    srClock      // for viewers' sender reports
	log   *slog.Logger // layer events, at debug level
	// snap is the live layers ranked by bitrate (read without the lock).
	snap atomic.Pointer[layerSnap]
	// retarget is set when a viewer's wanted layer changed.
	retarget atomic.Bool
	// stamp says whether packets carry the transport-wide CC extension
	// for viewers' bandwidth estimates: while the stream's video has more
	// than one layer (shared by its audio and video forwarders).
	stamp *atomic.Bool

	// wmu serialises everything below: the sources' writes, source
	// switches and NACK retransmissions.
	wmu      sync.Mutex
	gen      uint64
	layers   [maxLayers]*layerIn
	ref      int         // the reference layer (-1: none yet)
	active   atomic.Bool // a source is attached (read by the clock without the lock)
	winStart time.Time
	// The stream's newest outgoing timestamp and its arrival, whatever the
	// layer: a source spliced in with no other layer live continues from it.
	haveTS   bool
	lastTS   uint32
	lastArr  time.Time
	pass     pass // reused by every write: the hot path allocates nothing
	nPackets uint32
	// A video frame's packets are written in one batch (held from its first
	// packet to its marker), so the batcher can send each viewer's share
	// of the frame as one segmentation-offload train.
	holding bool
	holdTS  uint32
}

func newForwarder(video bool, tun *Tuning, m *metrics, fan *fanout, keyframeNeeded func(slot int)) *forwarder {
	f := &forwarder{video: video, tun: tun, m: m, fan: fan, keyframeNeeded: keyframeNeeded, subs: newSubscriberSet(), ref: -1, log: slog.New(slog.DiscardHandler)}
	f.pass.f = f
	f.sr.epoch = time.Now()
	if video {
		f.kindIdx = 1
	}
	return f
}

// attach makes a new source current on layer slot 0 (a plain publisher)
// and returns its generation.
func (f *forwarder) attach(codec webrtc.RTPCodecCapability) uint64 {
	return f.attachLayer(0, codec)
}

// attachLayer makes a new source current on a layer slot and returns its
// generation; writes from older generations are ignored from now on.
func (f *forwarder) attachLayer(slot int, codec webrtc.RTPCodecCapability) uint64 {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	l := f.layers[slot]
	if l == nil {
		l = newLayerIn(slot, f.video, f.tun)
		f.layers[slot] = l
	}
	f.gen++
	l.gen, l.active = f.gen, true
	l.codec, l.ckind = codec, kindOfMime(codec.MimeType)
	l.tl.newSource()
	l.srWall = time.Time{}
	if f.ref == slot {
		f.clock.newSource(codec.ClockRate)
	}
	if l.gop != nil {
		f.dropGOPLocked(l)
	}
	for _, d := range f.subs.list() {
		d.selectCodec(slot, codec)
		if d.layer == slot {
			d.useSlot(slot)
			d.needKeyframe = f.video
		}
	}
	if f.winStart.IsZero() {
		f.winStart = time.Now()
	}
	f.active.Store(true)
	return f.gen
}

// detach ends the source of generation gen, if it is still current.
func (f *forwarder) detach(slot int, gen uint64) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	l := f.layers[slot]
	if l == nil || gen != l.gen {
		return
	}
	f.gen++
	l.gen, l.active = f.gen, false
	any := false
	for _, o := range f.layers {
		any = any || (o != nil && o.active)
	}
	f.active.Store(any)
	f.endHold()
}

// endHold ends the frame batch, if one is open.
func (f *forwarder) endHold() {
	if f.holding {
		f.holding = false
		f.fan.end()
	}
}

// current reports the codec of the current source (the reference layer's), if any.
func (f *forwarder) current() (webrtc.RTPCodecCapability, bool) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if f.ref >= 0 && f.layers[f.ref].active {
		return f.layers[f.ref].codec, true
	}
	for _, l := range f.layers {
		if l != nil && l.active {
			return l.codec, true
		}
	}
	return webrtc.RTPCodecCapability{}, false
}

// dropGOP drops the GOP caches (and their bytes from the gauge).
func (f *forwarder) dropGOP() {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	for _, l := range f.layers {
		if l != nil && l.gop != nil {
			f.dropGOPLocked(l)
		}
	}
}

// dropGOPLocked is dropGOP for one layer with f.wmu held.
func (f *forwarder) dropGOPLocked(l *layerIn) {
	l.gop.invalidate()
	f.m.gopCacheBytes.Sub(float64(l.gopBytes))
	l.gopBytes = 0
}

// write forwards one packet of source generation gen on layer 0.
func (f *forwarder) write(gen uint64, pkt *rtp.Packet, arrival time.Time) {
	f.writeLayer(0, gen, pkt, arrival)
}

// writeLayer forwards one packet of source generation gen on a layer slot.
func (f *forwarder) writeLayer(slot int, gen uint64, pkt *rtp.Packet, arrival time.Time) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	l := f.layers[slot]
	if l == nil || gen != l.gen {
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

	key := f.video && isKeyframeStart(l.ckind, payload)
	if key {
		if px := pictureSize(l.ckind, payload); px > 0 {
			l.pixels = px
		}
	}
	if !l.tl.synced {
		if f.video && !key {
			f.m.dropBeforeKeyframe.Inc()
			return
		}
		l.tl.spliceAt(pkt, f.alignTS(l, pkt.Timestamp, arrival))
		if f.ref < 0 {
			f.setRef(slot)
		} else if f.ref == slot {
			f.clock.spliced(l.tl.offset())
		}
	} else if l.tl.stale(pkt) {
		f.m.dropStale.Inc()
		return
	}
	outSeq, outTS, newest, step := l.tl.rewrite(pkt, arrival)
	l.winBytes += len(payload)
	if newest {
		l.lastArr = arrival
		l.noteFrame(outTS)
		if !f.haveTS || int32(outTS-f.lastTS) > 0 {
			f.haveTS, f.lastTS, f.lastArr = true, outTS, arrival
		}
		if slot == f.ref {
			f.clock.newest(outTS, arrival, step)
		} else {
			f.refine(l, arrival)
			outTS = pkt.Timestamp + l.tl.offset()
		}
		f.sr.note(outTS, arrival, l.codec.ClockRate)
	}
	if el := arrival.Sub(f.winStart); el >= layerWindow || (el >= firstWindow && f.snap.Load() == nil) {
		f.endWindow(arrival)
	} else if f.retarget.Load() && f.retarget.CompareAndSwap(true, false) {
		f.retargetAll()
	}
	frameStart := key && (!l.gop.valid || outTS != l.gop.keyTS)

	if joiners := f.subs.admit(); joiners != nil {
		f.startJoiners(joiners, l, frameStart)
	}
	if f.video {
		f.cacheGOP(l, frameStart, outSeq, outTS, pkt.Marker, payload)
	}
	l.cache.store(outSeq, outTS, pkt.Marker, payload)

	subs := f.subs.list()
	if f.video && (!f.holding || f.holdTS != outTS) {
		f.endHold()
		// Only for a crowd: holding delays every other write on the
		// socket too (RTCP and feedback to the publisher), which is worth
		// it only when the frame goes to many viewers.
		if len(subs) > f.tun.BatchAbove {
			f.holding, f.holdTS = true, outTS
			f.fan.begin()
		}
	}
	f.nPackets++
	p := &f.pass
	p.slot, p.seq, p.ts, p.marker, p.payload = slot, outSeq, outTS, pkt.Marker, payload
	p.frameStart, p.arrival = frameStart, arrival
	p.sample = f.nPackets%delaySampleEvery == 0
	switch {
	case f.stamp == nil || !f.stamp.Load():
		// One layer: no choice to make, so no bandwidth estimate either
		// (zero time: packets go without the transport-wide CC extension,
		// and viewers send no feedback to parse).
		p.now = time.Time{}
	case p.now.IsZero() || f.nPackets%4 == 0:
		// The send time stamped for bandwidth estimation: one clock read
		// per few packets is close enough (they leave within a ms).
		p.now = time.Now()
	}
	sent := f.fan.run(p, subs)
	p.payload = nil
	if pkt.Marker {
		f.endHold()
	}
	if sent > 0 {
		f.m.packetsOut[f.kindIdx].Add(float64(sent))
		f.m.bytesOut[f.kindIdx].Add(float64(sent * len(payload)))
	}
}

// delaySampleEvery: the forward delay is observed for one packet in this
// many (a clock read and a histogram update per viewer per packet cost
// about as much as the fan-out itself).
const delaySampleEvery = 16

// cacheGOP keeps the packets since the last keyframe for joiners.
func (f *forwarder) cacheGOP(l *layerIn, frameStart bool, seq uint16, ts uint32, marker bool, payload []byte) {
	if frameStart {
		l.gop.startKeyframe(ts)
	}
	wasValid := l.gop.valid
	if !l.gop.add(seq, ts, marker, payload) && wasValid {
		f.m.gopCacheOverflows.Inc()
	}
	if b := l.gop.bytes(); b != l.gopBytes {
		f.m.gopCacheBytes.Add(float64(b - l.gopBytes))
		l.gopBytes = b
	}
}

// startJoiners decides how joiners start, given the packet being written
// (of layer l). A video joiner gets its target layer's cached GOP first, so
// it has a picture at once; if there is no usable cache it waits for that
// layer's next keyframe, which is requested (merged, throttled).
func (f *forwarder) startJoiners(joiners []*downTrack, l *layerIn, frameStart bool) {
	var need [maxLayers]bool
	f.fan.begin()
	for _, d := range joiners {
		for _, o := range f.layers {
			if o != nil && o.active {
				d.selectCodec(o.slot, o.codec)
			}
		}
		if !f.video {
			d.layer, d.target = 0, 0
			d.useSlot(0)
			d.needKeyframe = false
			continue
		}
		d.target = f.targetFor(d)
		t := f.layers[d.target]
		d.needKeyframe = true
		switch {
		case t == nil:
			need[d.target] = true
		case t == l && frameStart:
			// This very packet opens a keyframe of the target; start from it.
		case t.gop.valid && d.ptOKs[t.slot]:
			f.m.cacheReplays.Inc()
			n, first := 0, true
			t.gop.each(func(seq uint16, ts uint32, marker bool, p []byte) {
				if first {
					d.switchTo(t.slot, seq)
					first = false
				}
				// Zero time: not stamped for the bandwidth estimate.
				if d.write(seq+d.seqOff, ts, marker, p, time.Time{}) == nil {
					d.lastSeq = seq + d.seqOff
					n++
				}
			})
			f.m.cacheReplayPackets.Add(float64(n))
		default:
			need[d.target] = true
		}
	}
	f.fan.end()
	for slot, n := range need {
		if n {
			f.keyframeNeeded(slot)
		}
	}
}

// add queues a subscriber's track; it joins at the next packet.
func (f *forwarder) add(d *downTrack) { f.subs.add(d) }

// join adds a subscriber's track and, when a source is live, starts it at
// once — a video joiner gets the cached GOP now rather than at the next
// packet, which may be a frame away (or never, if the publisher paused).
func (f *forwarder) join(d *downTrack) {
	f.subs.add(d)
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if f.ref < 0 || !f.active.Load() || !f.layers[f.ref].tl.synced {
		return // no source yet: it starts with the first packet
	}
	if joiners := f.subs.admit(); joiners != nil {
		f.startJoiners(joiners, nil, false)
	}
}

func (f *forwarder) remove(d *downTrack) { f.subs.remove(d) }

// retransmit answers a viewer's NACK from the cache of the layer it gets.
//
// Packets are copied out under the lock and written after it is released:
// a burst of NACKs from many viewers must never hold up the publisher's
// packets (that makes more gaps, hence more NACKs). Each viewer also has a
// retransmission budget, so a lossy viewer cannot make the sfu resend more
// than RetransmitRate packets a second on its behalf.
func (f *forwarder) retransmit(d *downTrack, seqs []uint16) {
	f.m.nackReceived.Add(float64(len(seqs)))
	rate := f.tun.RetransmitRate
	if r := d.rtxRate.Load(); r > 0 && float64(r) < rate {
		rate = float64(r)
	}
	allowed := d.rtx.take(len(seqs), rate, time.Now())
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
	pt, ssrc, usable := d.pt, d.ssrc, d.ptOK && !d.needKeyframe && d.layer >= 0
	if usable {
		for _, seq := range seqs {
			// The viewer's numbers map to the layer (and its numbering)
			// they were sent from: a NACK just after a switch or a probe
			// still gets the right packet, never another one.
			slot, layerSeq, ok := d.source(seq)
			if !ok || f.layers[slot] == nil {
				continue
			}
			ts, marker, p, ok := f.layers[slot].cache.get(layerSeq)
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
	f.fan.begin()
	defer f.fan.end()
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

// senderReport records a publisher's RTCP sender report for a layer.
func (f *forwarder) senderReport(slot int, gen uint64, wall time.Time, rtpTS uint32) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	l := f.layers[slot]
	if l == nil || gen != l.gen {
		return
	}
	l.srWall, l.srRTP = wall, rtpTS
	if slot == f.ref {
		f.clock.senderReport(wall, rtpTS)
	}
	f.checkAlignment(time.Now())
}

// mediaTime is the outgoing RTP timestamp of the frame live now, and
// whether a source is attached.
func (f *forwarder) mediaTime(now time.Time, maxExtrapolation time.Duration) (uint32, bool) {
	ts, ok := f.clock.at(now, maxExtrapolation)
	return ts, ok && f.active.Load()
}

func (f *forwarder) count() int { return f.subs.count() }

// refSlot is the reference layer's slot (0 when there is none yet).
func (f *forwarder) refSlot() int {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	return max(f.ref, 0)
}
