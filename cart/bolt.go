package cart

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"go.etcd.io/bbolt"
)

// Buckets of the embedded store; all prefixed "cart.".
var (
	bProducts   = []byte("cart.products")   // id → boltProduct
	bHolds      = []byte("cart.holds")      // pid \0 holdID → Hold
	bHoldExp    = []byte("cart.holdexp")    // pid \0 be64(exp ms) holdID → nil
	bBuyers     = []byte("cart.buyers")     // pid \0 buyer → be64 units
	bDealBuyers = []byte("cart.dealbuyers") // pid \0 dealID \0 buyer → be64 units
	bOrders     = []byte("cart.orders")     // id → Order
	bOrderTime  = []byte("cart.ordertime")  // be64(created ns) id → nil
	bPending    = []byte("cart.pending")    // be64(exp ms) id → nil
	bIdem       = []byte("cart.idem")       // idempotency key → order id
	bCarts      = []byte("cart.carts")      // id → Cart
	bEvents     = []byte("cart.events")     // webhook event id → be64(unix)
)

// BoltStore is the embedded Store on a bbolt file handed in by cmd/streamd.
// Writers that may run concurrently go through db.Batch (group commit):
// each call returns only after its transaction is on disk.
type BoltStore struct {
	db *bbolt.DB
}

// NewBoltStore creates the cart buckets in db.
func NewBoltStore(db *bbolt.DB) (*BoltStore, error) {
	err := db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bProducts, bHolds, bHoldExp, bBuyers, bDealBuyers, bOrders, bOrderTime, bPending, bIdem, bCarts, bEvents} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("create bucket %s: %w", b, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cart bolt store: %w", err)
	}
	return &BoltStore{db: db}, nil
}

type boltProduct struct {
	P         Product `json:"p"`
	DealTTLms int64   `json:"deal_ttl_ms,omitempty"`
}

func be64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

var nul = []byte{0}

func loadProduct(tx *bbolt.Tx, id string) (*boltProduct, error) {
	v := tx.Bucket(bProducts).Get([]byte(id))
	if v == nil {
		return nil, ErrNotFound
	}
	var bp boltProduct
	if err := json.Unmarshal(v, &bp); err != nil {
		return nil, fmt.Errorf("decode product %s: %w", id, err)
	}
	return &bp, nil
}

func saveProduct(tx *bbolt.Tx, bp *boltProduct) error {
	b, err := json.Marshal(bp)
	if err != nil {
		return err
	}
	return tx.Bucket(bProducts).Put([]byte(bp.P.ID), b)
}

func (bp *boltProduct) view(now time.Time) Product {
	p := bp.P
	p.SKUs = append([]SKU(nil), bp.P.SKUs...)
	p.Images = append([]string{}, bp.P.Images...)
	if bp.P.Deal != nil {
		d := *bp.P.Deal
		d.HoldTTL = time.Duration(bp.DealTTLms) * time.Millisecond
		p.Deal = &d
	}
	p.fillTotals(now)
	return p
}

func getCount(b *bbolt.Bucket, k []byte) int {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return int(int64(binary.BigEndian.Uint64(v)))
}

func addCount(b *bbolt.Bucket, k []byte, d int) error {
	n := getCount(b, k) + d
	if n <= 0 {
		return b.Delete(k)
	}
	return b.Put(k, be64(uint64(n)))
}

// CreateProduct stores a new product; its SKUs' Stock is the initial stock.
func (s *BoltStore) CreateProduct(ctx context.Context, p Product) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		if tx.Bucket(bProducts).Get([]byte(p.ID)) != nil {
			return ErrExists
		}
		p.Deal = nil
		for i := range p.SKUs {
			p.SKUs[i].Held, p.SKUs[i].Sold, p.SKUs[i].Available = 0, 0, 0
		}
		return saveProduct(tx, &boltProduct{P: p})
	})
}

func (s *BoltStore) UpdateProduct(ctx context.Context, id string, u ProductUpdate) (Product, error) {
	var out Product
	err := s.db.Update(func(tx *bbolt.Tx) error {
		bp, err := loadProduct(tx, id)
		if err != nil {
			return err
		}
		if err := applyUpdate(&bp.P, u); err != nil {
			return err
		}
		out = bp.view(time.Now())
		return saveProduct(tx, bp)
	})
	return out, err
}

// applyUpdate applies a ProductUpdate to a product definition.
func applyUpdate(p *Product, u ProductUpdate) error {
	for id := range u.Stock {
		if _, err := p.sku(id); err != nil {
			return err
		}
	}
	if u.Title != nil {
		p.Title = *u.Title
	}
	if u.Description != nil {
		p.Description = *u.Description
	}
	if u.Images != nil {
		p.Images = u.Images
	}
	if u.Price != nil {
		p.Price = *u.Price
	}
	if u.Active != nil {
		p.Active = *u.Active
	}
	if u.PerBuyerLimit != nil {
		p.PerBuyerLimit = *u.PerBuyerLimit
	}
	for id, n := range u.Stock {
		k, _ := p.sku(id)
		k.Stock = n
	}
	return nil
}

func (s *BoltStore) GetProduct(ctx context.Context, id string) (Product, error) {
	var out Product
	err := s.db.View(func(tx *bbolt.Tx) error {
		bp, err := loadProduct(tx, id)
		if err != nil {
			return err
		}
		out = bp.view(time.Now())
		return nil
	})
	return out, err
}

func (s *BoltStore) ListProducts(ctx context.Context) ([]Product, error) {
	var out []Product
	now := time.Now()
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bProducts).ForEach(func(k, v []byte) error {
			var bp boltProduct
			if err := json.Unmarshal(v, &bp); err != nil {
				return fmt.Errorf("decode product %s: %w", k, err)
			}
			out = append(out, bp.view(now))
			return nil
		})
	})
	return out, err
}

func (s *BoltStore) SetDeal(ctx context.Context, productID string, d Deal) (Deal, error) {
	d.ID, d.Used, d.Remaining = randomID(), 0, nil
	err := s.db.Update(func(tx *bbolt.Tx) error {
		bp, err := loadProduct(tx, productID)
		if err != nil {
			return err
		}
		dd := d
		bp.P.Deal = &dd
		bp.DealTTLms = d.HoldTTL.Milliseconds()
		return saveProduct(tx, bp)
	})
	return d, err
}

func (s *BoltStore) ClearDeal(ctx context.Context, productID string) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		bp, err := loadProduct(tx, productID)
		if err != nil {
			return err
		}
		bp.P.Deal, bp.DealTTLms = nil, 0
		return saveProduct(tx, bp)
	})
}

func holdKey(pid, hid string) []byte { return cat([]byte(pid), nul, []byte(hid)) }

func expKey(pid string, exp int64, hid string) []byte {
	return cat([]byte(pid), nul, be64(uint64(exp)), []byte(hid))
}

func loadHold(tx *bbolt.Tx, pid, hid string) (*Hold, error) {
	v := tx.Bucket(bHolds).Get(holdKey(pid, hid))
	if v == nil {
		return nil, nil
	}
	var h Hold
	if err := json.Unmarshal(v, &h); err != nil {
		return nil, fmt.Errorf("decode hold: %w", err)
	}
	return &h, nil
}

// undoHold removes a hold's contribution (held or sold) from the product,
// the buyer counts and the deal, and deletes it.
func undoHold(tx *bbolt.Tx, bp *boltProduct, h *Hold) error {
	k, err := bp.P.sku(h.SKU)
	if err != nil {
		return err
	}
	if h.Committed {
		k.Sold -= h.Quantity
	} else {
		k.Held -= h.Quantity
		if err := tx.Bucket(bHoldExp).Delete(expKey(h.ProductID, h.ExpiresAt.UnixMilli(), h.ID)); err != nil {
			return err
		}
	}
	if h.Buyer != "" {
		if err := addCount(tx.Bucket(bBuyers), cat([]byte(h.ProductID), nul, []byte(h.Buyer)), -h.Quantity); err != nil {
			return err
		}
	}
	if h.DealID != "" && bp.P.Deal != nil && bp.P.Deal.ID == h.DealID {
		bp.P.Deal.Used -= h.Quantity
		if h.Buyer != "" {
			if err := addCount(tx.Bucket(bDealBuyers), cat([]byte(h.ProductID), nul, []byte(h.DealID), nul, []byte(h.Buyer)), -h.Quantity); err != nil {
				return err
			}
		}
	}
	return tx.Bucket(bHolds).Delete(holdKey(h.ProductID, h.ID))
}

// sweepProduct releases the product's holds that expired by now.
func sweepProduct(tx *bbolt.Tx, bp *boltProduct, now int64) (int, error) {
	prefix := cat([]byte(bp.P.ID), nul)
	c := tx.Bucket(bHoldExp).Cursor()
	var ids []string
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		rest := k[len(prefix):]
		if len(rest) < 8 || int64(binary.BigEndian.Uint64(rest[:8])) > now {
			break
		}
		ids = append(ids, string(rest[8:]))
	}
	n := 0
	for _, id := range ids {
		h, err := loadHold(tx, bp.P.ID, id)
		if err != nil {
			return n, err
		}
		if h == nil || h.Committed {
			continue
		}
		if err := undoHold(tx, bp, h); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func (s *BoltStore) Reserve(ctx context.Context, r ReserveRequest) (Hold, error) {
	var out Hold
	var berr error
	err := s.db.Batch(func(tx *bbolt.Tx) error {
		out, berr = Hold{}, nil
		bp, err := loadProduct(tx, r.ProductID)
		if err != nil {
			berr = err
			return nil
		}
		now := r.Now.UnixMilli()
		swept, err := sweepProduct(tx, bp, now)
		if err != nil {
			return err
		}
		out, berr, err = reserveLocked(tx, bp, r)
		if err != nil {
			return err
		}
		if berr != nil && swept == 0 {
			return nil
		}
		return saveProduct(tx, bp)
	})
	if err != nil {
		return Hold{}, fmt.Errorf("reserve: %w", err)
	}
	return out, berr
}

func reserveLocked(tx *bbolt.Tx, bp *boltProduct, r ReserveRequest) (Hold, error, error) {
	p := &bp.P
	if !p.Active {
		return Hold{}, ErrInactive, nil
	}
	k, err := p.sku(r.SKU)
	if err != nil {
		return Hold{}, err, nil
	}
	old, err := loadHold(tx, p.ID, r.HoldID)
	if err != nil {
		return Hold{}, nil, err
	}
	if old != nil && old.Committed {
		return *old, nil, nil
	}
	oldQ, oldDQ := 0, 0
	deal := p.Deal
	if !deal.Active(r.Now) {
		deal = nil
	}
	if old != nil {
		oldQ = old.Quantity
		if deal != nil && old.DealID == deal.ID {
			oldDQ = oldQ
		}
	}
	if avail := k.Stock - k.Held - k.Sold + oldQ; r.Quantity > avail {
		return Hold{}, &SoldOutError{ProductID: p.ID, SKU: k.ID, Available: max(0, avail)}, nil
	}
	buyers := tx.Bucket(bBuyers)
	bk := cat([]byte(p.ID), nul, []byte(r.Buyer))
	if p.PerBuyerLimit > 0 && r.Buyer != "" {
		if have := getCount(buyers, bk) - oldQ; have+r.Quantity > p.PerBuyerLimit {
			return Hold{}, &LimitError{ProductID: p.ID, Limit: p.PerBuyerLimit, Have: have}, nil
		}
	}
	ttl := r.TTL
	var dbk []byte
	if deal != nil {
		if deal.Quantity > 0 && deal.Used-oldDQ+r.Quantity > deal.Quantity {
			return Hold{}, &SoldOutError{ProductID: p.ID, SKU: k.ID, Available: max(0, deal.Quantity-deal.Used+oldDQ), Deal: true}, nil
		}
		dbk = cat([]byte(p.ID), nul, []byte(deal.ID), nul, []byte(r.Buyer))
		if deal.PerBuyer > 0 && r.Buyer != "" {
			if have := getCount(tx.Bucket(bDealBuyers), dbk) - oldDQ; have+r.Quantity > deal.PerBuyer {
				return Hold{}, &LimitError{ProductID: p.ID, Limit: deal.PerBuyer, Have: have, Deal: true}, nil
			}
		}
		if bp.DealTTLms > 0 {
			ttl = time.Duration(bp.DealTTLms) * time.Millisecond
		}
	}
	if old != nil {
		if err := undoHold(tx, bp, old); err != nil {
			return Hold{}, nil, err
		}
	}
	h := Hold{ID: r.HoldID, ProductID: p.ID, SKU: k.ID, Quantity: r.Quantity, Buyer: r.Buyer,
		ExpiresAt: time.UnixMilli(r.Now.Add(ttl).UnixMilli()), UnitPrice: p.Price}
	k.Held += r.Quantity
	if r.Buyer != "" {
		if err := addCount(buyers, bk, r.Quantity); err != nil {
			return Hold{}, nil, err
		}
	}
	if deal != nil {
		h.DealID, h.UnitPrice = deal.ID, deal.Price
		deal.Used += r.Quantity
		if r.Buyer != "" {
			if err := addCount(tx.Bucket(bDealBuyers), dbk, r.Quantity); err != nil {
				return Hold{}, nil, err
			}
		}
	}
	b, err := json.Marshal(h)
	if err != nil {
		return Hold{}, nil, err
	}
	if err := tx.Bucket(bHolds).Put(holdKey(p.ID, h.ID), b); err != nil {
		return Hold{}, nil, err
	}
	if err := tx.Bucket(bHoldExp).Put(expKey(p.ID, h.ExpiresAt.UnixMilli(), h.ID), nil); err != nil {
		return Hold{}, nil, err
	}
	return h, nil, nil
}

func (s *BoltStore) Commit(ctx context.Context, productID, holdID string, now time.Time) (Hold, error) {
	var out Hold
	var berr error
	err := s.db.Batch(func(tx *bbolt.Tx) error {
		out, berr = Hold{}, nil
		bp, err := loadProduct(tx, productID)
		if err != nil {
			berr = err
			return nil
		}
		h, err := loadHold(tx, productID, holdID)
		if err != nil {
			return err
		}
		if h == nil {
			berr = ErrHoldGone
			return nil
		}
		if h.Committed {
			out = *h
			return nil
		}
		if !h.ExpiresAt.After(now) {
			berr = ErrHoldGone
			if err := undoHold(tx, bp, h); err != nil {
				return err
			}
			return saveProduct(tx, bp)
		}
		k, err := bp.P.sku(h.SKU)
		if err != nil {
			return err
		}
		k.Held -= h.Quantity
		k.Sold += h.Quantity
		if err := tx.Bucket(bHoldExp).Delete(expKey(productID, h.ExpiresAt.UnixMilli(), h.ID)); err != nil {
			return err
		}
		h.Committed = true
		b, err := json.Marshal(h)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bHolds).Put(holdKey(productID, holdID), b); err != nil {
			return err
		}
		out = *h
		return saveProduct(tx, bp)
	})
	if err != nil {
		return Hold{}, fmt.Errorf("commit: %w", err)
	}
	return out, berr
}

func (s *BoltStore) Release(ctx context.Context, productID, holdID string) (bool, error) {
	var done bool
	err := s.db.Batch(func(tx *bbolt.Tx) error {
		done = false
		bp, err := loadProduct(tx, productID)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		h, err := loadHold(tx, productID, holdID)
		if err != nil || h == nil {
			return err
		}
		if err := undoHold(tx, bp, h); err != nil {
			return err
		}
		done = true
		return saveProduct(tx, bp)
	})
	if err != nil {
		return false, fmt.Errorf("release: %w", err)
	}
	return done, nil
}

func (s *BoltStore) Sweep(ctx context.Context, now time.Time) ([]string, int, error) {
	nowMs := now.UnixMilli()
	var due []string
	active := 0
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bHoldExp).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			active++
			i := bytes.IndexByte(k, 0)
			if i < 0 || len(k) < i+9 {
				continue
			}
			if exp := int64(binary.BigEndian.Uint64(k[i+1 : i+9])); exp <= nowMs {
				pid := string(k[:i])
				if len(due) == 0 || due[len(due)-1] != pid {
					due = append(due, pid)
				}
			}
		}
		return nil
	})
	if err != nil || len(due) == 0 {
		return nil, active, err
	}
	var changed []string
	err = s.db.Update(func(tx *bbolt.Tx) error {
		changed = changed[:0]
		for _, pid := range due {
			bp, err := loadProduct(tx, pid)
			if err != nil {
				continue
			}
			n, err := sweepProduct(tx, bp, nowMs)
			if err != nil {
				return err
			}
			if n > 0 {
				active -= n
				changed = append(changed, pid)
				if err := saveProduct(tx, bp); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return changed, active, err
}

func putOrder(tx *bbolt.Tx, o *Order) error {
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	return tx.Bucket(bOrders).Put([]byte(o.ID), b)
}

func getOrder(tx *bbolt.Tx, id string) (Order, error) {
	v := tx.Bucket(bOrders).Get([]byte(id))
	if v == nil {
		return Order{}, ErrNotFound
	}
	var o Order
	if err := json.Unmarshal(v, &o); err != nil {
		return Order{}, fmt.Errorf("decode order: %w", err)
	}
	return o, nil
}

func (s *BoltStore) CreateOrder(ctx context.Context, o Order) (Order, bool, error) {
	var out Order
	var created bool
	err := s.db.Batch(func(tx *bbolt.Tx) error {
		created = false
		if o.IdempotencyKey != "" {
			if id := tx.Bucket(bIdem).Get([]byte(o.IdempotencyKey)); id != nil {
				var err error
				out, err = getOrder(tx, string(id))
				return err
			}
			if err := tx.Bucket(bIdem).Put([]byte(o.IdempotencyKey), []byte(o.ID)); err != nil {
				return err
			}
		}
		if tx.Bucket(bOrders).Get([]byte(o.ID)) != nil {
			return fmt.Errorf("order %s: %w", o.ID, ErrExists)
		}
		if err := putOrder(tx, &o); err != nil {
			return err
		}
		if err := tx.Bucket(bOrderTime).Put(cat(be64(uint64(o.CreatedAt.UnixNano())), []byte(o.ID)), nil); err != nil {
			return err
		}
		if o.Status == StatusPending {
			if err := tx.Bucket(bPending).Put(cat(be64(uint64(o.HoldExpiresAt.UnixMilli())), []byte(o.ID)), nil); err != nil {
				return err
			}
		}
		out, created = o, true
		return nil
	})
	if err != nil {
		return Order{}, false, fmt.Errorf("create order: %w", err)
	}
	return out, created, nil
}

func (s *BoltStore) GetOrder(ctx context.Context, id string) (Order, error) {
	var o Order
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		o, err = getOrder(tx, id)
		return err
	})
	return o, err
}

func (s *BoltStore) OrderByKey(ctx context.Context, key string) (Order, error) {
	var o Order
	err := s.db.View(func(tx *bbolt.Tx) error {
		id := tx.Bucket(bIdem).Get([]byte(key))
		if id == nil {
			return ErrNotFound
		}
		var err error
		o, err = getOrder(tx, string(id))
		return err
	})
	return o, err
}

func (s *BoltStore) UpdateOrder(ctx context.Context, id string, fn func(*Order) error) (Order, error) {
	var out Order
	var ferr error
	err := s.db.Batch(func(tx *bbolt.Tx) error {
		ferr = nil
		o, err := getOrder(tx, id)
		if err != nil {
			ferr = err
			return nil
		}
		was := o.Status
		if err := fn(&o); err != nil {
			ferr = err
			return nil
		}
		if was == StatusPending && o.Status != StatusPending {
			if err := tx.Bucket(bPending).Delete(cat(be64(uint64(o.HoldExpiresAt.UnixMilli())), []byte(o.ID))); err != nil {
				return err
			}
		}
		out = o
		return putOrder(tx, &o)
	})
	if err != nil {
		return Order{}, fmt.Errorf("update order: %w", err)
	}
	return out, ferr
}

func (s *BoltStore) ListOrders(ctx context.Context, stream string, limit int) ([]Order, error) {
	var out []Order
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bOrderTime).Cursor()
		for k, _ := c.Last(); k != nil && (limit <= 0 || len(out) < limit); k, _ = c.Prev() {
			o, err := getOrder(tx, string(k[8:]))
			if err != nil {
				continue
			}
			if stream == "" || o.Stream == stream {
				out = append(out, o)
			}
		}
		return nil
	})
	return out, err
}

func (s *BoltStore) ExpiredOrders(ctx context.Context, now time.Time, limit int) ([]string, error) {
	var out []string
	nowMs := uint64(now.UnixMilli())
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bPending).Cursor()
		for k, _ := c.First(); k != nil && len(out) < limit; k, _ = c.Next() {
			if binary.BigEndian.Uint64(k[:8]) > nowMs {
				break
			}
			out = append(out, string(k[8:]))
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

func (s *BoltStore) PutCart(ctx context.Context, c Cart) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return s.db.Batch(func(tx *bbolt.Tx) error { return tx.Bucket(bCarts).Put([]byte(c.ID), b) })
}

func (s *BoltStore) GetCart(ctx context.Context, id string) (Cart, error) {
	var c Cart
	err := s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bCarts).Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		return json.Unmarshal(v, &c)
	})
	return c, err
}

func (s *BoltStore) DeleteCart(ctx context.Context, id string) error {
	return s.db.Batch(func(tx *bbolt.Tx) error { return tx.Bucket(bCarts).Delete([]byte(id)) })
}

func (s *BoltStore) SeenEvent(ctx context.Context, id string) (bool, error) {
	var seen bool
	err := s.db.View(func(tx *bbolt.Tx) error {
		seen = tx.Bucket(bEvents).Get([]byte(id)) != nil
		return nil
	})
	return seen, err
}

func (s *BoltStore) MarkEvent(ctx context.Context, id string) error {
	return s.db.Batch(func(tx *bbolt.Tx) error {
		return tx.Bucket(bEvents).Put([]byte(id), be64(uint64(time.Now().Unix())))
	})
}
