package hls

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/streamd/streamd/egress/record"
	"github.com/streamd/streamd/internal/httpx"
	"github.com/streamd/streamd/sfu"
)

// Source is a live stream's media (the sfu's Stream).
type Source interface {
	AddSink(s sfu.Sink) (remove func())
	RequestKeyframe()
}

// Media finds a stream's media while it is live.
type Media interface {
	LiveSource(stream string) (Source, bool)
}

// Live serves low-latency HLS of live streams at /hls/{stream}/index.m3u8.
// A stream's muxer starts on its first request and stops when nobody has
// asked for it for IdleTimeout.
//
// Cards on HLS frames: the muxer's fMP4 timestamps are the sfu's outgoing
// RTP timestamps themselves (extended past 32 bits), so a frame's PTS modulo
// 2^32 is its rtp_ts and the player compares it with a card's media.rtp_ts
// exactly as a WebRTC viewer does with rtpTimestamp.
type Live struct {
	Media Media
	// Access guards the routes (private streams); nil lets everyone in.
	Access func(http.Handler) http.Handler
	// Warm is asked about a stream that is not live here; it may make it
	// live (a cluster node starts a relay pull from the stream's origin)
	// and reports whether it is, waiting at most until ctx ends. nil: no.
	Warm        func(ctx context.Context, stream string) bool
	PartTarget  time.Duration // default 200 ms
	SegmentMin  time.Duration // default 1 s
	IdleTimeout time.Duration // default 30 s
	Logger      *slog.Logger

	mu      sync.Mutex
	streams map[string]*liveStream
	closed  bool
	wg      sync.WaitGroup
	stop    chan struct{}
}

// warm gives Warm a few seconds to make a stream live here before the
// request is answered (not under l.mu: it waits).
func (l *Live) warm(ctx context.Context, id string) {
	l.mu.Lock()
	have := l.streams[id] != nil
	l.mu.Unlock()
	if have {
		return
	}
	if _, live := l.Media.LiveSource(id); live {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	l.Warm(ctx, id)
}

// Initialize starts the idle sweeper.
func (l *Live) Initialize() {
	if l.PartTarget <= 0 {
		l.PartTarget = 200 * time.Millisecond
	}
	if l.SegmentMin <= 0 {
		l.SegmentMin = time.Second
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = 30 * time.Second
	}
	if l.Logger == nil {
		l.Logger = slog.New(slog.DiscardHandler)
	}
	l.streams = map[string]*liveStream{}
	l.stop = make(chan struct{})
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
				l.sweep()
			}
		}
	}()
}

// Close stops every muxer.
func (l *Live) Close() {
	l.mu.Lock()
	if l.closed || l.stop == nil {
		l.mu.Unlock()
		return
	}
	l.closed = true
	all := l.streams
	l.streams = map[string]*liveStream{}
	l.mu.Unlock()
	close(l.stop)
	for _, s := range all {
		s.close()
	}
	l.wg.Wait()
}

func (l *Live) sweep() {
	now := time.Now().UnixNano()
	l.mu.Lock()
	var idle []*liveStream
	for id, s := range l.streams {
		if now-s.lastReq.Load() > int64(l.IdleTimeout) || s.failed.Load() {
			idle = append(idle, s)
			delete(l.streams, id)
		}
	}
	l.mu.Unlock()
	for _, s := range idle {
		s.close()
	}
}

// Register mounts GET /hls/{stream}/{file}.
func (l *Live) Register(mux *http.ServeMux) {
	wrap := l.Access
	if wrap == nil {
		wrap = func(h http.Handler) http.Handler { return h }
	}
	mux.Handle("GET /hls/{stream}/{file}", wrap(http.HandlerFunc(l.serve)))
}

func (l *Live) serve(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("stream")
	if l.Warm != nil {
		l.warm(r.Context(), id)
	}
	l.mu.Lock()
	s := l.streams[id]
	if s == nil && !l.closed {
		src, live := l.Media.LiveSource(id)
		if !live {
			l.mu.Unlock()
			httpx.WriteError(w, http.StatusNotFound, "not_live", "the stream is not live; HLS is served while it is")
			return
		}
		s = newLiveStream(l, id, src)
		l.streams[id] = s
	}
	l.mu.Unlock()
	if s == nil {
		httpx.WriteError(w, http.StatusServiceUnavailable, "closed", "the server is shutting down")
		return
	}
	s.lastReq.Store(time.Now().UnixNano())
	if _, err := s.wait(r, 15*time.Second); err != nil {
		httpx.WriteError(w, http.StatusServiceUnavailable, "not_ready", "no decodable video yet (HLS takes H.264); retry shortly")
		return
	}
	s.serveFile(&cacheWriter{ResponseWriter: w, blocking: r.URL.Query().Get("_HLS_msn") != ""}, r)
}

// cacheWriter sets cache headers a CDN can work with: parts, segments and
// init never change (their names are unique per muxer); a blocking playlist
// request (_HLS_msn) names one future playlist, so it may be cached briefly;
// a plain playlist reload may be cached for at most a part's length.
type cacheWriter struct {
	http.ResponseWriter
	blocking bool
	done     bool
}

func (c *cacheWriter) WriteHeader(code int) {
	if !c.done {
		c.done = true
		h := c.Header()
		switch ct := h.Get("Content-Type"); {
		case code != http.StatusOK:
			h.Set("Cache-Control", "no-store")
		case strings.Contains(ct, "mpegurl") && c.blocking:
			h.Set("Cache-Control", "public, max-age=6")
		case strings.Contains(ct, "mpegurl"):
			h.Set("Cache-Control", "public, max-age=0, s-maxage=0, must-revalidate")
		default:
			h.Set("Cache-Control", "public, max-age=3600, immutable")
		}
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *cacheWriter) Write(b []byte) (int, error) {
	if !c.done {
		c.WriteHeader(http.StatusOK)
	}
	return c.ResponseWriter.Write(b)
}

var errNotReady = errors.New("hls: not ready")

// liveStream feeds one stream into a gohlslib muxer.
type liveStream struct {
	l       *Live
	id      string
	src     Source
	lastReq atomic.Int64
	failed  atomic.Bool
	remove  func()

	queue chan livePacket
	done  chan struct{}
	ended chan struct{}

	mu    sync.Mutex
	cond  *sync.Cond // on mu: muxer started, media written, closing
	muxer *gohlslib.Muxer
	// The muxer-call gate (live_gate.go): calls into the muxer in flight,
	// whether close has begun, and shared playlist snapshots.
	calls      sync.WaitGroup
	closing    bool
	content    bool
	gen        uint64
	snaps      map[string]*mediaState
	refreshing bool
}

type livePacket struct {
	video   bool
	mime    string
	arrival time.Time
	pkt     rtp.Packet
}

func newLiveStream(l *Live, id string, src Source) *liveStream {
	s := &liveStream{l: l, id: id, src: src, queue: make(chan livePacket, 2048), done: make(chan struct{}), ended: make(chan struct{}), snaps: map[string]*mediaState{}}
	s.cond = sync.NewCond(&s.mu)
	s.lastReq.Store(time.Now().UnixNano())
	s.remove = src.AddSink(s)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer close(s.ended)
		s.run()
	}()
	return s
}

// WriteRTP implements sfu.Sink: copy, queue, never block the forwarding path.
func (s *liveStream) WriteRTP(kind webrtc.RTPCodecType, codec webrtc.RTPCodecCapability, pkt *rtp.Packet) {
	p := livePacket{video: kind == webrtc.RTPCodecTypeVideo, mime: codec.MimeType, arrival: time.Now(), pkt: *pkt}
	p.pkt.Payload = append([]byte(nil), pkt.Payload...)
	select {
	case s.queue <- p:
	default:
		s.l.Logger.Warn("hls queue full: packet dropped", "stream", s.id)
	}
}

// wait returns the muxer once it is running.
func (s *liveStream) wait(r *http.Request, timeout time.Duration) (*gohlslib.Muxer, error) {
	t := time.AfterFunc(timeout, func() { s.mu.Lock(); s.cond.Broadcast(); s.mu.Unlock() })
	defer t.Stop()
	deadline := time.Now().Add(timeout)
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.muxer == nil {
		if time.Now().After(deadline) || r.Context().Err() != nil || s.failed.Load() {
			return nil, errNotReady
		}
		s.cond.Wait()
	}
	return s.muxer, nil
}

// close stops the stream. Muxer.Close must meet no request inside the
// muxer (gohlslib races with those, see live_gate.go): no call starts once
// closing is set, none of them can park, and close waits for those in flight.
func (s *liveStream) close() {
	s.remove()
	s.mu.Lock()
	s.closing = true
	m := s.muxer
	s.failed.Store(true)
	s.cond.Broadcast()
	s.mu.Unlock()
	close(s.done)
	<-s.ended
	s.calls.Wait()
	if m != nil {
		m.Close()
	}
}

// hlsOffset: gohlslib adds 10 s to every timestamp (so that none is
// negative); taking it off here makes an fMP4 timestamp the RTP timestamp.
const hlsOffset = 10 * 90000

func (s *liveStream) run() {
	dec := &rtph264.Decoder{PacketizationMode: 1}
	_ = dec.Init()
	var (
		vu, au                 record.Unwrap
		videoTrack, audioTrack *gohlslib.Track
		pendingAUs             []pendingAU
		firstKeyAt             time.Time
		audioSeen              bool
		lastVideoExt           int64
		lastVideoAt, firstWall time.Time
		firstExt               int64
		audioZero              int64
		audioZeroSet           bool
		lastKeyReq             time.Time
		sinceKey               int64
		warned                 bool
	)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	start := func() {
		tracks := []*gohlslib.Track{}
		videoTrack = &gohlslib.Track{Codec: &codecs.H264{}, ClockRate: 90000}
		tracks = append(tracks, videoTrack)
		if audioSeen {
			audioTrack = &gohlslib.Track{Codec: &codecs.Opus{ChannelCount: 2}, ClockRate: 48000}
			tracks = append(tracks, audioTrack)
		}
		m := &gohlslib.Muxer{Variant: gohlslib.MuxerVariantLowLatency, Tracks: tracks, SegmentCount: 7,
			SegmentMinDuration: s.l.SegmentMin, PartMinDuration: s.l.PartTarget,
			OnEncodeError: func(err error) { s.l.Logger.Warn("hls mux", "stream", s.id, "err", err) }}
		if err := m.Start(); err != nil {
			s.l.Logger.Error("hls muxer", "stream", s.id, "err", err)
			s.failed.Store(true)
			return
		}
		for _, p := range pendingAUs {
			_ = m.WriteH264(videoTrack, p.ntp, p.pts, p.au)
		}
		pendingAUs = nil
		s.mu.Lock()
		s.muxer = m
		s.cond.Broadcast()
		s.mu.Unlock()
		s.written(m)
	}
	for {
		select {
		case <-s.done:
			return
		case <-tick.C:
			// Segments are cut at keyframes, which WebRTC encoders send on request.
			if (sinceKey > int64(s.l.SegmentMin.Seconds()*90000) || firstKeyAt.IsZero()) && time.Since(lastKeyReq) > s.l.SegmentMin {
				lastKeyReq = time.Now()
				s.src.RequestKeyframe()
			}
			if s.muxer == nil && !firstKeyAt.IsZero() && time.Since(firstKeyAt) > 300*time.Millisecond {
				start()
			}
		case p := <-s.queue:
			if p.video {
				if !strings.EqualFold(p.mime, webrtc.MimeTypeH264) {
					if !warned {
						warned = true
						s.l.Logger.Warn("hls takes H.264 video only", "stream", s.id, "codec", p.mime)
					}
					continue
				}
				ext := vu.Next(p.pkt.Timestamp)
				units, err := dec.Decode(&p.pkt)
				if err != nil {
					continue
				}
				key := h264.IsRandomAccess(units)
				if firstKeyAt.IsZero() {
					if !key {
						continue
					}
					firstKeyAt, firstWall, firstExt = p.arrival, p.arrival, ext
				}
				if key {
					sinceKey = 0
				} else {
					sinceKey = ext - lastVideoExt + sinceKey
				}
				lastVideoExt, lastVideoAt = ext, p.arrival
				ntp := firstWall.Add(time.Duration(ext-firstExt) * time.Second / 90000)
				a := pendingAU{ntp: ntp, pts: ext - hlsOffset, au: units}
				if s.muxer == nil {
					pendingAUs = append(pendingAUs, a)
					if audioSeen && len(pendingAUs) > 0 {
						start()
					}
					continue
				}
				if err := s.muxer.WriteH264(videoTrack, a.ntp, a.pts, a.au); err != nil {
					s.l.Logger.Debug("hls h264", "err", err)
				}
				s.written(s.muxer)
				continue
			}
			if !strings.EqualFold(p.mime, webrtc.MimeTypeOpus) {
				continue
			}
			audioSeen = true
			ext := au.Next(p.pkt.Timestamp)
			if s.muxer == nil || audioTrack == nil || lastVideoAt.IsZero() {
				continue
			}
			if !audioZeroSet {
				// Place audio by arrival against the video timeline.
				videoNow := lastVideoExt + int64(p.arrival.Sub(lastVideoAt).Seconds()*90000)
				audioZero = videoNow*48000/90000 - ext
				audioZeroSet = true
			}
			pts := ext + audioZero
			ntp := firstWall.Add(time.Duration(pts*90000/48000-firstExt) * time.Second / 90000)
			if err := s.muxer.WriteOpus(audioTrack, ntp, pts-hlsOffset*48000/90000, [][]byte{p.pkt.Payload}); err != nil {
				s.l.Logger.Debug("hls opus", "err", err)
			}
			s.written(s.muxer)
		}
	}
}

type pendingAU struct {
	ntp time.Time
	pts int64
	au  [][]byte
}
