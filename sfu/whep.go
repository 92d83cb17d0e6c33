package sfu

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/streamd/streamd/internal/httpx"
	"github.com/streamd/streamd/internal/whipx"
)

// Register mounts the WHEP endpoints:
// POST /whep/{stream}, PATCH and DELETE /whep/{stream}/{session}.
func (s *SFU) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /whep/{stream}", s.handleWHEP)
	mux.HandleFunc("OPTIONS /whep/{stream}", s.handleWHEP)
	mux.HandleFunc("PATCH /whep/{stream}/{session}", s.handleSession)
	mux.HandleFunc("DELETE /whep/{stream}/{session}", s.handleSession)
	mux.HandleFunc("OPTIONS /whep/{stream}/{session}", s.handleSession)
}

func (s *SFU) handleWHEP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodOptions {
		whipx.AddLinks(w, r, s.ICELinks)
	}
	if whipx.CORS(w, r) {
		return
	}
	stream := r.PathValue("stream")
	offer, ok := whipx.ReadOffer(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	sub, answer, err := s.Subscribe(ctx, stream, offer)
	if whipx.WriteCodecError(w, err) {
		return
	}
	switch {
	case errors.Is(err, ErrUnknownStream):
		httpx.WriteError(w, http.StatusNotFound, "unknown_stream", "no stream "+stream+": create it with POST /api/streams")
		return
	case errors.Is(err, ErrBadOffer):
		httpx.WriteError(w, http.StatusBadRequest, "bad_sdp", err.Error())
		return
	case errors.Is(err, ErrClosed):
		httpx.WriteError(w, http.StatusServiceUnavailable, "shutting_down", "the server is shutting down; retry shortly")
		return
	case httpx.WriteStoreUnavailable(w, err):
		return
	case err != nil:
		s.Logger.Error("whep subscribe", "stream", stream, "err", err)
		httpx.WriteError(w, http.StatusInternalServerError, "internal", "could not start the session")
		return
	}
	whipx.AddLinks(w, r, s.ICELinks)
	whipx.WriteAnswer(w, whipx.SessionPath("/whep", stream, sub.ID()), sub.ETag(), answer)
}

func (s *SFU) handleSession(w http.ResponseWriter, r *http.Request) {
	if whipx.CORS(w, r) {
		return
	}
	sub := s.Session(r.PathValue("session"))
	if sub == nil || sub.st.id != r.PathValue("stream") {
		httpx.WriteError(w, http.StatusNotFound, "unknown_session", "no such WHEP session (it ended or never existed)")
		return
	}
	switch r.Method {
	case http.MethodDelete:
		sub.Close()
		w.WriteHeader(http.StatusOK)
	case http.MethodPatch:
		whipx.Patch(w, r, sub.pc, sub.etag)
	}
}
