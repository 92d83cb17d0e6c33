package sfu

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Source is what the sfu needs from an ingest session (declared here, by
// the consumer): a way to ask for a keyframe and to end the session when
// another publisher takes the stream over.
type Source interface {
	RequestKeyframe()
	Close() error
}

// Stream is one live show: a video and an audio forwarder, and the current
// publication, if any.
type Stream struct {
	id    string
	s     *SFU
	video *forwarder
	audio *forwarder

	mu      sync.Mutex
	pub     *Publication
	lastPLI [maxLayers]atomic.Int64
	// layerKeyframe asks a simulcast layer's publisher stream for a keyframe.
	layerKeyframe [maxLayers]atomic.Pointer[func()]
	sinkSSRC      [2]uint32 // [audio, video]: the SSRCs sinks see
	sinks         atomic.Int32
	// simulcast: the video has more than one layer now.
	simulcast atomic.Bool
}

func newStream(id string, s *SFU) *Stream {
	st := &Stream{id: id, s: s}
	st.video = newForwarder(true, &s.Tuning, s.m, s.fan, st.requestKeyframe)
	st.audio = newForwarder(false, &s.Tuning, s.m, s.fan, func(int) {})
	st.video.stamp, st.audio.stamp = &st.simulcast, &st.simulcast
	st.video.log = s.Logger.With("stream", id)
	st.sinkSSRC = [2]uint32{rand.Uint32(), rand.Uint32()}
	return st
}

// ID is the stream id.
func (st *Stream) ID() string { return st.id }

// forwarder is the stream's forwarder for media of that kind.
func (st *Stream) forwarder(kind webrtc.RTPCodecType) *forwarder {
	if kind == webrtc.RTPCodecTypeVideo {
		return st.video
	}
	return st.audio
}

// Publish makes src the stream's publisher. A previous publisher is closed:
// a new publish with the right key takes the stream over, and viewers stay.
func (st *Stream) Publish(src Source) *Publication {
	p := &Publication{st: st, src: src}
	st.mu.Lock()
	prev := st.pub
	st.pub = p
	st.mu.Unlock()
	if prev != nil {
		prev.end()
		_ = prev.src.Close()
	} else {
		st.s.m.publishers.Inc()
	}
	st.s.Logger.Info("publisher live", "stream", st.id, "takeover", prev != nil)
	if st.s.OnLive != nil {
		st.s.OnLive(st.id, true)
	}
	return p
}

// Live reports whether a publisher is attached.
func (st *Stream) Live() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.pub != nil
}

// MediaTime is the outgoing RTP timestamp of the video frame live at now.
func (st *Stream) MediaTime(now time.Time) (uint32, bool) {
	ts, ok := st.video.mediaTime(now, st.s.Tuning.ClockExtrapolation)
	if !ok || now.Sub(st.video.clock.lastArrival()) > st.s.Tuning.LiveTimeout {
		return ts, false
	}
	return ts, true
}

// requestKeyframe merges viewers' keyframe needs: at most one request per
// PLIInterval per layer reaches the publisher.
func (st *Stream) requestKeyframe(slot int) {
	now := time.Now().UnixNano()
	last := st.lastPLI[slot].Load()
	if now-last < int64(st.s.Tuning.PLIInterval) || !st.lastPLI[slot].CompareAndSwap(last, now) {
		return
	}
	if fn := st.layerKeyframe[slot].Load(); fn != nil {
		st.s.m.pliSent.Inc()
		(*fn)()
		return
	}
	st.mu.Lock()
	p := st.pub
	st.mu.Unlock()
	if p != nil {
		st.s.m.pliSent.Inc()
		p.src.RequestKeyframe()
	}
}

func (st *Stream) unpublishAll() {
	st.mu.Lock()
	p := st.pub
	st.mu.Unlock()
	if p != nil {
		p.Close()
		_ = p.src.Close()
	}
}

// Publication is one publisher's tenure on a stream.
type Publication struct {
	st      *Stream
	src     Source
	mu      sync.Mutex
	tracks  []*TrackWriter
	nLayers int
	ended   bool
}

// Track registers a publisher track and returns the writer its packets go to.
// One writer per kind is live; a second video track replaces the first.
func (p *Publication) Track(kind webrtc.RTPCodecType, codec webrtc.RTPCodecCapability) *TrackWriter {
	return p.track(p.st.forwarder(kind), 0, codec, nil)
}

// Layer registers one simulcast layer of the publisher's video (up to
// three; more are ignored) and returns the writer its packets go to.
// keyframe asks the publisher for a keyframe of that layer.
func (p *Publication) Layer(codec webrtc.RTPCodecCapability, keyframe func()) *TrackWriter {
	p.mu.Lock()
	slot := p.nLayers
	p.nLayers++
	p.mu.Unlock()
	if slot >= maxLayers {
		return &TrackWriter{f: p.st.video}
	}
	kf := &keyframe
	p.st.layerKeyframe[slot].Store(kf)
	return p.track(p.st.video, slot, codec, kf)
}

func (p *Publication) track(f *forwarder, slot int, codec webrtc.RTPCodecCapability, kf *func()) *TrackWriter {
	p.mu.Lock()
	defer p.mu.Unlock()
	tw := &TrackWriter{f: f, slot: slot, keyframe: kf}
	if p.ended {
		return tw // gen 0 never matches: writes are dropped
	}
	tw.gen = f.attachLayer(slot, codec)
	p.tracks = append(p.tracks, tw)
	return tw
}

// Close ends the publication (the publisher left). Viewers stay connected
// and resume when the next publisher arrives.
func (p *Publication) Close() {
	st := p.st
	st.mu.Lock()
	current := st.pub == p
	if current {
		st.pub = nil
	}
	st.mu.Unlock()
	p.end()
	if current {
		st.s.m.publishers.Dec()
		st.s.Logger.Info("publisher left", "stream", st.id)
		if st.s.OnLive != nil {
			st.s.OnLive(st.id, false)
		}
	}
}

func (p *Publication) end() {
	p.mu.Lock()
	tracks := p.tracks
	p.ended = true
	p.tracks = nil
	p.mu.Unlock()
	for _, tw := range tracks {
		tw.f.detach(tw.slot, tw.gen)
		if tw.keyframe != nil {
			p.st.layerKeyframe[tw.slot].CompareAndSwap(tw.keyframe, nil)
		}
	}
}

// TrackWriter takes one publisher track's packets. WriteRTP must be called
// from a single goroutine; pkt and its payload are not retained.
type TrackWriter struct {
	f        *forwarder
	slot     int
	gen      uint64
	keyframe *func() // a simulcast layer's keyframe request
}

// SenderReport passes on the publisher's RTCP sender report for this track
// (its wall clock at the report and the matching RTP timestamp): the media
// clock uses it to stamp the frame being captured, not just the newest to arrive.
func (tw *TrackWriter) SenderReport(wall time.Time, rtpTS uint32) {
	if tw.gen != 0 {
		tw.f.senderReport(tw.slot, tw.gen, wall, rtpTS)
	}
}

// WriteRTP forwards a packet that arrived at arrival.
func (tw *TrackWriter) WriteRTP(pkt *rtp.Packet, arrival time.Time) {
	if tw.gen == 0 {
		return
	}
	tw.f.writeLayer(tw.slot, tw.gen, pkt, arrival)
}
