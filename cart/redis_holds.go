// RedisStore's inventory holds: the Lua scripts that reserve, commit,
// release and sweep atomically over one product's keys, and their callers.

package cart

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamd/streamd/internal/httpx"
)

const luaCommon = `
local function num(x) return tonumber(x or 0) or 0 end
local function undo(h)
  if h.st == 'committed' then
    redis.call('HINCRBY', KEYS[1], 'sold:'..h.sku, -h.q)
  else
    redis.call('HINCRBY', KEYS[1], 'held:'..h.sku, -h.q)
    redis.call('ZREM', KEYS[2], h.id)
  end
  if h.b ~= '' then
    if redis.call('HINCRBY', KEYS[4], h.b, -h.q) <= 0 then redis.call('HDEL', KEYS[4], h.b) end
  end
  if h.d ~= '' and redis.call('HGET', KEYS[5], 'id') == h.d then
    redis.call('HINCRBY', KEYS[5], 'used', -h.q)
    if h.b ~= '' then
      if redis.call('HINCRBY', KEYS[6], h.b, -h.q) <= 0 then redis.call('HDEL', KEYS[6], h.b) end
    end
  end
  redis.call('HDEL', KEYS[3], h.id)
end
local function sweep(now)
  local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 500)
  local n = 0
  for _, id in ipairs(ids) do
    local raw = redis.call('HGET', KEYS[3], id)
    if raw then
      local h = cjson.decode(raw)
      if h.st == 'held' then undo(h); n = n + 1 else redis.call('ZREM', KEYS[2], id) end
    else
      redis.call('ZREM', KEYS[2], id)
    end
  end
  return n
end
`

// KEYS: inv exp holds buyers deal dealbuyers; ARGV: hold, sku, qty, buyer, now ms, ttl ms, keep
var reserveScript = redis.NewScript(luaCommon + `
local hid, sku, qty, buyer = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local now, ttl = tonumber(ARGV[5]), tonumber(ARGV[6])
local active = redis.call('HGET', KEYS[1], 'active')
if not active then return {'not_found'} end
sweep(now)
if active ~= '1' then return {'inactive'} end
if sku == '' then
  local only = redis.call('HGET', KEYS[1], 'only_sku')
  if not only or only == '' then return {'sku_required'} end
  sku = only
end
local stock = redis.call('HGET', KEYS[1], 'stock:'..sku)
if not stock then return {'unknown_sku'} end
local oldraw = redis.call('HGET', KEYS[3], hid)
local old = nil
if oldraw then
  old = cjson.decode(oldraw)
  if old.st == 'committed' or ARGV[7] == '1' then return {'ok', oldraw} end
end
local d = redis.call('HMGET', KEYS[5], 'id', 'amount', 'currency', 'ends', 'cap', 'perbuyer', 'ttl', 'used')
local deal = d[1] and num(d[4]) > now
local oldq, olddq = 0, 0
if old then
  oldq = old.q
  if deal and old.d == d[1] then olddq = oldq end
end
local avail = num(stock) - num(redis.call('HGET', KEYS[1], 'held:'..sku)) - num(redis.call('HGET', KEYS[1], 'sold:'..sku)) + oldq
if qty > avail then return {'sold_out', math.max(avail, 0), 0, sku} end
local limit = num(redis.call('HGET', KEYS[1], 'limit'))
if limit > 0 and buyer ~= '' then
  local have = num(redis.call('HGET', KEYS[4], buyer)) - oldq
  if have + qty > limit then return {'limit', limit, have, 0} end
end
if deal then
  local cap, used = num(d[5]), num(d[8])
  if cap > 0 and used - olddq + qty > cap then return {'sold_out', math.max(cap - used + olddq, 0), 1, sku} end
  local pb = num(d[6])
  if pb > 0 and buyer ~= '' then
    local have = num(redis.call('HGET', KEYS[6], buyer)) - olddq
    if have + qty > pb then return {'limit', pb, have, 1} end
  end
  if num(d[7]) > 0 then ttl = num(d[7]) end
end
if old then undo(old) end
local h = {id = hid, st = 'held', sku = sku, q = qty, b = buyer, e = now + ttl, d = '',
  a = tonumber(redis.call('HGET', KEYS[1], 'price:'..sku) or redis.call('HGET', KEYS[1], 'price')),
  c = redis.call('HGET', KEYS[1], 'currency')}
redis.call('HINCRBY', KEYS[1], 'held:'..sku, qty)
if buyer ~= '' then redis.call('HINCRBY', KEYS[4], buyer, qty) end
if deal then
  h.d, h.a, h.c = d[1], tonumber(d[2]), d[3]
  redis.call('HINCRBY', KEYS[5], 'used', qty)
  if buyer ~= '' then redis.call('HINCRBY', KEYS[6], buyer, qty) end
end
local raw = cjson.encode(h)
redis.call('HSET', KEYS[3], hid, raw)
redis.call('ZADD', KEYS[2], h.e, hid)
return {'ok', raw}
`)

// ARGV: hold, now ms
var commitScript = redis.NewScript(luaCommon + `
local raw = redis.call('HGET', KEYS[3], ARGV[1])
if not raw then return {'gone'} end
local h = cjson.decode(raw)
if h.st == 'committed' then return {'ok', raw} end
if h.e <= tonumber(ARGV[2]) then undo(h); return {'gone'} end
redis.call('HINCRBY', KEYS[1], 'held:'..h.sku, -h.q)
redis.call('HINCRBY', KEYS[1], 'sold:'..h.sku, h.q)
redis.call('ZREM', KEYS[2], h.id)
h.st = 'committed'
raw = cjson.encode(h)
redis.call('HSET', KEYS[3], h.id, raw)
return {'ok', raw}
`)

// ARGV: hold
var releaseScript = redis.NewScript(luaCommon + `
local raw = redis.call('HGET', KEYS[3], ARGV[1])
if not raw then return 0 end
undo(cjson.decode(raw))
return 1
`)

// ARGV: now ms → {released, live holds}
var sweepScript = redis.NewScript(luaCommon + `
local n = sweep(tonumber(ARGV[1]))
return {n, redis.call('ZCARD', KEYS[2])}
`)

type redisHold struct {
	ID  string  `json:"id"`
	St  string  `json:"st"`
	SKU string  `json:"sku"`
	Q   int     `json:"q"`
	B   string  `json:"b"`
	E   float64 `json:"e"`
	D   string  `json:"d"`
	A   float64 `json:"a"`
	C   string  `json:"c"`
}

func decodeRedisHold(pid, raw string) (Hold, error) {
	var h redisHold
	if err := json.Unmarshal([]byte(raw), &h); err != nil {
		return Hold{}, fmt.Errorf("decode hold: %w", err)
	}
	return Hold{ID: h.ID, ProductID: pid, SKU: h.SKU, Quantity: h.Q, Buyer: h.B,
		ExpiresAt: time.UnixMilli(int64(h.E)), Committed: h.St == "committed", DealID: h.D,
		UnitPrice: Money{Amount: int64(h.A), Currency: h.C}}, nil
}

func (s *RedisStore) Reserve(ctx context.Context, r ReserveRequest) (_ Hold, err error) {
	defer httpx.MarkRedis(&err)
	res, err := reserveScript.Run(ctx, s.c, s.pkeys(r.ProductID)[:6], r.HoldID, r.SKU, r.Quantity, r.Buyer,
		r.Now.UnixMilli(), r.TTL.Milliseconds(), flag(r.Keep)).Slice()
	if err != nil {
		return Hold{}, fmt.Errorf("reserve: %w", err)
	}
	switch res[0].(string) {
	case "ok":
		return decodeRedisHold(r.ProductID, res[1].(string))
	case "not_found":
		return Hold{}, ErrNotFound
	case "inactive":
		return Hold{}, ErrInactive
	case "sku_required":
		return Hold{}, ErrSKURequired
	case "unknown_sku":
		return Hold{}, ErrUnknownSKU
	case "sold_out":
		return Hold{}, &SoldOutError{ProductID: r.ProductID, SKU: res[3].(string), Available: int(res[1].(int64)), Deal: res[2].(int64) == 1}
	case "limit":
		return Hold{}, &LimitError{ProductID: r.ProductID, Limit: int(res[1].(int64)), Have: int(res[2].(int64)), Deal: res[3].(int64) == 1}
	}
	return Hold{}, fmt.Errorf("reserve: unexpected script reply %v", res)
}

func (s *RedisStore) Commit(ctx context.Context, productID, holdID string, now time.Time) (_ Hold, err error) {
	defer httpx.MarkRedis(&err)
	res, err := commitScript.Run(ctx, s.c, s.pkeys(productID)[:6], holdID, now.UnixMilli()).Slice()
	if err != nil {
		return Hold{}, fmt.Errorf("commit: %w", err)
	}
	if res[0].(string) != "ok" {
		return Hold{}, ErrHoldGone
	}
	return decodeRedisHold(productID, res[1].(string))
}

func (s *RedisStore) Release(ctx context.Context, productID, holdID string) (_ bool, err error) {
	defer httpx.MarkRedis(&err)
	n, err := releaseScript.Run(ctx, s.c, s.pkeys(productID)[:6], holdID).Int()
	if err != nil {
		return false, fmt.Errorf("release: %w", err)
	}
	return n == 1, nil
}

func (s *RedisStore) Sweep(ctx context.Context, now time.Time) (_ []string, _ int, err error) {
	defer httpx.MarkRedis(&err)
	ids, err := s.c.SMembers(ctx, s.prefix+"products").Result()
	if err != nil {
		return nil, 0, fmt.Errorf("sweep: %w", err)
	}
	var changed []string
	active := 0
	for _, id := range ids {
		res, err := sweepScript.Run(ctx, s.c, s.pkeys(id)[:6], now.UnixMilli()).Int64Slice()
		if err != nil {
			return changed, active, fmt.Errorf("sweep %s: %w", id, err)
		}
		if res[0] > 0 {
			changed = append(changed, id)
		}
		active += int(res[1])
	}
	sort.Strings(changed) // as bbolt reports them
	return changed, active, nil
}
