// RedisStore's orders with their idempotency records and indexes, and the
// ids of payment webhook events already handled.

package cart

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamd/streamd/internal/httpx"
)

func (s *RedisStore) orderKey(id string) string { return s.prefix + "order:" + id }
func (s *RedisStore) idemKey(k string) string   { return s.prefix + "idem:" + hashKey(k) }

// createOrderScript writes an order, its idempotency record and its index
// entries in one atomic step: there is never an order that the index, the
// sweeper or a retry with the same key cannot find.
// Each hold is claimed by the order: two orders never share a hold.
// The email's per-buyer counts take the order's units, each within its
// limit, or the order is refused whole.
// KEYS: order, idem, orders, orders:stream:<s>, pending, claim:<hold>...
// (ARGV[8] of them), then an email counter hash per email claim
// ARGV: id, order JSON, created ms, hold expiry ms, pending?, keyed?,
// stream?, holds, then field, units, limit per email claim
// → {1} created, {0, id} the key names an order already, {-1} the id
// exists, {-2, id} a hold is another order's, {-3, i, have} email claim i
// (from 1) is past its limit.
var createOrderScript = redis.NewScript(`
if ARGV[6] == '1' then
  local prev = redis.call('GET', KEYS[2])
  if prev then return {0, prev} end
end
if redis.call('EXISTS', KEYS[1]) == 1 then return {-1} end
local last = 5 + tonumber(ARGV[8])
for i = 6, last do
  local c = redis.call('GET', KEYS[i])
  if c and c ~= ARGV[1] then return {-2, c} end
end
for j = 1, #KEYS - last do
  local a = 8 + 3 * (j - 1)
  local have = tonumber(redis.call('HGET', KEYS[last + j], ARGV[a + 1]) or 0)
  if have + tonumber(ARGV[a + 2]) > tonumber(ARGV[a + 3]) then return {-3, j, have} end
end
for i = 6, last do redis.call('SET', KEYS[i], ARGV[1]) end
for j = 1, #KEYS - last do
  local a = 8 + 3 * (j - 1)
  redis.call('HINCRBY', KEYS[last + j], ARGV[a + 1], ARGV[a + 2])
end
redis.call('SET', KEYS[1], ARGV[2])
if ARGV[6] == '1' then redis.call('SET', KEYS[2], ARGV[1]) end
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
if ARGV[7] == '1' then redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1]) end
if ARGV[5] == '1' then redis.call('ZADD', KEYS[5], ARGV[4], ARGV[1]) end
return {1}
`)

// releaseEmailsScript gives an order's email claims back; it runs in the
// MULTI that ends the order. KEYS: a counter hash per claim; ARGV: field,
// units per claim.
var releaseEmailsScript = redis.NewScript(`
for i = 1, #KEYS do
  if redis.call('HINCRBY', KEYS[i], ARGV[2 * i - 1], -tonumber(ARGV[2 * i])) <= 0 then
    redis.call('HDEL', KEYS[i], ARGV[2 * i - 1])
  end
end
return 0
`)

// emailCounter is the hash and field that count an email claim: the
// product's {pid}:emails, field sha256(email) or dealID:sha256(email).
func (s *RedisStore) emailCounter(c emailClaim) (key, field string) {
	key = s.prefix + "{" + c.ProductID + "}:emails"
	if c.DealID == "" {
		return key, c.Email
	}
	return key, c.DealID + ":" + c.Email
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func (s *RedisStore) CreateOrder(ctx context.Context, o Order) (_ Order, _ bool, err error) {
	defer httpx.MarkRedis(&err)
	b, err := encodeOrder(o)
	if err != nil {
		return Order{}, false, err
	}
	keys := []string{s.orderKey(o.ID), s.idemKey(o.IdempotencyKey), s.prefix + "orders",
		s.prefix + "orders:stream:" + o.Stream, s.prefix + "pending"}
	for _, it := range o.Items {
		keys = append(keys, s.prefix+"claim:"+it.ProductID+"\x00"+it.HoldID)
	}
	args := []any{o.ID, b, o.CreatedAt.UnixMilli(), o.HoldExpiresAt.UnixMilli(),
		flag(o.Status == StatusPending), flag(o.IdempotencyKey != ""), flag(o.Stream != ""), len(o.Items)}
	for _, c := range o.emailClaims {
		k, f := s.emailCounter(c)
		keys = append(keys, k)
		args = append(args, f, c.Units, c.Limit)
	}
	res, err := createOrderScript.Run(ctx, s.c, keys, args...).Slice()
	if err != nil {
		return Order{}, false, fmt.Errorf("create order: %w", err)
	}
	switch res[0].(int64) {
	case 1:
		return o, true, nil
	case 0:
		prev, err := s.GetOrder(ctx, res[1].(string))
		return prev, false, err
	case -2:
		return Order{}, false, fmt.Errorf("a hold of order %s: %w", res[1], ErrHoldClaimed)
	case -3:
		return Order{}, false, fmt.Errorf("create order: %w", emailLimitError(o.emailClaims[res[1].(int64)-1], int(res[2].(int64))))
	}
	return Order{}, false, fmt.Errorf("order %s: %w", o.ID, ErrExists)
}

func (s *RedisStore) GetOrder(ctx context.Context, id string) (_ Order, err error) {
	defer httpx.MarkRedis(&err)
	raw, err := s.get(ctx, s.orderKey(id), "get order")
	if err != nil {
		return Order{}, err
	}
	return decodeOrder(raw)
}

func (s *RedisStore) OrderByKey(ctx context.Context, key string) (_ Order, err error) {
	defer httpx.MarkRedis(&err)
	id, err := s.get(ctx, s.idemKey(key), "order by key")
	if err != nil {
		return Order{}, err
	}
	return s.GetOrder(ctx, string(id))
}

func (s *RedisStore) UpdateOrder(ctx context.Context, id string, fn func(*Order) error) (_ Order, err error) {
	defer httpx.MarkRedis(&err)
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
			o, err := decodeOrder(raw)
			if err != nil {
				return err
			}
			was := o.Status
			if err := fn(&o); err != nil {
				ferr = err
				return nil
			}
			b, err := encodeOrder(o)
			if err != nil {
				return err
			}
			// The pending index changes in the same transaction as the
			// order: a paid order is never swept as if still pending.
			_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
				pipe.Set(ctx, key, b, 0)
				if o.Status != StatusPending {
					pipe.ZRem(ctx, s.prefix+"pending", id)
				}
				// So do the email's per-buyer counts: given back once,
				// when the order ends unpaid.
				if releasesEmail(was, o.Status) && len(o.emailClaims) > 0 {
					keys := make([]string, len(o.emailClaims))
					args := make([]any, 0, 2*len(o.emailClaims))
					for i, c := range o.emailClaims {
						k, f := s.emailCounter(c)
						keys[i] = k
						args = append(args, f, c.Units)
					}
					releaseEmailsScript.Eval(ctx, pipe, keys, args...)
				}
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
		return out, nil
	}
	return Order{}, fmt.Errorf("update order %s: too much contention", id)
}

func (s *RedisStore) ListOrders(ctx context.Context, stream string, limit int) (_ []Order, err error) {
	defer httpx.MarkRedis(&err)
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
		if raw, err := g.Bytes(); err == nil {
			if o, err := decodeOrder(raw); err == nil {
				out = append(out, o)
			}
		}
	}
	return out, nil
}

func (s *RedisStore) ExpiredOrders(ctx context.Context, now time.Time, limit int) (_ []string, err error) {
	defer httpx.MarkRedis(&err)
	ids, err := s.c.ZRangeByScore(ctx, s.prefix+"pending", &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10), Count: int64(limit)}).Result()
	if err != nil {
		return nil, fmt.Errorf("expired orders: %w", err)
	}
	sort.Strings(ids) // as bbolt returns them
	return ids, nil
}

func (s *RedisStore) SeenEvent(ctx context.Context, id string) (_ bool, err error) {
	defer httpx.MarkRedis(&err)
	n, err := s.c.Exists(ctx, s.prefix+"event:"+id).Result()
	return n > 0, err
}

func (s *RedisStore) MarkEvent(ctx context.Context, id string) (err error) {
	defer httpx.MarkRedis(&err)
	// Stripe retries for 3 days; keep ids a week.
	return s.c.Set(ctx, s.prefix+"event:"+id, time.Now().UTC().Format(time.RFC3339), 7*24*time.Hour).Err()
}
