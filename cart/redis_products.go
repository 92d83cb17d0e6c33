// RedisStore's catalog: the product definition key, the fields of the inv
// hash the scripts read, and deals.

package cart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamd/streamd/internal/httpx"
)

func (s *RedisStore) CreateProduct(ctx context.Context, p Product) (err error) {
	defer httpx.MarkRedis(&err)
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
	for _, k := range p.SKUs {
		if k.Price != nil {
			f = append(f, "price:"+k.ID, k.Price.Amount)
		}
		if withStock {
			f = append(f, "stock:"+k.ID, k.Stock)
		}
	}
	return f
}

// unpricedFields are the price:<sku> fields of the SKUs that have no price
// of their own (any left from before the update go).
func unpricedFields(p *Product) []string {
	var f []string
	for _, k := range p.SKUs {
		if k.Price == nil {
			f = append(f, "price:"+k.ID)
		}
	}
	return f
}

func (s *RedisStore) UpdateProduct(ctx context.Context, id string, u ProductUpdate) (_ Product, err error) {
	defer httpx.MarkRedis(&err)
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
			if del := unpricedFields(&p); len(del) > 0 {
				pipe.HDel(ctx, k[0], del...)
			}
			return nil
		})
		return err
	}
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

// productReads are the queued reads of one product: definition, inv, deal.
type productReads struct {
	def       *redis.StringCmd
	inv, deal *redis.MapStringStringCmd
}

func (s *RedisStore) readProduct(ctx context.Context, pipe redis.Pipeliner, id string) productReads {
	k := s.pkeys(id)
	return productReads{def: pipe.Get(ctx, k[6]), inv: pipe.HGetAll(ctx, k[0]), deal: pipe.HGetAll(ctx, k[4])}
}

// product builds the product once the pipeline ran; ErrNotFound when it has
// no definition.
func (r productReads) product() (Product, error) {
	if errors.Is(r.def.Err(), redis.Nil) {
		return Product{}, ErrNotFound
	}
	for _, c := range []redis.Cmder{r.def, r.inv, r.deal} {
		if err := c.Err(); err != nil {
			return Product{}, fmt.Errorf("get product: %w", err)
		}
	}
	return buildProduct(r.def.Val(), r.inv.Val(), r.deal.Val())
}

func (s *RedisStore) GetProduct(ctx context.Context, id string) (_ Product, err error) {
	defer httpx.MarkRedis(&err)
	pipe := s.c.Pipeline()
	r := s.readProduct(ctx, pipe, id)
	_, _ = pipe.Exec(ctx) // errors are per command
	return r.product()
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

func (s *RedisStore) ListProducts(ctx context.Context) (_ []Product, err error) {
	defer httpx.MarkRedis(&err)
	ids, err := s.c.SMembers(ctx, s.prefix+"products").Result()
	if err != nil {
		return nil, fmt.Errorf("list products: %w", err)
	}
	// One pipelined round trip for the whole catalog.
	pipe := s.c.Pipeline()
	reads := make([]productReads, len(ids))
	for i, id := range ids {
		reads[i] = s.readProduct(ctx, pipe, id)
	}
	_, _ = pipe.Exec(ctx) // errors are per command
	out := make([]Product, 0, len(ids))
	for _, r := range reads {
		p, err := r.product()
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	// In id order, as bbolt lists them (a set has no order).
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (s *RedisStore) SetDeal(ctx context.Context, productID string, d Deal) (_ Deal, err error) {
	defer httpx.MarkRedis(&err)
	k := s.pkeys(productID)
	if n, err := s.c.Exists(ctx, k[6]).Result(); err != nil {
		return Deal{}, fmt.Errorf("set deal: %w", err)
	} else if n == 0 {
		return Deal{}, ErrNotFound
	}
	d.ID, d.Used, d.Remaining = randomID(), 0, nil
	_, err = s.c.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
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

func (s *RedisStore) ClearDeal(ctx context.Context, productID string) (err error) {
	defer httpx.MarkRedis(&err)
	k := s.pkeys(productID)
	if err := s.c.Del(ctx, k[4], k[5]).Err(); err != nil {
		return fmt.Errorf("clear deal: %w", err)
	}
	return nil
}
