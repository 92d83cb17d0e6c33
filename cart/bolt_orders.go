// BoltStore's orders with their idempotency records and time indexes, and
// the ids of payment webhook events already handled.

package cart

import (
	"context"
	"encoding/binary"
	"fmt"
	"sort"
	"time"

	"go.etcd.io/bbolt"

	"github.com/streamd/streamd/internal/httpx"
)

func putOrder(tx *bbolt.Tx, o *Order) error {
	b, err := encodeOrder(*o)
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
	return decodeOrder(v)
}

func emailKey(c emailClaim) []byte {
	if c.DealID == "" {
		return cat([]byte(c.ProductID), nul, []byte(c.Email))
	}
	return cat([]byte(c.ProductID), nul, []byte(c.DealID), nul, []byte(c.Email))
}

// claimEmails counts an order's email claims, or refuses them all with
// the *LimitError of the first that the count cannot take.
func claimEmails(b *bbolt.Bucket, claims []emailClaim) error {
	for _, c := range claims {
		if have := getCount(b, emailKey(c)); have+c.Units > c.Limit {
			return emailLimitError(c, have)
		}
	}
	for _, c := range claims {
		if err := addCount(b, emailKey(c), c.Units); err != nil {
			return err
		}
	}
	return nil
}

func (s *BoltStore) CreateOrder(ctx context.Context, o Order) (_ Order, _ bool, err error) {
	defer httpx.MarkBolt(&err)
	var out Order
	var created bool
	err = s.db.Batch(func(tx *bbolt.Tx) error {
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
		claims := tx.Bucket(bClaims)
		for _, it := range o.Items {
			k := holdKey(it.ProductID, it.HoldID)
			if id := claims.Get(k); id != nil && string(id) != o.ID {
				return fmt.Errorf("hold %s of order %s: %w", it.HoldID, id, ErrHoldClaimed)
			}
			if err := claims.Put(k, []byte(o.ID)); err != nil {
				return err
			}
		}
		if err := claimEmails(tx.Bucket(bEmails), o.emailClaims); err != nil {
			return err
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

func (s *BoltStore) GetOrder(ctx context.Context, id string) (_ Order, err error) {
	defer httpx.MarkBolt(&err)
	var o Order
	err = s.db.View(func(tx *bbolt.Tx) error {
		var err error
		o, err = getOrder(tx, id)
		return err
	})
	return o, err
}

func (s *BoltStore) OrderByKey(ctx context.Context, key string) (_ Order, err error) {
	defer httpx.MarkBolt(&err)
	var o Order
	err = s.db.View(func(tx *bbolt.Tx) error {
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

func (s *BoltStore) UpdateOrder(ctx context.Context, id string, fn func(*Order) error) (_ Order, err error) {
	defer httpx.MarkBolt(&err)
	var out Order
	var ferr error
	err = s.db.Batch(func(tx *bbolt.Tx) error {
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
		if releasesEmail(was, o.Status) {
			for _, c := range o.emailClaims {
				if err := addCount(tx.Bucket(bEmails), emailKey(c), -c.Units); err != nil {
					return err
				}
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

func (s *BoltStore) ListOrders(ctx context.Context, stream string, limit int) (_ []Order, err error) {
	defer httpx.MarkBolt(&err)
	out := []Order{}
	err = s.db.View(func(tx *bbolt.Tx) error {
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

func (s *BoltStore) ExpiredOrders(ctx context.Context, now time.Time, limit int) (_ []string, err error) {
	defer httpx.MarkBolt(&err)
	out := []string{}
	nowMs := uint64(now.UnixMilli())
	err = s.db.View(func(tx *bbolt.Tx) error {
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

func (s *BoltStore) SeenEvent(ctx context.Context, id string) (_ bool, err error) {
	defer httpx.MarkBolt(&err)
	var seen bool
	err = s.db.View(func(tx *bbolt.Tx) error {
		seen = tx.Bucket(bEvents).Get([]byte(id)) != nil
		return nil
	})
	return seen, err
}

func (s *BoltStore) MarkEvent(ctx context.Context, id string) (err error) {
	defer httpx.MarkBolt(&err)
	return s.db.Batch(func(tx *bbolt.Tx) error {
		return tx.Bucket(bEvents).Put([]byte(id), be64(uint64(time.Now().Unix())))
	})
}
