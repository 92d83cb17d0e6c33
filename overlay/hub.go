package overlay

import (
	"context"
	"encoding/json"
	"errors"
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
	readLimit      = 1024
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
}

type qentry struct {
	pm   *websocket.PreparedMessage // shared broadcast message
	raw  []byte                     // or a message for this connection only
	seq  uint64                     // skip marker when pm and raw are nil
	size int
	key  string
	at   time.Time
}

type pendingEvent struct {
	ev Event
	pm *websocket.PreparedMessage
}

type conn struct {
	s    *Server
	r    *room
	ws   *websocket.Conn
	idx  int // position in r.conns; guarded by r.mu
	done chan struct{}

	// guarded by r.mu
	syncing bool
	syncGen uint64
	pending []pendingEvent
	sentSeq uint64
	epoch   string

	// queue, guarded by qmu
	qmu       sync.Mutex
	q         []qentry // ring
	head, n   int
	qbytes    int
	closing   bool
	closeCode int
	closeText string
	notify    chan struct{}

	// writer-only
	buf []byte
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
}

func (c *conn) run(stream string, resume bool, since uint64, epoch string) {
	s := c.s
	s.m.connections.Inc()
	defer s.m.connections.Dec()
	r, err := s.acquireRoom(stream)
	if err != nil {
		code, text := websocket.CloseInternalServerErr, "overlay unavailable"
		if errors.Is(err, ErrClosed) {
			code, text = websocket.CloseGoingAway, "server shutting down"
		}
		s.log.Warn("overlay: join", "stream", stream, "err", err)
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(closeGrace))
		_ = c.ws.Close()
		return
	}
	c.r = r
	r.mu.Lock()
	c.idx = len(r.conns)
	r.conns = append(r.conns, c)
	c.syncing = true
	r.mu.Unlock()
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed { // Close may have collected the conns before this one joined
		c.close(websocket.CloseGoingAway, "server shutting down")
	}

	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop()
	}()
	if !resume {
		epoch = ""
	}
	c.sync(resume, since, epoch)
	c.readLoop()
	c.close(0, "")
	<-writerDone

	r.mu.Lock()
	last := len(r.conns) - 1
	r.conns[c.idx] = r.conns[last]
	r.conns[c.idx].idx = c.idx
	r.conns[last] = nil
	r.conns = r.conns[:last]
	c.pending = nil
	r.mu.Unlock()
	s.releaseRoom(r)
}

// sync brings c up to date: the events it missed since `since` (when resume
// and the history allows it) or a fresh snapshot, then the events buffered
// meanwhile.
func (c *conn) sync(resume bool, since uint64, epoch string) {
	r, s := c.r, c.s
	r.mu.Lock()
	c.syncGen++
	gen := c.syncGen
	c.syncing = true
	c.pending = c.pending[:0]
	r.mu.Unlock()

	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	var (
		history []Event
		snap    []byte
		last    uint64
		ok      bool
		err     error
	)
	if resume {
		history, ok, err = s.Bus.Since(ctx, r.stream, epoch, since)
		last = since
		size := 0
		for _, ev := range history {
			size += len(ev.Data)
		}
		if size > s.QueueBytes/2 {
			ok, history = false, nil // cheaper as a snapshot
		} else if n := len(history); ok && n > 0 {
			last = history[n-1].Seq
		}
	}
	if err == nil && !ok {
		var st State
		if st, err = s.Bus.State(ctx, r.stream); err == nil {
			snap, last, epoch = snapshotMessage(st), st.Seq, st.Epoch
		}
	}
	if err != nil {
		if s.ctx.Err() == nil {
			s.log.Warn("overlay: sync", "stream", r.stream, "err", err)
		}
		c.close(websocket.CloseTryAgainLater, "overlay unavailable, reconnect")
		return
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if c.syncGen != gen {
		return // a newer sync took over
	}
	now := time.Now()
	if snap != nil {
		c.enqueue(qentry{raw: snap, size: len(snap), at: now})
	}
	for _, ev := range history {
		c.enqueue(qentry{raw: ev.Data, seq: ev.Seq, size: len(ev.Data), key: ev.Key, at: now})
	}
	c.sentSeq, c.epoch, c.syncing = last, epoch, false
	pending := c.pending
	c.pending = nil
	for i, p := range pending {
		if p.ev.Seq <= c.sentSeq {
			continue
		}
		if p.ev.Seq != c.sentSeq+1 {
			c.resyncLocked()
			c.pending = append(c.pending, pending[i:]...)
			return
		}
		c.sentSeq = p.ev.Seq
		c.enqueue(qentry{pm: p.pm, seq: p.ev.Seq, size: len(p.ev.Data), key: p.ev.Key, at: now})
	}
}

// resyncLocked (r.mu held) starts a sync from c's last seq.
func (c *conn) resyncLocked() {
	c.syncing = true
	since, epoch := c.sentSeq, c.epoch
	if !c.s.goOwned(func() { c.sync(true, since, epoch) }) {
		c.syncing = false
	}
}

type snapshotJSON struct {
	Type       string          `json:"type"`
	Seq        uint64          `json:"seq"`
	Epoch      string          `json:"epoch"`
	Live       bool            `json:"live"`
	Card       json.RawMessage `json:"card"`
	CardID     string          `json:"card_id,omitempty"`
	Stock      map[string]int  `json:"stock"`
	ServerTime int64           `json:"server_time"`
}

func snapshotMessage(st State) []byte {
	card := st.Card
	if len(card) == 0 {
		card = json.RawMessage("null")
	}
	stock := st.Stock
	if stock == nil {
		stock = map[string]int{}
	}
	b, _ := json.Marshal(snapshotJSON{Type: "snapshot", Seq: st.Seq, Epoch: st.Epoch, Live: st.Live, Card: card,
		CardID: st.CardID, Stock: stock, ServerTime: time.Now().UnixMilli()})
	return b
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
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, ev.Data)
	if err != nil {
		return
	}
	r.broadcast(ev, pm, time.Now())
}

func (r *room) broadcast(ev Event, pm *websocket.PreparedMessage, now time.Time) {
	e := qentry{pm: pm, seq: ev.Seq, size: len(ev.Data), key: ev.Key, at: now}
	r.mu.Lock()
	for _, c := range r.conns {
		if c.syncing {
			if len(c.pending) >= maxPending {
				c.slow()
				continue
			}
			c.pending = append(c.pending, pendingEvent{ev: ev, pm: pm})
			continue
		}
		if ev.Seq <= c.sentSeq {
			continue
		}
		if ev.Seq != c.sentSeq+1 {
			c.resyncLocked()
			c.pending = append(c.pending, pendingEvent{ev: ev, pm: pm})
			continue
		}
		c.sentSeq = ev.Seq
		if c.epoch == "" {
			c.epoch = ev.Epoch // joined before the stream's first event
		}
		c.enqueue(e)
	}
	r.mu.Unlock()
}

// enqueue adds e to the queue; a queued entry of the same key becomes a skip
// marker. Over QueueBytes the connection is closed as slow. Never blocks.
func (c *conn) enqueue(e qentry) {
	c.qmu.Lock()
	if c.closing {
		c.qmu.Unlock()
		return
	}
	if e.key != "" && c.n > 0 {
		for i, j := 0, c.head; i < c.n; i++ {
			if q := &c.q[j]; q.key == e.key && q.pm != nil {
				c.qbytes += skipEntrySize - q.size
				q.pm, q.raw, q.key, q.size = nil, nil, "", skipEntrySize
				c.s.m.dropped.Inc()
			}
			if j++; j == len(c.q) {
				j = 0
			}
		}
	}
	if c.n > 0 && c.qbytes+e.size > c.s.QueueBytes {
		c.qmu.Unlock()
		c.slow()
		return
	}
	if c.n == len(c.q) {
		nq := make([]qentry, 2*len(c.q))
		for i := 0; i < c.n; i++ {
			nq[i] = c.q[(c.head+i)%len(c.q)]
		}
		c.q, c.head = nq, 0
	}
	c.q[(c.head+c.n)%len(c.q)] = e
	c.n++
	c.qbytes += e.size
	c.qmu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func (c *conn) slow() {
	c.qmu.Lock()
	already := c.closing
	c.qmu.Unlock()
	if !already {
		c.s.m.slowDisconnects.Inc()
		c.close(closeSlow, "slow consumer")
		// Unblock a write stuck on a full socket.
		if c.ws != nil {
			_ = c.ws.NetConn().SetWriteDeadline(time.Now().Add(closeGrace))
		}
	}
}

// close asks the writer to send a close frame (code 0: none) and stop.
func (c *conn) close(code int, text string) {
	c.qmu.Lock()
	if !c.closing {
		c.closing, c.closeCode, c.closeText = true, code, text
	}
	c.qmu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func (c *conn) pop() (qentry, bool, bool) {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if c.closing {
		return qentry{}, false, true
	}
	if c.n == 0 {
		return qentry{}, false, false
	}
	e := c.q[c.head]
	c.q[c.head] = qentry{}
	c.head++
	if c.head == len(c.q) {
		c.head = 0
	}
	c.n--
	c.qbytes -= e.size
	return e, true, false
}

func (c *conn) writeLoop() {
	defer func() {
		_ = c.ws.Close()
		close(c.done)
	}()
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	for {
		select {
		case <-c.notify:
		case <-ping.C:
			if c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.s.WriteTimeout)) != nil {
				return
			}
			continue
		}
		for {
			e, ok, closing := c.pop()
			if closing {
				c.qmu.Lock()
				code, text := c.closeCode, c.closeText
				c.qmu.Unlock()
				if code != 0 {
					_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(closeGrace))
				}
				return
			}
			if !ok {
				break
			}
			_ = c.ws.SetWriteDeadline(time.Now().Add(c.s.WriteTimeout))
			var err error
			switch {
			case e.pm != nil:
				err = c.ws.WritePreparedMessage(e.pm)
			case e.raw != nil:
				err = c.ws.WriteMessage(websocket.TextMessage, e.raw)
			default:
				c.buf = append(c.buf[:0], `{"type":"skip","seq":`...)
				c.buf = strconv.AppendUint(c.buf, e.seq, 10)
				c.buf = append(c.buf, '}')
				err = c.ws.WriteMessage(websocket.TextMessage, c.buf)
			}
			if err != nil {
				c.close(0, "")
				return
			}
			c.s.m.sent.Inc()
			c.s.m.pushDelay.Observe(time.Since(e.at).Seconds())
		}
	}
}

// epochMarker in reply members is replaced by the connection's epoch.
const epochMarker = "\x00epoch"

type clientMsg struct {
	Type string          `json:"type"`
	T    json.RawMessage `json:"t"`
}

func (c *conn) readLoop() {
	ws := c.ws
	ws.SetPongHandler(func(string) error { return ws.SetReadDeadline(time.Now().Add(readTimeout)) })
	tokens, last := clientBurst, time.Now()
	bad := 0
	for {
		_ = ws.SetReadDeadline(time.Now().Add(readTimeout))
		mt, data, err := ws.ReadMessage()
		if err != nil {
			return // also ErrReadLimit: gorilla already sent 1009
		}
		now := time.Now()
		tokens += now.Sub(last).Seconds() * clientRate
		last = now
		if tokens > clientBurst {
			tokens = clientBurst
		}
		if tokens < 1 {
			c.close(websocket.ClosePolicyViolation, "too many messages")
			return
		}
		tokens--
		if mt != websocket.TextMessage {
			c.close(websocket.CloseUnsupportedData, "text frames only")
			return
		}
		var m clientMsg
		if err := json.Unmarshal(data, &m); err != nil || m.Type == "" {
			bad++
			c.reply("error", `"error":"bad_message","message":"send a JSON object with a type"`)
		} else if m.Type == "ping" {
			var t float64
			if json.Unmarshal(m.T, &t) != nil {
				bad++
				c.reply("error", `"error":"bad_ping","message":"ping needs a numeric t (client ms)"`)
			} else {
				c.reply("pong", `"t":`+strconv.FormatFloat(t, 'f', -1, 64)+`,"server_time":`+strconv.FormatInt(time.Now().UnixMilli(), 10)+`,"epoch":`+epochMarker)
			}
		} else {
			bad++
			c.reply("error", `"error":"unknown_type","message":"the server accepts only ping"`)
		}
		if bad > maxBadMessages {
			c.close(websocket.ClosePolicyViolation, "too many bad messages")
			return
		}
	}
}

// reply queues a message for this connection only, after what is queued;
// its seq is the last seq queued on the connection.
func (c *conn) reply(typ, members string) {
	r := c.r
	r.mu.Lock()
	defer r.mu.Unlock()
	b := make([]byte, 0, len(members)+48)
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, c.sentSeq, 10)
	b = append(b, ',')
	if i := strings.Index(members, epochMarker); i >= 0 {
		b = append(b, members[:i]...)
		b = strconv.AppendQuote(b, c.epoch)
		members = members[i+len(epochMarker):]
	}
	b = append(b, members...)
	b = append(b, '}')
	c.enqueue(qentry{raw: b, size: len(b), at: time.Now()})
}
