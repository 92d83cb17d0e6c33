package whipx

import (
	"net/http"
	"sync"

	"github.com/pion/webrtc/v4"

	"github.com/streamd/streamd/internal/httpx"
)

// Session is one WHIP or WHEP session as its resource URL serves it.
type Session interface {
	StreamID() string
	PeerConnection() *webrtc.PeerConnection
	ETag() string
	End()
}

// Sessions is the session table of a WHIP or WHEP endpoint, and the owner
// of the goroutines its sessions start (Go): Close ends every session and
// waits for them, so a server's Close returns with nothing of it running.
// Both endpoints keep sessions the same way; the rule is written once here.
type Sessions[S Session] struct {
	// Kind names the endpoint in errors ("WHIP", "WHEP").
	Kind string

	mu     sync.Mutex
	m      map[string]S
	closed bool
	wg     sync.WaitGroup
}

// Add registers s under id; false once Close has begun (the caller ends s).
func (t *Sessions[S]) Add(id string, s S) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	if t.m == nil {
		t.m = map[string]S{}
	}
	t.m[id] = s
	return true
}

// Remove forgets id (sessions call it from their End).
func (t *Sessions[S]) Remove(id string) {
	t.mu.Lock()
	delete(t.m, id)
	t.mu.Unlock()
}

// Get returns the session with id.
func (t *Sessions[S]) Get(id string) (S, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.m[id]
	return s, ok
}

// Snapshot appends every session to dst.
func (t *Sessions[S]) Snapshot(dst []S) []S {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.m {
		dst = append(dst, s)
	}
	return dst
}

// Len is the number of sessions (connected or not).
func (t *Sessions[S]) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// Closed reports whether Close has begun.
func (t *Sessions[S]) Closed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// Go runs f in a goroutine Close waits for.
func (t *Sessions[S]) Go(f func()) {
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		f()
	}()
}

// WaitGroup is the group Go adds to, for code that starts its goroutines
// itself (pion's track readers).
func (t *Sessions[S]) WaitGroup() *sync.WaitGroup { return &t.wg }

// Close refuses new sessions, ends every session and waits for the
// goroutines started with Go.
func (t *Sessions[S]) Close() {
	t.mu.Lock()
	t.closed = true
	all := make([]S, 0, len(t.m))
	for _, s := range t.m {
		all = append(all, s)
	}
	t.mu.Unlock()
	for _, s := range all {
		s.End()
	}
	t.wg.Wait()
}

// Register mounts an endpoint's routes: POST and OPTIONS on
// <prefix>/{stream} to post, and the session resource
// <prefix>/{stream}/{session} (PATCH, DELETE, OPTIONS) served from t.
func (t *Sessions[S]) Register(mux *http.ServeMux, prefix string, post http.HandlerFunc) {
	mux.HandleFunc("POST "+prefix+"/{stream}", post)
	mux.HandleFunc("OPTIONS "+prefix+"/{stream}", post)
	for _, m := range []string{"PATCH", "DELETE", "OPTIONS"} {
		mux.HandleFunc(m+" "+prefix+"/{stream}/{session}", t.serveSession)
	}
}

// serveSession answers on a session resource: DELETE ends the session,
// PATCH trickles ICE candidates (RFC 9725 §4.4).
func (t *Sessions[S]) serveSession(w http.ResponseWriter, r *http.Request) {
	if CORS(w, r) {
		return
	}
	s, ok := t.Get(r.PathValue("session"))
	if !ok || s.StreamID() != r.PathValue("stream") {
		httpx.WriteError(w, http.StatusNotFound, "unknown_session", "no such "+t.Kind+" session (it ended or never existed)")
		return
	}
	switch r.Method {
	case http.MethodDelete:
		s.End()
		w.WriteHeader(http.StatusOK)
	case http.MethodPatch:
		Patch(w, r, s.PeerConnection(), s.ETag())
	}
}
