// One overlay WebSocket connection: joining its stream's room, and syncing
// it (missed events or a snapshot) on join and after a gap.

package overlay

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

type pendingEvent struct {
	ev Event
}

type conn struct {
	s    *Server
	r    *room
	ws   *websocket.Conn
	idx  int // position in r.conns; guarded by r.mu
	done chan struct{}
	// the chat identity from the upgrade request (set before run)
	viewer    Viewer
	hasViewer bool

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
	inflight  int // bytes popped by the writer, not yet written
	closing   bool
	closeCode int
	closeText string
	notify    chan struct{}

	// writer-only
	buf  []byte
	skip []byte
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
			snap, last, epoch = snapshotMessage(st, c.viewer.ID), st.Seq, st.Epoch
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
		c.enqueue(qentry{data: snap, size: len(snap), at: now})
	}
	for _, ev := range history {
		c.enqueue(c.entry(ev, now))
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
		c.enqueue(c.entry(p.ev, now))
	}
}

// entry is ev as queued for c: a skip marker when ev is for another viewer.
func (c *conn) entry(ev Event, now time.Time) qentry {
	if ev.Audience != "" && ev.Audience != c.viewer.ID {
		return qentry{seq: ev.Seq, size: skipEntrySize, at: now}
	}
	return qentry{data: ev.Data, seq: ev.Seq, size: len(ev.Data), key: ev.Key, at: now}
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
	Type   string          `json:"type"`
	Seq    uint64          `json:"seq"`
	Epoch  string          `json:"epoch"`
	Live   bool            `json:"live"`
	Card   json.RawMessage `json:"card"`
	CardID string          `json:"card_id,omitempty"`
	Stock  map[string]int  `json:"stock"`
	// Chat: the last messages this viewer may see, oldest first.
	Chat       []json.RawMessage `json:"chat"`
	Pin        json.RawMessage   `json:"pin"`
	ChatMode   json.RawMessage   `json:"chat_mode,omitempty"`
	ServerTime int64             `json:"server_time"`
}

// snapshotMessage is st as the snapshot for the viewer with id viewer.
func snapshotMessage(st State, viewer string) []byte {
	card := st.Card
	if len(card) == 0 {
		card = json.RawMessage("null")
	}
	stock := st.Stock
	if stock == nil {
		stock = map[string]int{}
	}
	chat := make([]json.RawMessage, 0, len(st.Chat))
	for _, e := range st.Chat {
		if e.Audience == "" || e.Audience == viewer {
			chat = append(chat, e.Data)
		}
	}
	b, _ := json.Marshal(snapshotJSON{Type: "snapshot", Seq: st.Seq, Epoch: st.Epoch, Live: st.Live, Card: card,
		CardID: st.CardID, Stock: stock, Chat: chat, Pin: st.Pin, ChatMode: st.ChatMode, ServerTime: time.Now().UnixMilli()})
	return b
}

// Control frames (ping, pong) bypass the message rate limit, and each costs
// the server a reply or a deadline reset: a flood of them is refused like a
// flood of messages. The server pings every pingEvery and browsers never
// ping on their own, so a real client sends a handful a minute.
const (
	controlRate  = 5.0 // per second
	controlBurst = 20.0
)

var errControlFlood = errors.New("overlay: too many control frames")

// limitControlFrames installs the ping and pong handlers (they run on the
// read loop's goroutine, inside ReadMessage, so the bucket needs no lock).
func (c *conn) limitControlFrames() {
	ws := c.ws
	tokens, last := controlBurst, time.Now()
	allow := func() error {
		now := time.Now()
		tokens = min(controlBurst, tokens+now.Sub(last).Seconds()*controlRate)
		last = now
		if tokens < 1 {
			c.close(websocket.ClosePolicyViolation, "too many control frames")
			return errControlFlood
		}
		tokens--
		return nil
	}
	ws.SetPingHandler(func(data string) error {
		if err := allow(); err != nil {
			return err
		}
		// As gorilla's default handler: answer, and let a failed write
		// surface on the next read rather than here.
		_ = ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(closeGrace))
		return nil
	})
	ws.SetPongHandler(func(string) error {
		if err := allow(); err != nil {
			return err
		}
		return ws.SetReadDeadline(time.Now().Add(readTimeout))
	})
}
