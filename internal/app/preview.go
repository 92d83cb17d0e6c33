package app

import (
	"net/http"
	"path"
	"sync"

	"github.com/streamd/streamd/internal/httpx"
)

// The staff console's preview is a WHEP session like a viewer's, but it is
// no viewer: a WHEP offer that carries the staff token is remembered here
// and left out of the stream's viewer count.
type previews struct {
	mu  sync.Mutex
	ids map[string]string // session id → stream
}

// wrap records the session a staff-authorized POST /whep/{stream} creates.
func (p *previews) wrap(staffToken string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !httpx.TokenEqual(httpx.BearerToken(r), staffToken) {
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
		// Location is /whep/{stream}/{session} once the session exists.
		if loc := w.Header().Get("Location"); loc != "" {
			p.mu.Lock()
			if p.ids == nil {
				p.ids = map[string]string{}
			}
			p.ids[path.Base(loc)] = path.Base(path.Dir(loc))
			p.mu.Unlock()
		}
	})
}

// count is the number of live staff previews of stream; ended sessions
// (alive reports false) are forgotten.
func (p *previews) count(stream string, alive func(id string) bool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for id, st := range p.ids {
		if !alive(id) {
			delete(p.ids, id)
			continue
		}
		if st == stream {
			n++
		}
	}
	return n
}
