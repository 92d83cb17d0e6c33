// BoltStore's inventory holds: reserve, commit, release and the expiry
// sweep, each one transaction over a product's counters.

package cart

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/streamd/streamd/internal/httpx"
)

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

func putHold(tx *bbolt.Tx, h *Hold) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return tx.Bucket(bHolds).Put(holdKey(h.ProductID, h.ID), b)
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

func (s *BoltStore) Reserve(ctx context.Context, r ReserveRequest) (_ Hold, err error) {
	defer httpx.MarkBolt(&err)
	var out Hold
	var berr error
	err = s.db.Batch(func(tx *bbolt.Tx) error {
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
	if old != nil && (old.Committed || r.Keep) {
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
		ExpiresAt: time.UnixMilli(r.Now.Add(ttl).UnixMilli()), UnitPrice: p.unitPrice(k)}
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
	if err := putHold(tx, &h); err != nil {
		return Hold{}, nil, err
	}
	if err := tx.Bucket(bHoldExp).Put(expKey(p.ID, h.ExpiresAt.UnixMilli(), h.ID), nil); err != nil {
		return Hold{}, nil, err
	}
	return h, nil, nil
}

func (s *BoltStore) Commit(ctx context.Context, productID, holdID string, now time.Time) (_ Hold, err error) {
	defer httpx.MarkBolt(&err)
	var out Hold
	var berr error
	err = s.db.Batch(func(tx *bbolt.Tx) error {
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
		if err := putHold(tx, h); err != nil {
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

func (s *BoltStore) Release(ctx context.Context, productID, holdID string) (_ bool, err error) {
	defer httpx.MarkBolt(&err)
	var done bool
	err = s.db.Batch(func(tx *bbolt.Tx) error {
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

func (s *BoltStore) Sweep(ctx context.Context, now time.Time) (_ []string, _ int, err error) {
	defer httpx.MarkBolt(&err)
	nowMs := now.UnixMilli()
	var due []string
	active := 0
	err = s.db.View(func(tx *bbolt.Tx) error {
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
