// Chat moderation state: per-stream settings (on/off, slow mode, blocked
// words), bans, and per-viewer send budgets. In memory on one node; in
// Redis for a cluster, so that bans and rate limits hold on every node.

package showroom

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ChatSettings are a stream's chat settings.
type ChatSettings struct {
	Enabled      bool     `json:"enabled"`
	SlowS        int      `json:"slow_s"`
	BlockedWords []string `json:"blocked_words"`
}

// Ban modes.
const (
	BanMute   = "mute"   // the viewer's messages are refused (muted)
	BanShadow = "shadow" // the viewer's messages reach only the viewer
)

// ChatStore keeps the moderation state. Both implementations pass one
// conformance suite.
type ChatStore interface {
	// Settings returns the stream's settings (chat on, no slow mode, no
	// blocked words when never set).
	Settings(ctx context.Context, stream string) (ChatSettings, error)
	SetSettings(ctx context.Context, stream string, s ChatSettings) error
	// SetBan sets viewer's ban mode on stream ("" lifts it).
	SetBan(ctx context.Context, stream, viewer, mode string) error
	// Ban returns viewer's ban mode on stream ("" when none).
	Ban(ctx context.Context, stream, viewer string) (string, error)
	// Bans returns every ban on stream: viewer id → mode.
	Bans(ctx context.Context, stream string) (map[string]string, error)
	// Allow takes one message from viewer's budget on stream: a token
	// bucket of burst messages refilled one per every, and with slow > 0
	// at most one message per slow. false: refused (nothing taken).
	Allow(ctx context.Context, stream, viewer string, every time.Duration, burst int, slow time.Duration) (bool, error)
}

func defaultSettings() ChatSettings { return ChatSettings{Enabled: true, BlockedWords: []string{}} }

// MemoryChatStore is the ChatStore of a single node.
type MemoryChatStore struct {
	mu       sync.Mutex
	settings map[string]ChatSettings
	bans     map[string]map[string]string
	buckets  map[string]bucket // stream \x00 viewer
	swept    time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
	last   time.Time // last message taken (slow mode)
}

// NewMemoryChatStore returns an empty in-memory store.
func NewMemoryChatStore() *MemoryChatStore {
	return &MemoryChatStore{settings: map[string]ChatSettings{}, bans: map[string]map[string]string{}, buckets: map[string]bucket{}}
}

// Settings implements ChatStore.
func (m *MemoryChatStore) Settings(_ context.Context, stream string) (ChatSettings, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.settings[stream]
	if !ok {
		return defaultSettings(), nil
	}
	s.BlockedWords = append([]string{}, s.BlockedWords...)
	return s, nil
}

// SetSettings implements ChatStore.
func (m *MemoryChatStore) SetSettings(_ context.Context, stream string, s ChatSettings) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s.BlockedWords = append([]string{}, s.BlockedWords...)
	m.settings[stream] = s
	return nil
}

// SetBan implements ChatStore.
func (m *MemoryChatStore) SetBan(_ context.Context, stream, viewer, mode string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if mode == "" {
		delete(m.bans[stream], viewer)
		return nil
	}
	if m.bans[stream] == nil {
		m.bans[stream] = map[string]string{}
	}
	m.bans[stream][viewer] = mode
	return nil
}

// Ban implements ChatStore.
func (m *MemoryChatStore) Ban(_ context.Context, stream, viewer string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bans[stream][viewer], nil
}

// Bans implements ChatStore.
func (m *MemoryChatStore) Bans(_ context.Context, stream string) (map[string]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]string{}
	for v, mode := range m.bans[stream] {
		out[v] = mode
	}
	return out, nil
}

// Allow implements ChatStore.
func (m *MemoryChatStore) Allow(_ context.Context, stream, viewer string, every time.Duration, burst int, slow time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	k := stream + "\x00" + viewer
	b, ok := m.buckets[k]
	if !ok {
		b = bucket{tokens: float64(burst), at: now}
	}
	b.tokens = math.Min(float64(burst), b.tokens+now.Sub(b.at).Seconds()/every.Seconds())
	b.at = now
	if b.tokens < 1 || slow > 0 && !b.last.IsZero() && now.Sub(b.last) < slow {
		m.buckets[k] = b
		return false, nil
	}
	b.tokens--
	b.last = now
	m.buckets[k] = b
	// Full buckets are forgotten (at most once a minute, past 4096), so the
	// map holds only recent senders.
	if len(m.buckets) >= 4096 && now.Sub(m.swept) > time.Minute {
		m.swept = now
		for key, o := range m.buckets {
			if now.Sub(o.at) > time.Duration(burst)*every && now.Sub(o.last) > maxSlow {
				delete(m.buckets, key)
			}
		}
	}
	return true, nil
}

// RedisChatStore is the ChatStore of a cluster. Keys share the hash tag
// {<stream>}: streamd:chat:{s}:settings (JSON), :bans (hash viewer → mode),
// :rl:<viewer> (token bucket), :slow:<viewer> (slow mode).
type RedisChatStore struct{ c *redis.Client }

// NewRedisChatStore returns a store on c (c stays the caller's).
func NewRedisChatStore(c *redis.Client) *RedisChatStore { return &RedisChatStore{c: c} }

func chatKey(stream, what string) string { return "streamd:chat:{" + stream + "}:" + what }

// Settings implements ChatStore.
func (r *RedisChatStore) Settings(ctx context.Context, stream string) (ChatSettings, error) {
	v, err := r.c.Get(ctx, chatKey(stream, "settings")).Bytes()
	if errors.Is(err, redis.Nil) {
		return defaultSettings(), nil
	}
	if err != nil {
		return ChatSettings{}, fmt.Errorf("chat settings: %w", err)
	}
	s := defaultSettings()
	if err := json.Unmarshal(v, &s); err != nil {
		return ChatSettings{}, fmt.Errorf("chat settings: %w", err)
	}
	if s.BlockedWords == nil {
		s.BlockedWords = []string{}
	}
	return s, nil
}

// SetSettings implements ChatStore.
func (r *RedisChatStore) SetSettings(ctx context.Context, stream string, s ChatSettings) error {
	b, _ := json.Marshal(s)
	if err := r.c.Set(ctx, chatKey(stream, "settings"), b, 0).Err(); err != nil {
		return fmt.Errorf("chat settings: %w", err)
	}
	return nil
}

// SetBan implements ChatStore.
func (r *RedisChatStore) SetBan(ctx context.Context, stream, viewer, mode string) error {
	var err error
	if mode == "" {
		err = r.c.HDel(ctx, chatKey(stream, "bans"), viewer).Err()
	} else {
		err = r.c.HSet(ctx, chatKey(stream, "bans"), viewer, mode).Err()
	}
	if err != nil {
		return fmt.Errorf("chat ban: %w", err)
	}
	return nil
}

// Ban implements ChatStore.
func (r *RedisChatStore) Ban(ctx context.Context, stream, viewer string) (string, error) {
	v, err := r.c.HGet(ctx, chatKey(stream, "bans"), viewer).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("chat ban: %w", err)
	}
	return v, nil
}

// Bans implements ChatStore.
func (r *RedisChatStore) Bans(ctx context.Context, stream string) (map[string]string, error) {
	v, err := r.c.HGetAll(ctx, chatKey(stream, "bans")).Result()
	if err != nil {
		return nil, fmt.Errorf("chat bans: %w", err)
	}
	return v, nil
}

// allowScript is a token bucket (KEYS[1]) plus a slow-mode gate (KEYS[2]),
// on Redis' clock so that every node agrees.
var allowScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local every, burst, slow = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1]) or burst
local at = tonumber(b[2]) or now
tokens = math.min(burst, tokens + (now - at) / every)
if tokens < 1 then return 0 end
if slow > 0 and not redis.call('SET', KEYS[2], '1', 'NX', 'PX', slow) then return 0 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1), 'at', now)
redis.call('PEXPIRE', KEYS[1], every * burst + 1000)
return 1
`)

// Allow implements ChatStore.
func (r *RedisChatStore) Allow(ctx context.Context, stream, viewer string, every time.Duration, burst int, slow time.Duration) (bool, error) {
	n, err := allowScript.Run(ctx, r.c, []string{chatKey(stream, "rl:"+viewer), chatKey(stream, "slow:"+viewer)},
		every.Milliseconds(), strconv.Itoa(burst), slow.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("chat rate limit: %w", err)
	}
	return n == 1, nil
}
