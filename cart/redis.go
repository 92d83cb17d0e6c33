package cart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisStore is the Store on Redis for several nodes. Every reserve, commit
// and release is one Lua script over the keys of one product, which share
// the hash tag {productID} (Redis Cluster safe):
//
//	streamd:cart:{p}:def        product definition (JSON, without counters)
//	streamd:cart:{p}:inv        hash: active, price, currency, limit, stock:<sku>, held:<sku>, sold:<sku>
//	streamd:cart:{p}:exp        zset: hold id → expiry (ms)
//	streamd:cart:{p}:holds      hash: hold id → hold JSON
//	streamd:cart:{p}:buyers     hash: buyer → units held or sold
//	streamd:cart:{p}:deal       hash: id, amount, currency, ends, cap, perbuyer, ttl, used
//	streamd:cart:{p}:dealbuyers hash: buyer → units at the current deal
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

// KEYS: inv exp holds buyers deal dealbuyers; ARGV: hold, sku, qty, buyer, now ms, ttl ms
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
  if old.st == 'committed' then return {'ok', oldraw} end
end
local d = redis.call('HMGET', KEYS[5], 'id', 'amount', 'currency', 'ends', 'cap', 'perbuyer', 'ttl', 'used')
local deal = d[1] and num(d[4]) > now
local oldq, olddq = 0, 0
if old then
  oldq = old.q
  if deal and old.d == d[1] then olddq = oldq end
end
local avail = num(stock) - num(redis.call('HGET', KEYS[1], 'held:'..sku)) - num(redis.call('HGET', KEYS[1], 'sold:'..sku)) + oldq
if qty > avail then return {'sold_out', math.max(avail, 0), 0} end
local limit = num(redis.call('HGET', KEYS[1], 'limit'))
if limit > 0 and buyer ~= '' then
  local have = num(redis.call('HGET', KEYS[4], buyer)) - oldq
  if have + qty > limit then return {'limit', limit, have, 0} end
end
if deal then
  local cap, used = num(d[5]), num(d[8])
  if cap > 0 and used - olddq + qty > cap then return {'sold_out', math.max(cap - used + olddq, 0), 1} end
  local pb = num(d[6])
  if pb > 0 and buyer ~= '' then
    local have = num(redis.call('HGET', KEYS[6], buyer)) - olddq
    if have + qty > pb then return {'limit', pb, have, 1} end
  end
  if num(d[7]) > 0 then ttl = num(d[7]) end
end
if old then undo(old) end
local h = {id = hid, st = 'held', sku = sku, q = qty, b = buyer, e = now + ttl, d = '',
  a = tonumber(redis.call('HGET', KEYS[1], 'price')), c = redis.call('HGET', KEYS[1], 'currency')}
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

func (s *RedisStore) CreateProduct(ctx context.Context, p Product) error {
	p.Deal = nil
	for i := range p.SKUs {
		p.SKUs[i].Held, p.SKUs[i].Sold, p.SKUs[i].Available = 0, 0, 0
	}
	k := s.pkeys(p.ID)
	def, err := json.Marshal(p)
	if err != nil {
		return err
	}
	ok, err := s.c.SetNX(ctx, k[6], def, 0).Result()
	if err != nil {
		return fmt.Errorf("create product: %w", err)
	}
	if !ok {
		return ErrExists
	}
	_, err = s.c.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.HSet(ctx, k[0], invFields(&p, true)...)
		pipe.SAdd(ctx, s.prefix+"products", p.ID)
		return nil
	})
	if err != nil {
		return fmt.Errorf("create product: %w", err)
	}
	return nil
}

// invFields mirrors what the scripts need of the definition into the inv hash.
func invFields(p *Product, withStock bool) []any {
	active, only := "0", ""
	if p.Active {
		active = "1"
	}
	if len(p.SKUs) == 1 {
		only = p.SKUs[0].ID
	}
	f := []any{"active", active, "price", p.Price.Amount, "currency", p.Price.Currency, "limit", p.PerBuyerLimit, "only_sku", only}
	if withStock {
		for _, k := range p.SKUs {
			f = append(f, "stock:"+k.ID, k.Stock)
		}
	}
	return f
}

func (s *RedisStore) UpdateProduct(ctx context.Context, id string, u ProductUpdate) (Product, error) {
	k := s.pkeys(id)
	update := func(tx *redis.Tx) error {
		raw, err := tx.Get(ctx, k[6]).Bytes()
		if errors.Is(err, redis.Nil) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		var p Product
		if err := json.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("decode product: %w", err)
		}
		if err := applyUpdate(&p, u); err != nil {
			return err
		}
		def, err := json.Marshal(p)
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			pipe.Set(ctx, k[6], def, 0)
			f := invFields(&p, false)
			for sku, n := range u.Stock {
				kk, _ := p.sku(sku)
				f = append(f, "stock:"+kk.ID, n)
			}
			pipe.HSet(ctx, k[0], f...)
			return nil
		})
		return err
	}
	var err error
	for range 20 {
		if err = s.c.Watch(ctx, update, k[6]); !errors.Is(err, redis.TxFailedErr) {
			break
		}
	}
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnknownSKU) || errors.Is(err, ErrSKURequired) {
		return Product{}, err
	}
	if err != nil {
		return Product{}, fmt.Errorf("update product: %w", err)
	}
	return s.GetProduct(ctx, id)
}

func (s *RedisStore) GetProduct(ctx context.Context, id string) (Product, error) {
	k := s.pkeys(id)
	pipe := s.c.Pipeline()
	def := pipe.Get(ctx, k[6])
	inv := pipe.HGetAll(ctx, k[0])
	deal := pipe.HGetAll(ctx, k[4])
	_, err := pipe.Exec(ctx)
	if errors.Is(def.Err(), redis.Nil) {
		return Product{}, ErrNotFound
	}
	if err != nil {
		return Product{}, fmt.Errorf("get product: %w", err)
	}
	return buildProduct(def.Val(), inv.Val(), deal.Val())
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func buildProduct(def string, inv, deal map[string]string) (Product, error) {
	var p Product
	if err := json.Unmarshal([]byte(def), &p); err != nil {
		return Product{}, fmt.Errorf("decode product: %w", err)
	}
	for i := range p.SKUs {
		k := &p.SKUs[i]
		k.Stock, k.Held, k.Sold = atoi(inv["stock:"+k.ID]), atoi(inv["held:"+k.ID]), atoi(inv["sold:"+k.ID])
	}
	p.Deal = nil
	if deal["id"] != "" {
		ends, _ := strconv.ParseInt(deal["ends"], 10, 64)
		amount, _ := strconv.ParseInt(deal["amount"], 10, 64)
		ttl, _ := strconv.ParseInt(deal["ttl"], 10, 64)
		p.Deal = &Deal{ID: deal["id"], Price: Money{Amount: amount, Currency: deal["currency"]},
			EndsAt: time.UnixMilli(ends), Quantity: atoi(deal["cap"]), PerBuyer: atoi(deal["perbuyer"]),
			HoldTTL: time.Duration(ttl) * time.Millisecond, Used: atoi(deal["used"])}
	}
	p.fillTotals(time.Now())
	return p, nil
}

func (s *RedisStore) ListProducts(ctx context.Context) ([]Product, error) {
	ids, err := s.c.SMembers(ctx, s.prefix+"products").Result()
	if err != nil {
		return nil, fmt.Errorf("list products: %w", err)
	}
	out := make([]Product, 0, len(ids))
	for _, id := range ids {
		p, err := s.GetProduct(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func (s *RedisStore) SetDeal(ctx context.Context, productID string, d Deal) (Deal, error) {
	k := s.pkeys(productID)
	if n, err := s.c.Exists(ctx, k[6]).Result(); err != nil {
		return Deal{}, fmt.Errorf("set deal: %w", err)
	} else if n == 0 {
		return Deal{}, ErrNotFound
	}
	d.ID, d.Used, d.Remaining = randomID(), 0, nil
	_, err := s.c.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.Del(ctx, k[4], k[5])
		pipe.HSet(ctx, k[4], "id", d.ID, "amount", d.Price.Amount, "currency", d.Price.Currency,
			"ends", d.EndsAt.UnixMilli(), "cap", d.Quantity, "perbuyer", d.PerBuyer,
			"ttl", d.HoldTTL.Milliseconds(), "used", 0)
		return nil
	})
	if err != nil {
		return Deal{}, fmt.Errorf("set deal: %w", err)
	}
	return d, nil
}

func (s *RedisStore) ClearDeal(ctx context.Context, productID string) error {
	k := s.pkeys(productID)
	if err := s.c.Del(ctx, k[4], k[5]).Err(); err != nil {
		return fmt.Errorf("clear deal: %w", err)
	}
	return nil
}

func (s *RedisStore) Reserve(ctx context.Context, r ReserveRequest) (Hold, error) {
	res, err := reserveScript.Run(ctx, s.c, s.pkeys(r.ProductID)[:6], r.HoldID, r.SKU, r.Quantity, r.Buyer,
		r.Now.UnixMilli(), r.TTL.Milliseconds()).Slice()
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
		return Hold{}, &SoldOutError{ProductID: r.ProductID, SKU: r.SKU, Available: int(res[1].(int64)), Deal: res[2].(int64) == 1}
	case "limit":
		return Hold{}, &LimitError{ProductID: r.ProductID, Limit: int(res[1].(int64)), Have: int(res[2].(int64)), Deal: res[3].(int64) == 1}
	}
	return Hold{}, fmt.Errorf("reserve: unexpected script reply %v", res)
}

func (s *RedisStore) Commit(ctx context.Context, productID, holdID string, now time.Time) (Hold, error) {
	res, err := commitScript.Run(ctx, s.c, s.pkeys(productID)[:6], holdID, now.UnixMilli()).Slice()
	if err != nil {
		return Hold{}, fmt.Errorf("commit: %w", err)
	}
	if res[0].(string) != "ok" {
		return Hold{}, ErrHoldGone
	}
	return decodeRedisHold(productID, res[1].(string))
}

func (s *RedisStore) Release(ctx context.Context, productID, holdID string) (bool, error) {
	n, err := releaseScript.Run(ctx, s.c, s.pkeys(productID)[:6], holdID).Int()
	if err != nil {
		return false, fmt.Errorf("release: %w", err)
	}
	return n == 1, nil
}

func (s *RedisStore) Sweep(ctx context.Context, now time.Time) ([]string, int, error) {
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
	return changed, active, nil
}

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
	raw, err := s.c.Get(ctx, s.orderKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return Order{}, ErrNotFound
	}
	if err != nil {
		return Order{}, fmt.Errorf("get order: %w", err)
	}
	var o Order
	if err := json.Unmarshal(raw, &o); err != nil {
		return Order{}, fmt.Errorf("decode order: %w", err)
	}
	return o, nil
}

func (s *RedisStore) OrderByKey(ctx context.Context, key string) (Order, error) {
	id, err := s.c.Get(ctx, s.idemKey(key)).Result()
	if errors.Is(err, redis.Nil) {
		return Order{}, ErrNotFound
	}
	if err != nil {
		return Order{}, fmt.Errorf("order by key: %w", err)
	}
	return s.GetOrder(ctx, id)
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
	out := make([]Order, 0, len(ids))
	for _, id := range ids {
		o, err := s.GetOrder(ctx, id)
		if err == nil {
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

func (s *RedisStore) cartKey(id string) string { return s.prefix + "cart:" + id }

func (s *RedisStore) PutCart(ctx context.Context, c Cart) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if err := s.c.Set(ctx, s.cartKey(c.ID), b, 7*24*time.Hour).Err(); err != nil {
		return fmt.Errorf("put cart: %w", err)
	}
	return nil
}

func (s *RedisStore) GetCart(ctx context.Context, id string) (Cart, error) {
	raw, err := s.c.Get(ctx, s.cartKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return Cart{}, ErrNotFound
	}
	if err != nil {
		return Cart{}, fmt.Errorf("get cart: %w", err)
	}
	var c Cart
	return c, json.Unmarshal(raw, &c)
}

func (s *RedisStore) DeleteCart(ctx context.Context, id string) error {
	return s.c.Del(ctx, s.cartKey(id)).Err()
}

func (s *RedisStore) SeenEvent(ctx context.Context, id string) (bool, error) {
	n, err := s.c.Exists(ctx, s.prefix+"event:"+id).Result()
	return n > 0, err
}

func (s *RedisStore) MarkEvent(ctx context.Context, id string) error {
	// Stripe retries for 3 days; keep ids a week.
	return s.c.Set(ctx, s.prefix+"event:"+id, strings.TrimSpace(time.Now().UTC().Format(time.RFC3339)), 7*24*time.Hour).Err()
}
