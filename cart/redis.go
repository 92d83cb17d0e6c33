package cart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// RedisStore is the Store on Redis for several nodes. Every reserve, commit
// and release is one Lua script over the keys of one product, which share
// the hash tag {productID} (Redis Cluster safe):
//
//	streamd:cart:{p}:def        product definition (JSON, without counters)
//	streamd:cart:{p}:inv        hash: active, price, currency, limit, stock:<sku>, held:<sku>, sold:<sku>,
//	                                  price:<sku> (a variant's own price, when it has one)
//	streamd:cart:{p}:exp        zset: hold id → expiry (ms)
//	streamd:cart:{p}:holds      hash: hold id → hold JSON
//	streamd:cart:{p}:buyers     hash: buyer → units held or sold
//	streamd:cart:{p}:deal       hash: id, amount, currency, ends, cap, perbuyer, ttl, used
//	streamd:cart:{p}:dealbuyers hash: buyer → units at the current deal
//	streamd:cart:{p}:emails     hash: sha256(email) or dealID:sha256(email) → units ordered
//
// Orders, idempotency records, carts and events are single keys.
// Durability is that of the Redis server (AOF everysec loses up to ~1 s).
type RedisStore struct {
	c      *redis.Client
	prefix string
}

// NewRedisStore uses c with keys under "streamd:cart:".
func NewRedisStore(c *redis.Client) *RedisStore {
	return &RedisStore{c: c, prefix: "streamd:cart:"}
}

func (s *RedisStore) pkeys(pid string) []string {
	b := s.prefix + "{" + pid + "}:"
	return []string{b + "inv", b + "exp", b + "holds", b + "buyers", b + "deal", b + "dealbuyers", b + "def"}
}

// get reads a single key; ErrNotFound when it is missing.
func (s *RedisStore) get(ctx context.Context, key, op string) ([]byte, error) {
	raw, err := s.c.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return raw, nil
}

// getJSON reads a single key holding the JSON of a what (cart, order) into v.
func (s *RedisStore) getJSON(ctx context.Context, key, what string, v any) error {
	raw, err := s.get(ctx, key, "get "+what)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode %s: %w", what, err)
	}
	return nil
}
