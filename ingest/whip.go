package ingest

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/streamd/streamd/internal/httpx"
	"github.com/streamd/streamd/internal/rtc"
	"github.com/streamd/streamd/internal/whipx"
	"github.com/streamd/streamd/sfu"
)

// WHIP serves WHIP publishers. Configure the fields, then Initialize.
type WHIP struct {
	API            *webrtc.API // rtc.WebRTC.PublisherAPI
	SFU            *sfu.SFU
	Auth           Auth
	ConnectTimeout time.Duration // default 15 s
	// ICELinks are the Link headers (TURN servers) of WHIP answers; nil: none.
	ICELinks func(*http.Request) []string
	// Transports counts publisher sessions by transport (nil: not counted).
	Transports *whipx.Transports
	Logger     *slog.Logger

	sessions whipx.Sessions[*whipSession]
}

// Initialize prepares the server.
func (h *WHIP) Initialize() error {
	if h.ConnectTimeout == 0 {
		h.ConnectTimeout = 15 * time.Second
	}
	if h.Logger == nil {
		h.Logger = slog.New(slog.DiscardHandler)
	}
	h.sessions.Kind = "WHIP"
	return nil
}

// Close ends every publisher session and waits for their readers.
func (h *WHIP) Close() { h.sessions.Close() }

// Register mounts POST /whip/{stream} and the session resource.
func (h *WHIP) Register(mux *http.ServeMux) { h.sessions.Register(mux, "/whip", h.handlePost) }

func (h *WHIP) handlePost(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodOptions {
		whipx.AddLinks(w, r, h.ICELinks)
	}
	if whipx.CORS(w, r) {
		return
	}
	stream := r.PathValue("stream")
	key := httpx.BearerToken(r)
	if key == "" {
		httpx.WriteUnauthorized(w, false, "send the stream's publish key as Authorization: Bearer <key> (OBS: the Bearer Token field)")
		return
	}
	switch err := h.Auth.CheckPublish(r.Context(), stream, key); {
	case errors.Is(err, ErrUnknownStream):
		httpx.WriteError(w, http.StatusNotFound, "unknown_stream", "no stream "+stream+": create it with POST /api/streams")
		return
	case errors.Is(err, ErrBadKey):
		httpx.WriteUnauthorized(w, true, "the publish key is wrong for stream "+stream)
		return
	case httpx.WriteStoreUnavailable(w, err):
		return
	case err != nil:
		h.Logger.Error("whip auth", "stream", stream, "err", err)
		httpx.WriteError(w, http.StatusInternalServerError, "internal", "could not check the publish key")
		return
	}
	offer, ok := whipx.ReadOffer(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	s, answer, err := h.start(ctx, stream, offer)
	if err != nil {
		if errors.Is(err, rtc.ErrBadOffer) {
			httpx.WriteError(w, http.StatusBadRequest, "bad_sdp", err.Error())
			return
		}
		h.Logger.Error("whip start", "stream", stream, "err", err)
		httpx.WriteError(w, http.StatusInternalServerError, "internal", "could not start the session")
		return
	}
	whipx.AddLinks(w, r, h.ICELinks)
	whipx.WriteAnswer(w, whipx.SessionPath("/whip", stream, s.id), s.etag, answer)
}

// whipSession is one publisher; it is the sfu Source of its publication.
type whipSession struct {
	h      *WHIP
	id     string
	etag   string
	stream string
	peerFeed

	closeOnce sync.Once
	done      chan struct{} // closed by Close
}

func (s *whipSession) StreamID() string                       { return s.stream }
func (s *whipSession) PeerConnection() *webrtc.PeerConnection { return s.peer.PC }
func (s *whipSession) ETag() string                           { return s.etag }
func (s *whipSession) End()                                   { _ = s.Close() }

func (h *WHIP) start(ctx context.Context, stream, offer string) (*whipSession, string, error) {
	peer, err := rtc.NewPeer(h.API)
	if err != nil {
		return nil, "", err
	}
	id, etag := whipx.NewSession()
	s := &whipSession{h: h, id: id, etag: etag, stream: stream, peerFeed: peerFeed{peer: peer, wg: h.sessions.WaitGroup(),
		onLayer: func(rid string) { h.Logger.Info("simulcast layer", "stream", stream, "rid", rid) }}, done: make(chan struct{})}
	peer.PC.OnTrack(s.onTrack)
	answer, err := peer.Answer(ctx, offer, nil)
	if err != nil {
		_ = peer.Close()
		return nil, "", err
	}
	if !h.sessions.Add(s.id, s) {
		_ = peer.Close()
		return nil, "", errors.New("shutting down")
	}

	// The offer is good: this publisher takes the stream over now.
	pub := h.SFU.Stream(stream).Publish(s)
	s.setPublication(pub)

	h.sessions.Go(func() {
		if err := peer.WaitConnected(context.Background(), h.ConnectTimeout); err != nil {
			select {
			case <-s.done:
			default:
				h.Logger.Info("publisher never connected; closing", "stream", stream, "session", s.id)
			}
			_ = s.Close()
			return
		}
		defer h.Transports.Connected("publisher", peer.PC)()
		select {
		case <-peer.Ended():
		case <-s.done:
		}
		_ = s.Close()
	})
	h.Logger.Info("whip session", "stream", stream, "session", s.id)
	return s, answer, nil
}

func (s *whipSession) onTrack(track *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	if s.forward(track, receiver) {
		s.h.Logger.Info("publisher track", "stream", s.stream, "kind", track.Kind().String(), "codec", track.Codec().MimeType, "rid", track.RID())
	}
}

// Close ends the session and its publication.
func (s *whipSession) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		s.h.sessions.Remove(s.id)
		if pub := s.publication(); pub != nil {
			pub.Close()
		}
		_ = s.peer.Close()
		s.h.Logger.Info("whip session ended", "stream", s.stream, "session", s.id)
	})
	return nil
}
