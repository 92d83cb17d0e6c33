// RedisStore's orders with their idempotency records and indexes, and the
// ids of payment webhook events already handled.

package cart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

func (s *RedisStore) orderKey(id string) string { return s.prefix + "order:" + id }
func (s *RedisStore) idemKey(k string) string   { return s.prefix + "idem:" + hashKey(k) }

func (s *RedisStore) CreateOrder(ctx context.Context, o Order) (Order, bool, error) {
	b, err := json.Marshal(o)
	if err != nil {
		return Order{}, false, err
	}
	// The order is written before the idempotency record points at it, so a
	// record never names a missing order.
	if err := s.c.Set(ctx, s.orderKey(o.ID), b, 0).Err(); err != nil {
		return Order{}, false, fmt.Errorf("create order: %w", err)
	}
	if o.IdempotencyKey != "" {
		ok, err := s.c.SetNX(ctx, s.idemKey(o.IdempotencyKey), o.ID, 0).Result()
		if err != nil {
			return Order{}, false, fmt.Errorf("create order: %w", err)
		}
		if !ok {
			_ = s.c.Del(ctx, s.orderKey(o.ID)).Err()
			prev, err := s.OrderByKey(ctx, o.IdempotencyKey)
			return prev, false, err
		}
	}
	pipe := s.c.Pipeline()
	pipe.ZAdd(ctx, s.prefix+"orders", redis.Z{Score: float64(o.CreatedAt.UnixMilli()), Member: o.ID})
	if o.Stream != "" {
		pipe.ZAdd(ctx, s.prefix+"orders:stream:"+o.Stream, redis.Z{Score: float64(o.CreatedAt.UnixMilli()), Member: o.ID})
	}
	if o.Status == StatusPending {
		pipe.ZAdd(ctx, s.prefix+"pending", redis.Z{Score: float64(o.HoldExpiresAt.UnixMilli()), Member: o.ID})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return Order{}, false, fmt.Errorf("create order: %w", err)
	}
	return o, true, nil
}

func (s *RedisStore) GetOrder(ctx context.Context, id string) (Order, error) {
	var o Order
	if err := s.getJSON(ctx, s.orderKey(id), "order", &o); err != nil {
		return Order{}, err
	}
	return o, nil
}

func (s *RedisStore) OrderByKey(ctx context.Context, key string) (Order, error) {
	id, err := s.get(ctx, s.idemKey(key), "order by key")
	if err != nil {
		return Order{}, err
	}
	return s.GetOrder(ctx, string(id))
}

func (s *RedisStore) UpdateOrder(ctx context.Context, id string, fn func(*Order) error) (Order, error) {
	var out Order
	key := s.orderKey(id)
	for attempt := 0; attempt < 50; attempt++ {
		var ferr error
		err := s.c.Watch(ctx, func(tx *redis.Tx) error {
			raw, err := tx.Get(ctx, key).Bytes()
			if errors.Is(err, redis.Nil) {
				ferr = ErrNotFound
				return nil
			}
			if err != nil {
				return err
			}
			var o Order
			if err := json.Unmarshal(raw, &o); err != nil {
				return fmt.Errorf("decode order: %w", err)
			}
			if err := fn(&o); err != nil {
				ferr = err
				return nil
			}
			b, err := json.Marshal(o)
			if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
				pipe.Set(ctx, key, b, 0)
				return nil
			})
			out = o
			return err
		}, key)
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		if err != nil {
			return Order{}, fmt.Errorf("update order: %w", err)
		}
		if ferr != nil {
			return Order{}, ferr
		}
		if out.Status != StatusPending {
			_ = s.c.ZRem(ctx, s.prefix+"pending", id).Err()
		}
		return out, nil
	}
	return Order{}, fmt.Errorf("update order %s: too much contention", id)
}

func (s *RedisStore) ListOrders(ctx context.Context, stream string, limit int) ([]Order, error) {
	key := s.prefix + "orders"
	if stream != "" {
		key = s.prefix + "orders:stream:" + stream
	}
	stop := int64(-1)
	if limit > 0 {
		stop = int64(limit - 1)
	}
	ids, err := s.c.ZRevRange(ctx, key, 0, stop).Result()
	if err != nil {
		return nil, fmt.Errorf("list orders: %w", err)
	}
	// One pipelined round trip for all orders; ones gone or unreadable are left out.
	pipe := s.c.Pipeline()
	gets := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		gets[i] = pipe.Get(ctx, s.orderKey(id))
	}
	_, _ = pipe.Exec(ctx) // errors are per command
	out := make([]Order, 0, len(ids))
	for _, g := range gets {
		var o Order
		if raw, err := g.Bytes(); err == nil && json.Unmarshal(raw, &o) == nil {
			out = append(out, o)
		}
	}
	return out, nil
}

func (s *RedisStore) ExpiredOrders(ctx context.Context, now time.Time, limit int) ([]string, error) {
	ids, err := s.c.ZRangeByScore(ctx, s.prefix+"pending", &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10), Count: int64(limit)}).Result()
	if err != nil {
		return nil, fmt.Errorf("expired orders: %w", err)
	}
	return ids, nil
}

func (s *RedisStore) SeenEvent(ctx context.Context, id string) (bool, error) {
	n, err := s.c.Exists(ctx, s.prefix+"event:"+id).Result()
	return n > 0, err
}

func (s *RedisStore) MarkEvent(ctx context.Context, id string) error {
	// Stripe retries for 3 days; keep ids a week.
	return s.c.Set(ctx, s.prefix+"event:"+id, time.Now().UTC().Format(time.RFC3339), 7*24*time.Hour).Err()
}
