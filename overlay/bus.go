package overlay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Event is one published overlay message of a stream, as a Bus hands it out.
type Event struct {
	Stream string
	Type   string // "card", "stock", "live", or a PublishEvent type
	Seq    uint64 // per-stream, strictly increasing by 1 within an epoch
	Epoch  string // changes when the stream's history is lost
	// Key groups events where only the newest matters (e.g. "stock:p1",
	// "live"): a slow connection's queue keeps only the newest of a key.
	Key  string
	Data []byte // the whole wire message, {"type":...,"seq":N,...}
	// Audience, when set, is the one viewer id that receives the event
	// (a shadow-banned viewer's own message); every other connection gets
	// {"type":"skip","seq":N} in its place, so seq stays gapless.
	Audience string

	// Set by Server on the Event it returns (not carried by the Bus).
	ID         string // card events: the unique event id
	ServerTime int64  // unix ms stamped at publish

	// Reset, only in Subscribe callbacks, says the subscriber can no
	// longer be brought up to date event by event (history lost, epoch
	// changed): it must take a fresh State. The other fields are empty.
	Reset bool
}

// ChangeKind says how a publication changes the stream's snapshot state.
type ChangeKind uint8

// The state changes a Publication can carry.
const (
	NoChange    ChangeKind = iota
	SetCard                // Card and CardID become the card on screen
	ClearCard              // no card on screen
	SetLive                // Live
	SetStock               // ProductID's Available
	AddChat                // the event is chat message ChatID (kept among the last MaxChatPerStream)
	DelChat                // chat message ChatID is gone (and unpinned)
	SetPin                 // Pin (a chat message, nil: none) with id ChatID is pinned
	SetChatMode            // ChatMode is the chat's settings as viewers see them
)

// Change is the state update applied atomically with a publication.
type Change struct {
	Kind      ChangeKind
	Card      json.RawMessage
	CardID    string
	Live      bool
	ProductID string
	Available int
	ChatID    string
	Pin       json.RawMessage
	ChatMode  json.RawMessage
}

// Publication is what a Bus publishes. The bus builds the wire message as
// `{"type":"<Type>","seq":<seq>,` + Rest, so Rest holds the remaining
// members and the closing brace, e.g. `"live":true}`.
type Publication struct {
	Type     string
	Key      string
	Audience string // see Event.Audience
	Rest     []byte
	Change   Change
}

// State is a stream's snapshot: everything up to and including Seq.
// Epoch is "" for a stream that never had a publication.
type State struct {
	Epoch  string
	Seq    uint64
	Live   bool
	Card   json.RawMessage // nil: no card on screen
	CardID string
	Stock  map[string]int
	// Chat holds the stream's last MaxChatPerStream chat messages, oldest
	// first; Pin the pinned one (nil: none); ChatMode the settings.
	Chat     []ChatEntry
	Pin      json.RawMessage
	PinID    string
	ChatMode json.RawMessage
}

// ChatEntry is a kept chat message: its wire message and audience.
type ChatEntry struct {
	ID       string
	Audience string
	Data     []byte
}

// Bus assigns sequence numbers, keeps a bounded history and the snapshot
// state of each stream, and delivers events to subscribers, possibly on
// other nodes. Both implementations pass the same conformance suite.
type Bus interface {
	// Publish atomically assigns the next seq, appends the event to the
	// history, applies p.Change and delivers the event.
	Publish(ctx context.Context, stream string, p Publication) (Event, error)
	// Subscribe calls fn for every event of stream published after
	// Subscribe returns, in seq order without gaps (or with a Reset event
	// when that is no longer possible). fn runs on the bus's goroutine: it
	// must not block and must not call cancel.
	Subscribe(ctx context.Context, stream string, fn func(Event)) (cancel func(), err error)
	// State returns the snapshot state of stream.
	State(ctx context.Context, stream string) (State, error)
	// Since returns the events after seq since, when epoch is the stream's
	// epoch and the history still reaches back that far; ok is false
	// otherwise (take a State instead).
	Since(ctx context.Context, stream, epoch string, since uint64) (events []Event, ok bool, err error)
	// Streams lists the streams that have state or history.
	Streams(ctx context.Context) ([]string, error)
	// React adds counts (emoji → taps) to the stream's pending reactions
	// and, unless a reactions event was published less than every ago (by
	// any node), publishes all pending counts as one event
	// {"type":"reactions","seq":N,"counts":{...},"server_time":ms}
	// (ev.Seq > 0; ev.Data may be empty), stamped on the clock that keeps
	// the period. pending is true when counts wait for a later call (an
	// empty counts map just retries).
	React(ctx context.Context, stream string, counts map[string]int, every time.Duration) (ev Event, pending bool, err error)
	Close() error
}

// ErrBusClosed is returned by a closed Bus.
var ErrBusClosed = errors.New("overlay: bus closed")

const (
	defaultHistorySize = 1024
	// MaxStockPerStream bounds the stock map of a stream's snapshot;
	// products past it are still published, but not kept for snapshots.
	MaxStockPerStream = 1000
	// MaxChatPerStream is how many chat messages a snapshot carries.
	MaxChatPerStream = 50
)

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func buildData(typ string, seq uint64, rest []byte) []byte {
	b := make([]byte, 0, len(typ)+len(rest)+32)
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, ',')
	return append(b, rest...)
}

// MemoryBus is the in-process Bus (one node).
type MemoryBus struct {
	historySize int
	mu          sync.Mutex
	streams     map[string]*memStream
	closed      bool
}

type memStream struct {
	mu     sync.Mutex // serializes publish and delivery of one stream
	epoch  string
	seq    uint64
	hist   []Event // the last historySize events (trimmed lazily)
	live   bool
	card   json.RawMessage
	cardID string
	stock  map[string]int
	chat   []ChatEntry
	pin    json.RawMessage
	pinID  string
	mode   json.RawMessage
	react  map[string]int // pending reactions
	reactT time.Time      // last reactions event
	subs   map[uint64]func(Event)
	subIDs uint64
	dead   bool
}

// NewMemoryBus returns an in-process Bus keeping historySize events per
// stream (<= 0: 1024).
func NewMemoryBus(historySize int) *MemoryBus {
	if historySize <= 0 {
		historySize = defaultHistorySize
	}
	return &MemoryBus{historySize: historySize, streams: map[string]*memStream{}}
}

func (b *MemoryBus) stream(name string, create bool) (*memStream, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrBusClosed
	}
	st := b.streams[name]
	if st == nil && create {
		st = &memStream{stock: map[string]int{}, subs: map[uint64]func(Event){}}
		b.streams[name] = st
	}
	return st, nil
}

// Publish implements Bus.
func (b *MemoryBus) Publish(ctx context.Context, stream string, p Publication) (Event, error) {
	st, err := b.stream(stream, true)
	if err != nil {
		return Event{}, err
	}
	st.mu.Lock()
	if st.dead { // dropped by the last unsubscribe meanwhile
		st.mu.Unlock()
		return b.Publish(ctx, stream, p)
	}
	defer st.mu.Unlock()
	return b.publishLocked(st, stream, p), nil
}

// publishLocked (st.mu held) assigns the seq, keeps and delivers the event.
func (b *MemoryBus) publishLocked(st *memStream, stream string, p Publication) Event {
	if st.epoch == "" {
		st.epoch = newID()
	}
	st.seq++
	ev := Event{Stream: stream, Type: p.Type, Seq: st.seq, Epoch: st.epoch, Key: p.Key, Audience: p.Audience, Data: buildData(p.Type, st.seq, p.Rest)}
	st.hist = append(st.hist, ev)
	if len(st.hist) >= 2*b.historySize {
		n := copy(st.hist, st.hist[len(st.hist)-b.historySize:])
		clear(st.hist[n:])
		st.hist = st.hist[:n]
	}
	switch c := p.Change; c.Kind {
	case SetCard:
		st.card, st.cardID = append(json.RawMessage(nil), c.Card...), c.CardID
	case ClearCard:
		st.card, st.cardID = nil, ""
	case SetLive:
		st.live = c.Live
	case SetStock:
		if _, ok := st.stock[c.ProductID]; ok || len(st.stock) < MaxStockPerStream {
			st.stock[c.ProductID] = c.Available
		}
	case AddChat:
		st.chat = append(st.chat, ChatEntry{ID: c.ChatID, Audience: p.Audience, Data: ev.Data})
		if n := len(st.chat); n > MaxChatPerStream {
			st.chat = append(st.chat[:0:0], st.chat[n-MaxChatPerStream:]...)
		}
	case DelChat:
		st.chat = slices.DeleteFunc(st.chat, func(e ChatEntry) bool { return e.ID == c.ChatID })
		if st.pinID == c.ChatID {
			st.pin, st.pinID = nil, ""
		}
	case SetPin:
		st.pin, st.pinID = append(json.RawMessage(nil), c.Pin...), c.ChatID
		if len(c.Pin) == 0 {
			st.pin, st.pinID = nil, ""
		}
	case SetChatMode:
		st.mode = append(json.RawMessage(nil), c.ChatMode...)
	}
	for _, fn := range st.subs {
		fn(ev)
	}
	return ev
}

// React implements Bus.
func (b *MemoryBus) React(ctx context.Context, stream string, counts map[string]int, every time.Duration) (Event, bool, error) {
	st, err := b.stream(stream, true)
	if err != nil {
		return Event{}, false, err
	}
	st.mu.Lock()
	if st.dead {
		st.mu.Unlock()
		return b.React(ctx, stream, counts, every)
	}
	defer st.mu.Unlock()
	for k, n := range counts {
		if n > 0 {
			if st.react == nil {
				st.react = map[string]int{}
			}
			st.react[k] += n
		}
	}
	now := time.Now()
	if len(st.react) == 0 {
		return Event{}, false, nil
	}
	if now.Sub(st.reactT) < every {
		return Event{}, true, nil
	}
	st.reactT = now
	rest := appendServerTime(appendCounts(nil, st.react), now.UnixMilli())
	clear(st.react)
	return b.publishLocked(st, stream, Publication{Type: "reactions", Rest: rest}), false, nil
}

// appendCounts appends "counts":{"<k>":n,...}, keys sorted.
func appendCounts(b []byte, counts map[string]int) []byte {
	b = append(b, `"counts":{`...)
	for i, k := range slices.Sorted(maps.Keys(counts)) {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, k)
		b = append(b, ':')
		b = strconv.AppendInt(b, int64(counts[k]), 10)
	}
	return append(b, `},`...)
}

// Subscribe implements Bus.
func (b *MemoryBus) Subscribe(ctx context.Context, stream string, fn func(Event)) (func(), error) {
	st, err := b.stream(stream, true)
	if err != nil {
		return nil, err
	}
	st.mu.Lock()
	if st.dead {
		st.mu.Unlock()
		return b.Subscribe(ctx, stream, fn)
	}
	st.subIDs++
	id := st.subIDs
	st.subs[id] = fn
	st.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			st.mu.Lock()
			delete(st.subs, id)
			if len(st.subs) == 0 && st.seq == 0 && b.streams[stream] == st {
				// Viewers of a stream that never had an event leave no trace.
				st.dead = true
				delete(b.streams, stream)
			}
			st.mu.Unlock()
			b.mu.Unlock()
		})
	}, nil
}

// State implements Bus.
func (b *MemoryBus) State(ctx context.Context, stream string) (State, error) {
	st, err := b.stream(stream, false)
	if err != nil || st == nil {
		return State{Stock: map[string]int{}}, err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	s := State{Epoch: st.epoch, Seq: st.seq, Live: st.live, Card: st.card, CardID: st.cardID, Stock: make(map[string]int, len(st.stock)),
		Chat: slices.Clone(st.chat), Pin: st.pin, PinID: st.pinID, ChatMode: st.mode}
	for k, v := range st.stock {
		s.Stock[k] = v
	}
	return s, nil
}

// Since implements Bus.
func (b *MemoryBus) Since(ctx context.Context, stream, epoch string, since uint64) ([]Event, bool, error) {
	st, err := b.stream(stream, false)
	if err != nil {
		return nil, false, err
	}
	if st == nil {
		return nil, epoch == "" && since == 0, nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if epoch != st.epoch || since > st.seq {
		return nil, false, nil
	}
	if since == st.seq {
		return nil, true, nil
	}
	h := st.hist
	if len(h) > b.historySize {
		h = h[len(h)-b.historySize:]
	}
	if len(h) == 0 || h[0].Seq > since+1 {
		return nil, false, nil
	}
	i := sort.Search(len(h), func(i int) bool { return h[i].Seq > since })
	return append([]Event(nil), h[i:]...), true, nil
}

// Streams implements Bus.
func (b *MemoryBus) Streams(ctx context.Context) ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrBusClosed
	}
	out := make([]string, 0, len(b.streams))
	for name, st := range b.streams {
		st.mu.Lock()
		has := st.seq > 0
		st.mu.Unlock()
		if has {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Close implements Bus.
func (b *MemoryBus) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}
