package overlay

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/streamd/streamd/internal/httpx"
)

const (
	readLimit      = 4096             // a chat message of 280 characters, JSON-escaped
	readTimeout    = 75 * time.Second // client pings every few s; server pings every pingEvery
	pingEvery      = 30 * time.Second
	closeGrace     = time.Second
	clientRate     = 10.0 // messages per second
	clientBurst    = 20.0
	maxPending     = 4096 // events buffered per connection while it syncs
	skipEntrySize  = 32
	maxBadMessages = 5

	closeSlow = 4008 // queue over QueueBytes
)

// Register adds GET /ws/{stream} to mux.
func (s *Server) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /ws/{stream}", s.handleWS)
}

func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if len(s.AllowedOrigins) == 0 {
		u, err := url.Parse(origin)
		return err == nil && strings.EqualFold(u.Host, r.Host)
	}
	for _, a := range s.AllowedOrigins {
		if a == "*" || strings.EqualFold(strings.TrimSuffix(a, "/"), origin) {
			return true
		}
	}
	return false
}

// room is the hub of one stream on this node.
type room struct {
	s      *Server
	stream string
	refs   int // guarded by s.mu
	ready  chan struct{}
	cancel func()
	err    error

	mu    sync.Mutex
	conns []*conn
	// linger wakes every writer once lazy entries (chat, reactions) have
	// waited ChatLinger; armed while some are queued. Guarded by mu.
	linger      *time.Timer
	lingerArmed bool
}

func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	stream := r.PathValue("stream")
	if !validStream(stream) {
		httpx.WriteError(w, http.StatusBadRequest, "bad_stream", "the stream name must be 1-128 characters of A-Z a-z 0-9 - _ .")
		return
	}
	q := r.URL.Query()
	var since uint64
	resume := q.Has("since")
	if resume {
		var err error
		if since, err = strconv.ParseUint(q.Get("since"), 10, 64); err != nil {
			httpx.WriteError(w, http.StatusBadRequest, "bad_since", "since must be the last seq you received")
			return
		}
	}
	epoch := q.Get("epoch")
	if len(epoch) > 64 {
		httpx.WriteError(w, http.StatusBadRequest, "bad_epoch", "epoch must be the epoch of the last snapshot")
		return
	}
	s.mu.Lock()
	closed := s.closed || s.ctx == nil
	s.mu.Unlock()
	if closed {
		httpx.WriteError(w, http.StatusServiceUnavailable, "shutting_down", "the server is shutting down; reconnect")
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader wrote the response (403 for a refused origin)
	}
	ws.SetReadLimit(readLimit)
	c := &conn{s: s, ws: ws, done: make(chan struct{}), notify: make(chan struct{}, 1), q: make([]qentry, 8)}
	if s.Chat != nil {
		c.viewer, c.hasViewer = s.Chat.Viewer(r)
	}
	if !s.goOwned(func() { c.run(stream, resume, since, epoch) }) {
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"), time.Now().Add(closeGrace))
		_ = ws.Close()
	}
}

// goOwned starts f on a goroutine the Server waits for, unless it is closed.
func (s *Server) goOwned(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

func (s *Server) acquireRoom(stream string) (*room, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	r := s.rooms[stream]
	creator := r == nil
	if creator {
		r = &room{s: s, stream: stream, ready: make(chan struct{})}
		s.rooms[stream] = r
	}
	r.refs++
	s.mu.Unlock()
	if creator {
		ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
		r.cancel, r.err = s.Bus.Subscribe(ctx, stream, r.deliver)
		cancel()
		close(r.ready)
	} else {
		<-r.ready
	}
	if r.err != nil {
		s.releaseRoom(r)
		return nil, r.err
	}
	return r, nil
}

func (s *Server) releaseRoom(r *room) {
	s.mu.Lock()
	r.refs--
	last := r.refs == 0
	if last && s.rooms[r.stream] == r {
		delete(s.rooms, r.stream)
	}
	s.mu.Unlock()
	if last && r.cancel != nil {
		r.cancel()
	}
	if last {
		r.mu.Lock()
		if r.linger != nil {
			r.linger.Stop()
		}
		r.mu.Unlock()
	}
}

// flushLazy wakes every connection's writer for the lingering chat.
func (r *room) flushLazy() {
	r.mu.Lock()
	r.lingerArmed = false
	for _, c := range r.conns {
		c.wake()
	}
	r.mu.Unlock()
}

// deliver is the room's Bus callback: encode once, queue on every connection.
func (r *room) deliver(ev Event) {
	if ev.Reset {
		r.mu.Lock()
		for _, c := range r.conns {
			c.syncing = true
			c.s.goOwned(func() { c.sync(false, 0, "") })
		}
		r.mu.Unlock()
		return
	}
	r.broadcast(ev, time.Now())
}

func (r *room) broadcast(ev Event, now time.Time) {
	r.mu.Lock()
	lazy := r.s.ChatLinger > 0 && len(r.conns) >= r.s.ChatLingerConns && (ev.Type == "chat" || ev.Type == "reactions")
	e := qentry{data: ev.Data, seq: ev.Seq, size: len(ev.Data), key: ev.Key, at: now, lazy: lazy}
	skip := qentry{seq: ev.Seq, size: skipEntrySize, at: now, lazy: lazy}
	if lazy && !r.lingerArmed {
		r.lingerArmed = true
		if r.linger == nil {
			r.linger = time.AfterFunc(r.s.ChatLinger, r.flushLazy)
		} else {
			r.linger.Reset(r.s.ChatLinger)
		}
	}
	for _, c := range r.conns {
		if c.syncing {
			if len(c.pending) >= maxPending {
				c.slow()
				continue
			}
			c.pending = append(c.pending, pendingEvent{ev: ev})
			continue
		}
		if ev.Seq <= c.sentSeq {
			continue
		}
		if ev.Seq != c.sentSeq+1 {
			c.resyncLocked()
			c.pending = append(c.pending, pendingEvent{ev: ev})
			continue
		}
		c.sentSeq = ev.Seq
		if c.epoch == "" {
			c.epoch = ev.Epoch // joined before the stream's first event
		}
		if ev.Audience != "" && ev.Audience != c.viewer.ID {
			c.enqueue(skip)
			continue
		}
		c.enqueue(e)
	}
	r.mu.Unlock()
}
