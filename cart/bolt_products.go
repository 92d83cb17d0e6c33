// BoltStore's catalog: products (stored with their counters) and deals.

package cart

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/streamd/streamd/internal/httpx"
)

type boltProduct struct {
	P         Product `json:"p"`
	DealTTLms int64   `json:"deal_ttl_ms,omitempty"`
}

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

// CreateProduct stores a new product; its SKUs' Stock is the initial stock.
func (s *BoltStore) CreateProduct(ctx context.Context, p Product) (err error) {
	defer httpx.MarkBolt(&err)
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

func (s *BoltStore) UpdateProduct(ctx context.Context, id string, u ProductUpdate) (_ Product, err error) {
	defer httpx.MarkBolt(&err)
	var out Product
	err = s.db.Update(func(tx *bbolt.Tx) error {
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
	for _, in := range u.SKUs {
		if k, err := p.sku(in.ID); err == nil {
			k.Title = in.Title
			if in.Options != nil {
				k.Options = in.Options
			}
			continue
		}
		if u.DropDefault && len(p.SKUs) == 1 && p.SKUs[0].ID == DefaultSKU {
			// A product made without variants gets its first real ones:
			// the implicit SKU would only be a dead choice in the sheet.
			p.SKUs = p.SKUs[:0]
			delete(u.Stock, DefaultSKU)
		}
		p.SKUs = append(p.SKUs, SKU{ID: in.ID, Title: in.Title, Options: in.Options, Price: in.Price})
	}
	for id := range u.Stock {
		if _, err := p.sku(id); err != nil {
			return err
		}
	}
	for id := range u.Prices {
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
	for id, m := range u.Prices {
		k, _ := p.sku(id)
		k.Price = m
	}
	return nil
}

func (s *BoltStore) GetProduct(ctx context.Context, id string) (_ Product, err error) {
	defer httpx.MarkBolt(&err)
	var out Product
	err = s.db.View(func(tx *bbolt.Tx) error {
		bp, err := loadProduct(tx, id)
		if err != nil {
			return err
		}
		out = bp.view(time.Now())
		return nil
	})
	return out, err
}

func (s *BoltStore) ListProducts(ctx context.Context) (_ []Product, err error) {
	defer httpx.MarkBolt(&err)
	out := []Product{}
	now := time.Now()
	err = s.db.View(func(tx *bbolt.Tx) error {
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

func (s *BoltStore) SetDeal(ctx context.Context, productID string, d Deal) (_ Deal, err error) {
	defer httpx.MarkBolt(&err)
	d.ID, d.Used, d.Remaining = randomID(), 0, nil
	err = s.db.Update(func(tx *bbolt.Tx) error {
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

func (s *BoltStore) ClearDeal(ctx context.Context, productID string) (err error) {
	defer httpx.MarkBolt(&err)
	return s.db.Update(func(tx *bbolt.Tx) error {
		bp, err := loadProduct(tx, productID)
		if err != nil {
			return err
		}
		bp.P.Deal, bp.DealTTLms = nil, 0
		return saveProduct(tx, bp)
	})
}
