// Resolving an RTSP request's stream and checking its key (publishers
// always, readers of private streams).

package ingest

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
)

// streamPath turns an RTSP path into a stream id ("" when it cannot be one).
func streamPath(p string) string {
	p = strings.Trim(p, "/")
	if p == "" || strings.ContainsAny(p, "/?") {
		return ""
	}
	return p
}

// authorized checks the request's credentials against key, accepting any
// user name (basic or digest).
func authorized(conn *gortsplib.ServerConn, req *base.Request, key string) (ok, provided bool) {
	var h headers.Authorization
	user := "streamd"
	if h.Unmarshal(req.Header["Authorization"]) == nil && h.Username != "" {
		user, provided = h.Username, true
	}
	// Called even without credentials: it prepares the digest challenge.
	return conn.VerifyCredentials(req, user, key), provided
}

// lookup resolves the stream of a request and checks the key: for
// publishers always, for readers when the stream is private.
func (h *rtspHandler) lookup(conn *gortsplib.ServerConn, req *base.Request, path string, publish bool) (string, *base.Response, error) {
	s := h.s
	id := streamPath(path)
	if id == "" {
		s.m.rejected.WithLabelValues("unknown_stream").Inc()
		return "", respond(base.StatusNotFound, "use rtsp://host:port/<stream>"), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	key, private, err := s.Streams.StreamKey(ctx, id)
	switch {
	case errors.Is(err, ErrUnknownStream):
		s.m.rejected.WithLabelValues("unknown_stream").Inc()
		s.Logger.Info("rtsp: unknown stream", "stream", id, "remote", conn.NetConn().RemoteAddr().String())
		return "", respond(base.StatusNotFound, "no stream "+id+": create it with POST /api/streams"), nil
	case err != nil:
		s.Logger.Error("rtsp: stream lookup", "stream", id, "err", err)
		return "", respond(base.StatusInternalServerError, ""), nil
	}
	if !publish && !private {
		return id, nil, nil
	}
	ok, provided := authorized(conn, req, key)
	if !ok {
		if provided {
			s.m.authFailures.Inc()
			s.m.rejected.WithLabelValues("bad_key").Inc()
			s.Logger.Warn("rtsp: wrong publish key", "stream", id, "method", string(req.Method), "remote", conn.NetConn().RemoteAddr().String())
		}
		return "", respond(base.StatusUnauthorized, "use the publish key of "+id+" as the password"), liberrors.ErrServerAuth{}
	}
	return id, nil, nil
}
