package overlay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis keys of a stream share the hash tag {<stream>} so the scripts run on
// Redis Cluster too:
//
//	streamd:overlay:{s}:seq    last seq (INCR)
//	streamd:overlay:{s}:epoch  epoch, regenerated when seq is missing
//	streamd:overlay:{s}:hist   Redis Stream, IDs "<seq>-0", MAXLEN historySize
//	streamd:overlay:{s}:state  hash: live, card, card_id
//	streamd:overlay:{s}:stock  hash: product id -> available (bounded)
//	streamd:overlay:{s}:chat   list: "<id> <audience> <message>", newest first (MaxChatPerStream)
//	streamd:overlay:{s}:react  hash: emoji -> pending taps; react_gate: one reactions event per period
//	streamd:overlay:streams    set of streams with state (outside the scripts)
//
// Delivery is PUBLISH on "streamd:overlay:{s}:events:<db>" (channels are not
// per DB in Redis, so the DB number keeps deployments/tests apart), payload
// "<epoch> <seq> <type> <len(key)> <len(audience)> <key><audience><data>".
const redisStreamsKey = "streamd:overlay:streams"

// luaPublish is the part of the publishing scripts that assigns the seq,
// keeps the event in the history and delivers it (KEYS as streamKeys).
const luaPublish = `
local function publish(newEpoch, typ, rest, histSize, channel, key, aud)
  local epoch = redis.call('GET', KEYS[2])
  if redis.call('EXISTS', KEYS[1]) == 0 or not epoch then
    epoch = newEpoch
    redis.call('SET', KEYS[2], epoch)
    redis.call('SET', KEYS[1], 0)
    redis.call('DEL', KEYS[3], KEYS[6])
  end
  local seq = redis.call('INCR', KEYS[1])
  local data = '{"type":"' .. typ .. '","seq":' .. seq .. ',' .. rest
  redis.call('XADD', KEYS[3], 'MAXLEN', histSize, seq .. '-0', 'd', data, 't', typ, 'k', key, 'a', aud)
  redis.call('PUBLISH', channel, epoch .. ' ' .. seq .. ' ' .. typ .. ' ' .. string.len(key) .. ' ' .. string.len(aud) .. ' ' .. key .. aud .. data)
  return seq, epoch, data
end
`

// ARGV: new epoch, type, rest, history size, channel, key, change kind,
// change args a1 a2, max stock, audience, max chat.
var publishScript = redis.NewScript(luaPublish + `
local seq, epoch, data = publish(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[11])
local kind = ARGV[7]
if kind == 'card' then
  redis.call('HSET', KEYS[4], 'card', ARGV[8], 'card_id', ARGV[9])
elseif kind == 'hide' then
  redis.call('HDEL', KEYS[4], 'card', 'card_id')
elseif kind == 'live' then
  redis.call('HSET', KEYS[4], 'live', ARGV[8])
elseif kind == 'stock' then
  if redis.call('HEXISTS', KEYS[5], ARGV[8]) == 1 or redis.call('HLEN', KEYS[5]) < tonumber(ARGV[10]) then
    redis.call('HSET', KEYS[5], ARGV[8], ARGV[9])
  end
elseif kind == 'chat' then
  redis.call('LPUSH', KEYS[6], ARGV[8] .. ' ' .. ARGV[11] .. ' ' .. data)
  redis.call('LTRIM', KEYS[6], 0, tonumber(ARGV[12]) - 1)
elseif kind == 'chatdel' then
  local prefix = ARGV[8] .. ' '
  for _, e in ipairs(redis.call('LRANGE', KEYS[6], 0, -1)) do
    if string.sub(e, 1, string.len(prefix)) == prefix then redis.call('LREM', KEYS[6], 1, e) end
  end
  if redis.call('HGET', KEYS[4], 'pin_id') == ARGV[8] then redis.call('HDEL', KEYS[4], 'pin', 'pin_id') end
elseif kind == 'pin' then
  if ARGV[8] == '' then redis.call('HDEL', KEYS[4], 'pin', 'pin_id')
  else redis.call('HSET', KEYS[4], 'pin', ARGV[8], 'pin_id', ARGV[9]) end
elseif kind == 'chatmode' then
  redis.call('HSET', KEYS[4], 'chat_mode', ARGV[8])
end
return {seq, epoch}
`)

var stateScript = redis.NewScript(`
local epoch = redis.call('GET', KEYS[2]) or ''
local seq = redis.call('GET', KEYS[1]) or '0'
return {epoch, seq, redis.call('HGETALL', KEYS[4]), redis.call('HGETALL', KEYS[5]), redis.call('LRANGE', KEYS[6], 0, -1)}
`)

var sinceScript = redis.NewScript(`
local epoch = redis.call('GET', KEYS[2]) or ''
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
local since = tonumber(ARGV[2])
if epoch ~= ARGV[1] or since > seq then return {epoch, seq, 0} end
if since == seq then return {epoch, seq, 1, {}} end
local first = (since + 1) .. '-0'
local r = redis.call('XRANGE', KEYS[3], first, '+', 'COUNT', ARGV[3])
if #r == 0 or r[1][1] ~= first then return {epoch, seq, 0} end
return {epoch, seq, 1, r}
`)

// RedisBus is the Bus for several nodes sharing one Redis.
type RedisBus struct {
	c           *redis.Client
	historySize int
	log         *slog.Logger
	ps          *redis.PubSub
	ctx         context.Context
	cancel      context.CancelFunc
	wg          sync.WaitGroup

	pongs atomic.Uint64 // PONGs received on the subscription (Health)

	mu     sync.Mutex // guards subs, known, closed; held across (UN)SUBSCRIBE to keep their order
	subs   map[string]*rsub
	known  map[string]bool
	closed bool
}

type rsub struct {
	stream string
	fns    map[uint64]func(Event)
	list   []func(Event) // copy of fns, rebuilt under RedisBus.mu
	nextID uint64
	ready  chan struct{}
	// used by the receive goroutine only
	init    bool
	epoch   string
	lastSeq uint64
}

// NewRedisBus returns a Bus on c keeping historySize events per stream
// (<= 0: 1024). It starts one goroutine for its subscription connection;
// Close stops it (c itself stays open: it belongs to the caller).
func NewRedisBus(c *redis.Client, historySize int) *RedisBus {
	if historySize <= 0 {
		historySize = defaultHistorySize
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &RedisBus{
		c: c, historySize: historySize, log: slog.New(slog.DiscardHandler),
		ctx: ctx, cancel: cancel,
		subs: map[string]*rsub{}, known: map[string]bool{},
	}
	b.ps = c.Subscribe(ctx)
	b.wg.Add(1)
	go b.receive()
	return b
}

// SetLogger sets the logger (nil: discard). Call before use.
func (b *RedisBus) SetLogger(l *slog.Logger) {
	if l != nil {
		b.log = l
	}
}

func keyPrefix(stream string) string { return "streamd:overlay:{" + stream + "}:" }

func streamKeys(stream string) []string {
	p := keyPrefix(stream)
	return []string{p + "seq", p + "epoch", p + "hist", p + "state", p + "stock", p + "chat", p + "react", p + "react_gate"}
}

func (b *RedisBus) channel(stream string) string {
	return keyPrefix(stream) + "events:" + strconv.Itoa(b.c.Options().DB)
}

// Publish implements Bus.
func (b *RedisBus) Publish(ctx context.Context, stream string, p Publication) (Event, error) {
	if b.ctx.Err() != nil {
		return Event{}, ErrBusClosed
	}
	kind, a1, a2 := "", "", ""
	switch c := p.Change; c.Kind {
	case SetCard:
		kind, a1, a2 = "card", string(c.Card), c.CardID
	case ClearCard:
		kind = "hide"
	case SetLive:
		kind, a1 = "live", "0"
		if c.Live {
			a1 = "1"
		}
	case SetStock:
		kind, a1, a2 = "stock", c.ProductID, strconv.Itoa(c.Available)
	case AddChat:
		kind, a1 = "chat", c.ChatID
	case DelChat:
		kind, a1 = "chatdel", c.ChatID
	case SetPin:
		kind, a1, a2 = "pin", string(c.Pin), c.ChatID
	case SetChatMode:
		kind, a1 = "chatmode", string(c.ChatMode)
	}
	res, err := publishScript.Run(ctx, b.c, streamKeys(stream),
		newID(), p.Type, p.Rest, b.historySize, b.channel(stream), p.Key, kind, a1, a2, MaxStockPerStream, p.Audience, MaxChatPerStream).Slice()
	if err != nil {
		return Event{}, fmt.Errorf("overlay: redis publish: %w", err)
	}
	if len(res) != 2 {
		return Event{}, fmt.Errorf("overlay: redis publish: unexpected reply %v", res)
	}
	seq, _ := res[0].(int64)
	epoch, _ := res[1].(string)
	if err := b.remember(ctx, stream, seq); err != nil {
		return Event{}, err
	}
	return Event{Stream: stream, Type: p.Type, Seq: uint64(seq), Epoch: epoch, Key: p.Key, Audience: p.Audience, Data: buildData(p.Type, uint64(seq), p.Rest)}, nil
}

// remember adds stream to the set of streams with state.
func (b *RedisBus) remember(ctx context.Context, stream string, seq int64) error {
	b.mu.Lock()
	known := b.known[stream]
	b.known[stream] = true
	b.mu.Unlock()
	if !known || seq == 1 {
		if err := b.c.SAdd(ctx, redisStreamsKey, stream).Err(); err != nil {
			b.mu.Lock()
			delete(b.known, stream)
			b.mu.Unlock()
			return fmt.Errorf("overlay: redis sadd: %w", err)
		}
	}
	return nil
}

// State implements Bus.
func (b *RedisBus) State(ctx context.Context, stream string) (State, error) {
	res, err := stateScript.Run(ctx, b.c, streamKeys(stream)).Slice()
	if err != nil {
		return State{}, fmt.Errorf("overlay: redis state: %w", err)
	}
	if len(res) != 5 {
		return State{}, fmt.Errorf("overlay: redis state: unexpected reply %v", res)
	}
	st := State{Stock: map[string]int{}}
	st.Epoch, _ = res[0].(string)
	seqS, _ := res[1].(string)
	st.Seq, _ = strconv.ParseUint(seqS, 10, 64)
	kv := func(v any, f func(k, v string)) {
		arr, _ := v.([]any)
		for i := 0; i+1 < len(arr); i += 2 {
			k, _ := arr[i].(string)
			val, _ := arr[i+1].(string)
			f(k, val)
		}
	}
	kv(res[2], func(k, v string) {
		switch k {
		case "live":
			st.Live = v == "1"
		case "card":
			st.Card = []byte(v)
		case "card_id":
			st.CardID = v
		case "pin":
			st.Pin = []byte(v)
		case "pin_id":
			st.PinID = v
		case "chat_mode":
			st.ChatMode = []byte(v)
		}
	})
	chat, _ := res[4].([]any)
	for i := len(chat) - 1; i >= 0; i-- { // newest first in Redis
		e, _ := chat[i].(string)
		id, rest, ok1 := strings.Cut(e, " ")
		aud, data, ok2 := strings.Cut(rest, " ")
		if ok1 && ok2 {
			st.Chat = append(st.Chat, ChatEntry{ID: id, Audience: aud, Data: []byte(data)})
		}
	}
	kv(res[3], func(k, v string) {
		if n, err := strconv.Atoi(v); err == nil {
			st.Stock[k] = n
		}
	})
	return st, nil
}

// Since implements Bus.
func (b *RedisBus) Since(ctx context.Context, stream, epoch string, since uint64) ([]Event, bool, error) {
	res, err := sinceScript.Run(ctx, b.c, streamKeys(stream), epoch, since, b.historySize+1).Slice()
	if err != nil {
		return nil, false, fmt.Errorf("overlay: redis since: %w", err)
	}
	if len(res) < 3 {
		return nil, false, fmt.Errorf("overlay: redis since: unexpected reply %v", res)
	}
	curEpoch, _ := res[0].(string)
	if ok, _ := res[2].(int64); ok != 1 {
		return nil, false, nil
	}
	if len(res) < 4 {
		return nil, true, nil
	}
	entries, _ := res[3].([]any)
	out := make([]Event, 0, len(entries))
	for _, e := range entries {
		pair, _ := e.([]any)
		if len(pair) != 2 {
			return nil, false, fmt.Errorf("overlay: redis since: bad entry %v", e)
		}
		id, _ := pair[0].(string)
		seq, err := strconv.ParseUint(strings.TrimSuffix(id, "-0"), 10, 64)
		if err != nil {
			return nil, false, fmt.Errorf("overlay: redis since: bad id %q", id)
		}
		ev := Event{Stream: stream, Seq: seq, Epoch: curEpoch}
		fields, _ := pair[1].([]any)
		for i := 0; i+1 < len(fields); i += 2 {
			k, _ := fields[i].(string)
			v, _ := fields[i+1].(string)
			switch k {
			case "d":
				ev.Data = []byte(v)
			case "t":
				ev.Type = v
			case "k":
				ev.Key = v
			case "a":
				ev.Audience = v
			}
		}
		out = append(out, ev)
	}
	return out, true, nil
}

// Streams implements Bus.
func (b *RedisBus) Streams(ctx context.Context) ([]string, error) {
	s, err := b.c.SMembers(ctx, redisStreamsKey).Result()
	if err != nil {
		return nil, fmt.Errorf("overlay: redis streams: %w", err)
	}
	return s, nil
}

// Subscribe implements Bus. It returns once Redis confirmed the
// subscription, so every event published afterwards is delivered.
func (b *RedisBus) Subscribe(ctx context.Context, stream string, fn func(Event)) (func(), error) {
	ch := b.channel(stream)
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrBusClosed
	}
	sub := b.subs[ch]
	if sub == nil {
		sub = &rsub{stream: stream, fns: map[uint64]func(Event){}, ready: make(chan struct{})}
		b.subs[ch] = sub
		if err := b.ps.Subscribe(ctx, ch); err != nil {
			delete(b.subs, ch)
			b.mu.Unlock()
			return nil, fmt.Errorf("overlay: redis subscribe: %w", err)
		}
	}
	sub.nextID++
	id := sub.nextID
	sub.fns[id] = fn
	sub.rebuild()
	ready := sub.ready
	b.mu.Unlock()

	var once sync.Once
	cancel := func() {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			delete(sub.fns, id)
			sub.rebuild()
			if len(sub.fns) == 0 && b.subs[ch] == sub {
				delete(b.subs, ch)
				if !b.closed {
					uctx, c := context.WithTimeout(context.Background(), 2*time.Second)
					_ = b.ps.Unsubscribe(uctx, ch)
					c()
				}
			}
		})
	}
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-ready:
		return cancel, nil
	case <-ctx.Done():
		cancel()
		return nil, fmt.Errorf("overlay: redis subscribe: %w", ctx.Err())
	case <-t.C:
		cancel()
		return nil, errors.New("overlay: redis subscribe: no confirmation from redis")
	case <-b.ctx.Done():
		cancel()
		return nil, ErrBusClosed
	}
}

func (s *rsub) rebuild() {
	s.list = s.list[:0:0]
	for _, fn := range s.fns {
		s.list = append(s.list, fn)
	}
}

func (b *RedisBus) receive() {
	defer b.wg.Done()
	for {
		msg, err := b.ps.ReceiveTimeout(b.ctx, 20*time.Second)
		if b.ctx.Err() != nil {
			return
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				_ = b.ps.Ping(b.ctx)
				continue
			}
			b.log.Warn("overlay: redis subscription", "err", err)
			select {
			case <-b.ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Pong:
			b.pongs.Add(1)
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				b.onSubscribed(m.Channel)
			}
		case *redis.Message:
			b.onMessage(m.Channel, m.Payload)
		}
	}
}

func (b *RedisBus) sub(ch string) (*rsub, []func(Event)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.subs[ch]
	if s == nil {
		return nil, nil
	}
	return s, s.list
}

// onSubscribed runs on every subscribe confirmation, also after the
// connection to Redis was re-established: it catches up what was missed.
func (b *RedisBus) onSubscribed(ch string) {
	s, fns := b.sub(ch)
	if s == nil {
		return
	}
	keys := streamKeys(s.stream)
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	vals, err := b.c.MGet(ctx, keys[0], keys[1]).Result()
	if err != nil {
		b.log.Warn("overlay: redis subscribe state", "stream", s.stream, "err", err)
		if !s.init {
			// Not confirmed; the subscriber's first event gap-fills.
			s.init = true
			close(s.ready)
		}
		return
	}
	seqS, _ := vals[0].(string)
	epoch, _ := vals[1].(string)
	seq, _ := strconv.ParseUint(seqS, 10, 64)
	if !s.init {
		s.init, s.epoch, s.lastSeq = true, epoch, seq
		close(s.ready)
		return
	}
	if epoch != s.epoch {
		s.epoch, s.lastSeq = epoch, seq
		for _, fn := range fns {
			fn(Event{Stream: s.stream, Reset: true})
		}
		return
	}
	if seq > s.lastSeq {
		b.fill(s, fns, seq)
	}
}

func (b *RedisBus) onMessage(ch, payload string) {
	s, fns := b.sub(ch)
	if s == nil || !s.init {
		return
	}
	ev, ok := parsePayload(s.stream, payload)
	if !ok {
		b.log.Warn("overlay: bad redis payload", "channel", ch)
		return
	}
	if ev.Epoch != s.epoch {
		if s.epoch == "" && s.lastSeq == 0 {
			s.epoch = ev.Epoch // the stream's first publications
		} else {
			s.epoch, s.lastSeq = ev.Epoch, ev.Seq
			for _, fn := range fns {
				fn(Event{Stream: s.stream, Reset: true})
			}
			return
		}
	}
	if ev.Seq <= s.lastSeq {
		return
	}
	if ev.Seq > s.lastSeq+1 {
		b.fill(s, fns, ev.Seq)
		return
	}
	s.lastSeq = ev.Seq
	for _, fn := range fns {
		fn(ev)
	}
}

// fill delivers the events after s.lastSeq from the history (at least up
// to upTo), or a Reset when the history no longer reaches back.
func (b *RedisBus) fill(s *rsub, fns []func(Event), upTo uint64) {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	evs, ok, err := b.Since(ctx, s.stream, s.epoch, s.lastSeq)
	if err == nil && ok && len(evs) > 0 && evs[len(evs)-1].Seq >= upTo {
		for _, ev := range evs {
			s.lastSeq = ev.Seq
			for _, fn := range fns {
				fn(ev)
			}
		}
		return
	}
	if err != nil {
		b.log.Warn("overlay: redis gap fill", "stream", s.stream, "err", err)
	}
	if st, err := b.State(ctx, s.stream); err == nil {
		s.epoch, s.lastSeq = st.Epoch, st.Seq
	} else {
		s.lastSeq = upTo
	}
	for _, fn := range fns {
		fn(Event{Stream: s.stream, Reset: true})
	}
}

func parsePayload(stream, p string) (Event, bool) {
	ev := Event{Stream: stream}
	var f [5]string
	for i := range f {
		j := strings.IndexByte(p, ' ')
		if j < 0 {
			return ev, false
		}
		f[i], p = p[:j], p[j+1:]
	}
	seq, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return ev, false
	}
	kl, err1 := strconv.Atoi(f[3])
	al, err2 := strconv.Atoi(f[4])
	if err1 != nil || err2 != nil || kl < 0 || al < 0 || kl+al > len(p) {
		return ev, false
	}
	ev.Epoch, ev.Seq, ev.Type = f[0], seq, f[2]
	ev.Key, ev.Audience, ev.Data = p[:kl], p[kl:kl+al], []byte(p[kl+al:])
	return ev, true
}

// Close implements Bus: it stops the subscription goroutine.
func (b *RedisBus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	b.cancel()
	err := b.ps.Close()
	b.wg.Wait()
	return err
}
