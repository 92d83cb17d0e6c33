// BoltStore's small records beside the orders: which order a payment
// intent belongs to, a stream's pickup point.

package cart

import (
	"context"
	"fmt"

	"go.etcd.io/bbolt"
)

var bMeta = []byte("cart.meta") // key → value

func (s *BoltStore) PutMeta(ctx context.Context, key, value string) error {
	err := s.db.Batch(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bMeta)
		if err != nil {
			return err
		}
		return b.Put([]byte(key), []byte(value))
	})
	if err != nil {
		return fmt.Errorf("put meta: %w", err)
	}
	return nil
}

func (s *BoltStore) GetMeta(ctx context.Context, key string) (string, error) {
	var v string
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bMeta)
		if b == nil {
			return ErrNotFound
		}
		raw := b.Get([]byte(key))
		if raw == nil {
			return ErrNotFound
		}
		v = string(raw)
		return nil
	})
	return v, err
}
