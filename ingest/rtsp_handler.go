// gortsplib's server callbacks: per-connection state and the
// ANNOUNCE/SETUP/DESCRIBE/PLAY/RECORD flow of publishers and readers.

package ingest

import (
	"errors"
	"sync"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
)

func respond(code base.StatusCode, msg string) *base.Response {
	text := base.StatusMessages[code]
	if msg != "" {
		text += " - " + msg
	}
	return &base.Response{StatusCode: code, StatusMessage: text}
}

// rtspHandler implements gortsplib's server callbacks.
type rtspHandler struct{ s *RTSPServer }

// connState is kept on each connection: a stream built by DESCRIBE for the
// SETUP that follows, and a reader whose PLAY answer is on its way.
type connState struct {
	mu          sync.Mutex
	described   *gortsplib.ServerStream
	describedID string
	pendingPlay Reader
}

// describe keeps st (nil: none) as the described stream and closes the one
// it replaces.
func (cs *connState) describe(st *gortsplib.ServerStream, id string) {
	cs.mu.Lock()
	old := cs.described
	cs.described, cs.describedID = st, id
	cs.mu.Unlock()
	if old != nil {
		old.Close()
	}
}

func stateOf(c *gortsplib.ServerConn) *connState {
	if cs, ok := c.UserData().(*connState); ok {
		return cs
	}
	return nil
}

func (h *rtspHandler) OnConnOpen(ctx *gortsplib.ServerHandlerOnConnOpenCtx) {
	ctx.Conn.SetUserData(&connState{})
}

func (h *rtspHandler) OnConnClose(ctx *gortsplib.ServerHandlerOnConnCloseCtx) {
	if cs := stateOf(ctx.Conn); cs != nil {
		cs.describe(nil, "")
	}
	if ctx.Error != nil && !errors.Is(ctx.Error, liberrors.ErrServerTerminated{}) {
		h.s.Logger.Debug("rtsp connection closed", "remote", ctx.Conn.NetConn().RemoteAddr().String(), "err", ctx.Error)
	}
}

func (h *rtspHandler) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	switch v := ctx.Session.UserData().(type) {
	case *rtspPublisher:
		v.end()
	case Reader:
		if v.Close() {
			h.s.m.read.Dec()
		}
	}
}

func (h *rtspHandler) OnDecodeError(ctx *gortsplib.ServerHandlerOnDecodeErrorCtx) {
	h.s.Logger.Debug("rtsp decode error", "err", ctx.Error)
}

func (h *rtspHandler) OnPacketsLost(ctx *gortsplib.ServerHandlerOnPacketsLostCtx) {
	h.s.Logger.Debug("rtsp packets lost", "lost", ctx.Lost)
}

func (h *rtspHandler) OnStreamWriteError(ctx *gortsplib.ServerHandlerOnStreamWriteErrorCtx) {
	h.s.Logger.Debug("rtsp reader write error", "err", ctx.Error)
}

// OnAnnounce admits a publisher: the stream exists, the key is right and
// the session carries something viewers can play.
func (h *rtspHandler) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	id, res, err := h.lookup(ctx.Conn, ctx.Request, ctx.Path, true)
	if res != nil {
		return res, err
	}
	media, err := planRTSPMedia(id, ctx.Description, h.s.Logger)
	if err != nil {
		h.s.m.rejected.WithLabelValues("no_usable_track").Inc()
		h.s.Logger.Warn("rtsp: publish refused", "stream", id, "err", err)
		return respond(base.StatusUnsupportedMediaType, "no H.264/H.265/VP8/VP9/AV1 video or Opus/G.711 audio; "+fixOpus), nil
	}
	ctx.Session.SetUserData(&rtspPublisher{s: h.s, stream: id, ss: ctx.Session, media: media})
	return respond(base.StatusOK, ""), nil
}

func (h *rtspHandler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Session.State() == gortsplib.ServerSessionStatePreRecord {
		if _, ok := ctx.Session.UserData().(*rtspPublisher); !ok {
			return respond(base.StatusBadRequest, ""), nil, nil
		}
		return respond(base.StatusOK, ""), nil, nil
	}
	id, res, err := h.lookup(ctx.Conn, ctx.Request, ctx.Path, false)
	if res != nil {
		return res, nil, err
	}
	// A further SETUP (the next track) joins the session's stream.
	if r, ok := ctx.Session.UserData().(Reader); ok {
		if r.Stream() != id {
			return respond(base.StatusBadRequest, "one stream per session"), nil, nil
		}
		return respond(base.StatusOK, ""), r.ServerStream(), nil
	}
	var st *gortsplib.ServerStream
	if cs := stateOf(ctx.Conn); cs != nil {
		cs.mu.Lock()
		if cs.described != nil && cs.describedID == id {
			st, cs.described = cs.described, nil
		}
		cs.mu.Unlock()
	}
	if st == nil {
		if st, res = h.s.describe(id); res != nil {
			return res, nil, nil
		}
	}
	ctx.Session.SetUserData(h.s.Readers.Open(ctx.Session, id, st))
	h.s.m.read.Inc()
	return respond(base.StatusOK, ""), st, nil
}

func (h *rtspHandler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	id, res, err := h.lookup(ctx.Conn, ctx.Request, ctx.Path, false)
	if res != nil {
		return res, nil, err
	}
	st, res := h.s.describe(id)
	if res != nil {
		return res, nil, nil
	}
	if cs := stateOf(ctx.Conn); cs != nil {
		cs.describe(st, id)
	}
	return respond(base.StatusOK, ""), st, nil
}

func (h *rtspHandler) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	r, ok := ctx.Session.UserData().(Reader)
	if !ok {
		return respond(base.StatusBadRequest, ""), nil
	}
	// The taps start once gortsplib has made the session an active reader,
	// i.e. when the answer to PLAY goes out (OnResponse), so that the
	// keyframe cache replayed to a joiner is not lost.
	if cs := stateOf(ctx.Conn); cs != nil {
		cs.mu.Lock()
		cs.pendingPlay = r
		cs.mu.Unlock()
	}
	return respond(base.StatusOK, ""), nil
}

func (h *rtspHandler) OnResponse(c *gortsplib.ServerConn, res *base.Response) {
	cs := stateOf(c)
	if cs == nil {
		return
	}
	cs.mu.Lock()
	r := cs.pendingPlay
	cs.pendingPlay = nil
	cs.mu.Unlock()
	if r != nil && res.StatusCode == base.StatusOK {
		r.Start()
	}
}

func (h *rtspHandler) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	p, ok := ctx.Session.UserData().(*rtspPublisher)
	if !ok {
		return respond(base.StatusBadRequest, ""), nil
	}
	for _, t := range p.media.tracks {
		ctx.Session.OnPacketRTP(t.medi, t.forma, t.handle)
	}
	p.start()
	return respond(base.StatusOK, ""), nil
}

// describe builds a reader's stream of id, or the response refusing it.
func (s *RTSPServer) describe(id string) (*gortsplib.ServerStream, *base.Response) {
	if s.Readers == nil {
		return nil, respond(base.StatusNotFound, "reading is not enabled on this server")
	}
	st, err := s.Readers.Describe(s.srv, id)
	if err != nil {
		s.Logger.Error("rtsp: read stream", "stream", id, "err", err)
		return nil, respond(base.StatusInternalServerError, "")
	}
	if st == nil {
		s.m.rejected.WithLabelValues("not_live").Inc()
		return nil, respond(base.StatusNotFound, "stream "+id+" is not live")
	}
	return st, nil
}
