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
	// keyframeNeeded asks the publisher for a keyframe (throttled by the stream).
	keyframeNeeded func()

	subs  *subscriberSet
	clock mediaClock

	// wmu serialises everything below: the current source's writes, source
	// switches and NACK retransmissions.
	wmu      sync.Mutex
	gen      uint64
	codec    webrtc.RTPCodecCapability
	ckind    codecKind
	active   atomic.Bool // a source is attached (read by the clock without the lock)
	tl       timeline
	cache    *packetCache
	gop      *gopCache
	gopBytes int
	pass     pass // reused by every write: the hot path allocates nothing
	nPackets uint32
	// A video frame's packets are written in one batch (held from its first
	// packet to its marker), so the batcher can send each viewer's share
	// of the frame as one segmentation-offload train.
	holding bool
	holdTS  uint32
}

func newForwarder(video bool, tun *Tuning, m *metrics, fan *fanout, keyframeNeeded func()) *forwarder {
	f := &forwarder{video: video, tun: tun, m: m, fan: fan, keyframeNeeded: keyframeNeeded, subs: newSubscriberSet()}
	f.pass.f = f
	if video {
		f.kindIdx = 1
		f.cache = newPacketCache(tun.NACKCacheSize)
		f.gop = newGOPCache(tun.KeyframeCacheBytes)
	} else {
		f.cache = newPacketCache(tun.NACKCacheSize / 4)
	}
	return f
}

// attach makes a new source current and returns its generation; writes from
// older generations are ignored from now on.
func (f *forwarder) attach(codec webrtc.RTPCodecCapability) uint64 {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	f.gen++
	f.codec, f.ckind = codec, kindOfMime(codec.MimeType)
	f.tl.newSource()
	f.clock.newSource(codec.ClockRate)
	if f.gop != nil {
		f.dropGOPLocked()
	}
	for _, d := range f.subs.list() {
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
	f.endHold()
}

// endHold ends the frame batch, if one is open.
func (f *forwarder) endHold() {
	if f.holding {
		f.holding = false
		f.fan.end()
	}
}

// current reports the codec of the current source, if any.
func (f *forwarder) current() (webrtc.RTPCodecCapability, bool) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	return f.codec, f.active.Load()
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
	if !f.tl.synced {
		if f.video && !key {
			f.m.dropBeforeKeyframe.Inc()
			return
		}
		f.tl.splice(pkt, arrival, f.codec.ClockRate)
		f.clock.spliced(f.tl.offset())
	} else if f.tl.stale(pkt) {
		f.m.dropStale.Inc()
		return
	}
	outSeq, outTS, newest, step := f.tl.rewrite(pkt, arrival)
	if newest {
		f.clock.newest(outTS, arrival, step)
	}
	frameStart := key && (!f.gop.valid || outTS != f.gop.keyTS)

	if joiners := f.subs.admit(); joiners != nil {
		f.startJoiners(joiners, frameStart)
	}
	if f.video {
		f.cacheGOP(frameStart, outSeq, outTS, pkt.Marker, payload)
	}
	f.cache.store(outSeq, outTS, pkt.Marker, payload)

	subs := f.subs.list()
	if f.video && (!f.holding || f.holdTS != outTS) {
		f.endHold()
		// Only for a crowd: holding delays every other write on the
		// socket too (RTCP and feedback to the publisher), which is worth
		// it only when the frame goes to many viewers.
		if len(subs) > f.tun.ParallelAbove {
			f.holding, f.holdTS = true, outTS
			f.fan.begin()
		}
	}
	f.nPackets++
	p := &f.pass
	p.seq, p.ts, p.marker, p.payload = outSeq, outTS, pkt.Marker, payload
	p.frameStart, p.arrival = frameStart, arrival
	p.sample = f.nPackets%delaySampleEvery == 0
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
func (f *forwarder) cacheGOP(frameStart bool, seq uint16, ts uint32, marker bool, payload []byte) {
	if frameStart {
		f.gop.startKeyframe(ts)
	}
	wasValid := f.gop.valid
	if !f.gop.add(seq, ts, marker, payload) && wasValid {
		f.m.gopCacheOverflows.Inc()
	}
	if b := f.gop.bytes(); b != f.gopBytes {
		f.m.gopCacheBytes.Add(float64(b - f.gopBytes))
		f.gopBytes = b
	}
}

// startJoiners decides how joiners start. A video joiner gets the cached GOP
// first, so it has a picture at once; if there is no usable cache it waits
// for the next keyframe, which is requested (merged, throttled).
func (f *forwarder) startJoiners(joiners []*downTrack, frameStart bool) {
	needKey := false
	f.fan.begin()
	for _, d := range joiners {
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
	f.fan.end()
	if needKey {
		f.keyframeNeeded()
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
	if !f.active.Load() || !f.tl.synced {
		return // no source yet: it starts with the first packet
	}
	if joiners := f.subs.admit(); joiners != nil {
		f.startJoiners(joiners, false)
	}
}

func (f *forwarder) remove(d *downTrack) { f.subs.remove(d) }

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

// senderReport records a publisher's RTCP sender report.
func (f *forwarder) senderReport(gen uint64, wall time.Time, rtpTS uint32) {
	f.wmu.Lock()
	current := gen == f.gen
	f.wmu.Unlock()
	if current {
		f.clock.senderReport(wall, rtpTS)
	}
}

// mediaTime is the outgoing RTP timestamp of the frame live now, and
// whether a source is attached.
func (f *forwarder) mediaTime(now time.Time, maxExtrapolation time.Duration) (uint32, bool) {
	ts, ok := f.clock.at(now, maxExtrapolation)
	return ts, ok && f.active.Load()
}

func (f *forwarder) count() int { return f.subs.count() }
