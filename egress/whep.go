package egress

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd/internal/httpx"
	"github.com/streamd/streamd/internal/rtc"
	"github.com/streamd/streamd/internal/whipx"
	"github.com/streamd/streamd/sfu"
)

// Registry tells WHEP which streams exist (declared here, implemented by
// the streams registry, wired in internal/app).
type Registry interface {
	StreamExists(ctx context.Context, id string) (bool, error)
}

// ErrUnknownStream is returned for streams the registry does not know.
var ErrUnknownStream = errors.New("unknown stream")

// WHEP serves viewers (RFC 9725-style WHEP). Configure the fields, then
// Initialize.
type WHEP struct {
	API      *webrtc.API // rtc.WebRTC.SubscriberAPI
	SFU      *sfu.SFU
	Registry Registry
	// ConnectTimeout ends a session whose peer has not connected by then (default 15 s).
	ConnectTimeout time.Duration
	// OnSubscribe is told when a viewer session starts (a cluster node uses
	// it to pull a stream published on another node).
	OnSubscribe func(stream string)
	// ICELinks are the Link headers (TURN servers) of WHEP answers; nil: none.
	ICELinks func(*http.Request) []string
	// Transports counts viewer sessions by transport (nil: not counted).
	Transports *whipx.Transports
	// Registerer takes the bandwidth estimate histogram (nil: not registered).
	Registerer prometheus.Registerer
	Logger     *slog.Logger

	// Batch groups the sender reports' sends (nil: one send each).
	Batch sfu.Batcher

	sessions   whipx.Sessions[*whepSession]
	bweMetrics *bweMetrics
	stop       chan struct{} // ends senderReports
	stopOnce   sync.Once
}

// Initialize prepares the server.
func (h *WHEP) Initialize() error {
	if h.ConnectTimeout == 0 {
		h.ConnectTimeout = 15 * time.Second
	}
	if h.Logger == nil {
		h.Logger = slog.New(slog.DiscardHandler)
	}
	h.sessions.Kind = "WHEP"
	h.bweMetrics = newBWEMetrics(h.Registerer)
	h.stop = make(chan struct{})
	h.sessions.Go(func() { h.senderReports(h.stop) })
	return nil
}

// Close ends every session and waits for their goroutines.
func (h *WHEP) Close() {
	h.stopOnce.Do(func() {
		if h.stop != nil {
			close(h.stop)
		}
	})
	h.sessions.Close()
}

// Register mounts the WHEP endpoints:
// POST /whep/{stream}, PATCH and DELETE /whep/{stream}/{session}.
func (h *WHEP) Register(mux *http.ServeMux) {
	h.sessions.Register(mux, "/whep", h.handlePost)
	for _, m := range []string{"GET", "POST", "OPTIONS"} {
		mux.HandleFunc(m+" /whep/{stream}/{session}/layer", h.handleLayer)
	}
}

// Sessions is the number of WHEP sessions (connected or not).
func (h *WHEP) Sessions() int { return h.sessions.Len() }

// HasSession reports whether the WHEP session id is open (the app uses it
// to forget the console previews it does not count as viewers).
func (h *WHEP) HasSession(id string) bool {
	_, ok := h.sessions.Get(id)
	return ok
}

func (h *WHEP) handlePost(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodOptions {
		whipx.AddLinks(w, r, h.ICELinks)
	}
	if whipx.CORS(w, r) {
		return
	}
	stream := r.PathValue("stream")
	q, ok := sfu.ParseQuality(r.URL.Query().Get("layer"))
	if !ok {
		httpx.WriteError(w, http.StatusUnprocessableEntity, "bad_layer", "layer must be auto, low, medium or high")
		return
	}
	offer, ok := whipx.ReadOffer(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	s, answer, err := h.SubscribeQuality(ctx, stream, offer, q)
	if whipx.WriteCodecError(w, err) {
		return
	}
	switch {
	case errors.Is(err, ErrUnknownStream):
		httpx.WriteError(w, http.StatusNotFound, "unknown_stream", "no stream "+stream+": create it with POST /api/streams")
		return
	case errors.Is(err, rtc.ErrBadOffer):
		httpx.WriteError(w, http.StatusBadRequest, "bad_sdp", err.Error())
		return
	case errors.Is(err, sfu.ErrClosed):
		httpx.WriteError(w, http.StatusServiceUnavailable, "shutting_down", "the server is shutting down; retry shortly")
		return
	case httpx.WriteStoreUnavailable(w, err):
		return
	case err != nil:
		h.Logger.Error("whep subscribe", "stream", stream, "err", err)
		httpx.WriteError(w, http.StatusInternalServerError, "internal", "could not start the session")
		return
	}
	whipx.AddLinks(w, r, h.ICELinks)
	whipx.WriteAnswer(w, whipx.SessionPath("/whep", stream, s.id), s.etag, answer)
}

// whepSession is one viewer.
type whepSession struct {
	h         *WHEP
	id, etag  string
	stream    string
	peer      *rtc.Peer
	viewer    *sfu.Viewer
	quality   sfu.Quality
	bwe       *sessionBWE
	closeOnce sync.Once
	done      chan struct{}
}

func (s *whepSession) StreamID() string                       { return s.stream }
func (s *whepSession) PeerConnection() *webrtc.PeerConnection { return s.peer.PC }
func (s *whepSession) ETag() string                           { return s.etag }
func (s *whepSession) End()                                   { s.Close() }

// Subscribe answers a viewer's offer. A known stream that is not live yet is
// accepted: video starts at the publisher's first keyframe.
func (h *WHEP) Subscribe(ctx context.Context, stream, offer string) (*whepSession, string, error) {
	return h.SubscribeQuality(ctx, stream, offer, sfu.QualityAuto)
}

// SubscribeQuality is Subscribe with the simulcast layer the viewer asks
// for (QualityAuto: its bandwidth decides).
func (h *WHEP) SubscribeQuality(ctx context.Context, stream, offer string, q sfu.Quality) (*whepSession, string, error) {
	if h.Registry != nil {
		ok, err := h.Registry.StreamExists(ctx, stream)
		if err != nil {
			return nil, "", fmt.Errorf("look up stream: %w", err)
		}
		if !ok {
			return nil, "", ErrUnknownStream
		}
	}
	if h.sessions.Closed() {
		return nil, "", sfu.ErrClosed
	}
	// A viewer that cannot decode the stream's video is told so now, before
	// a session exists, not left connected to a black picture.
	codec, live := h.SFU.Stream(stream).Codec(webrtc.RTPCodecTypeVideo)
	if err := whipx.CheckCodec(offer, codec, live); err != nil {
		return nil, "", err
	}
	peer, err := rtc.NewPeer(h.API)
	if err != nil {
		return nil, "", err
	}
	id, etag := whipx.NewSession()
	s := &whepSession{h: h, id: id, etag: etag, stream: stream, peer: peer, quality: q, done: make(chan struct{})}
	answer, err := peer.Answer(ctx, offer, s.addTracks)
	if err != nil {
		s.Close()
		return nil, "", err
	}
	if !h.sessions.Add(id, s) {
		s.Close()
		return nil, "", sfu.ErrClosed
	}
	if h.OnSubscribe != nil {
		h.OnSubscribe(stream)
	}
	h.sessions.Go(s.run)
	return s, answer, nil
}

// addTracks makes the session's sfu viewer with the kinds the offer asks
// for and adds its tracks to the peer connection.
func (s *whepSession) addTracks(offer *sdp.SessionDescription) error {
	video, audio := false, false
	for _, m := range offer.MediaDescriptions {
		switch m.MediaName.Media {
		case "video":
			video = true
		case "audio":
			audio = true
		}
	}
	if !video && !audio {
		return fmt.Errorf("%w: the offer has no audio or video section", rtc.ErrBadOffer)
	}
	v, err := s.h.SFU.Stream(s.stream).NewViewer(video, audio, s.Close)
	if err != nil {
		return err
	}
	s.viewer = v
	v.SetQuality(s.quality)
	s.bwe = newSessionBWE()
	v.SetSentRecorder(s.bwe.est)
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		t := v.Track(kind)
		if t == nil {
			continue
		}
		sender, err := s.peer.PC.AddTrack(t)
		if err != nil {
			return fmt.Errorf("add %s track: %w", kind, err)
		}
		s.h.sessions.Go(func() {
			var seqs []uint16
			for {
				pkts, _, err := sender.ReadRTCP()
				if err != nil {
					return
				}
				seqs = v.HandleRTCP(kind, pkts, seqs)
				s.feedback(pkts)
			}
		})
	}
	return nil
}

// run admits the viewer once connected and ends the session when the
// connection ends; a peer that never completes ICE is cleaned up.
func (s *whepSession) run() {
	if err := s.peer.WaitConnected(context.Background(), s.h.ConnectTimeout); err != nil {
		select {
		case <-s.done:
		default:
			s.h.Logger.Info("viewer never connected; closing", "stream", s.stream, "session", s.id)
		}
		s.Close()
		return
	}
	defer s.h.Transports.Connected("viewer", s.peer.PC)()
	s.startBWE()
	s.viewer.Start()
	select {
	case <-s.peer.Ended():
	case <-s.done:
	}
	s.Close()
}

// senderReports sends every viewer's RTCP sender reports once a second,
// as often as pion's report interceptor would (the subscriber API has none:
// see sfu/senderreport.go), all in one send batch: one sendmmsg instead of
// a sendto per report.
func (h *WHEP) senderReports(stop <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var all []*whepSession
	var srs []rtcp.Packet
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		all = h.sessions.Snapshot(all[:0])
		if h.Batch != nil {
			h.Batch.Begin()
		}
		now := time.Now()
		for _, s := range all {
			// Every session in the table has its viewer (addTracks made it
			// before Add); one reports only once packets went to it.
			if srs = s.viewer.SenderReports(now, srs[:0]); len(srs) > 0 {
				_ = s.peer.PC.WriteRTCP(srs)
			}
		}
		if h.Batch != nil {
			h.Batch.End()
		}
		clear(all)
	}
}

// Close ends the session.
func (s *whepSession) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		if s.viewer != nil {
			s.viewer.Close()
		}
		_ = s.peer.Close()
		s.h.sessions.Remove(s.id)
	})
}
