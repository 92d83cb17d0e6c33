// BoltStore's carts: one JSON record per cart.

package cart

import (
	"context"
	"encoding/json"

	"go.etcd.io/bbolt"

	"github.com/streamd/streamd/internal/httpx"
)

func (s *BoltStore) PutCart(ctx context.Context, c Cart) (err error) {
	defer httpx.MarkBolt(&err)
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return s.db.Batch(func(tx *bbolt.Tx) error { return tx.Bucket(bCarts).Put([]byte(c.ID), b) })
}

func (s *BoltStore) GetCart(ctx context.Context, id string) (_ Cart, err error) {
	defer httpx.MarkBolt(&err)
	var c Cart
	err = s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bCarts).Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		return json.Unmarshal(v, &c)
	})
	return c, err
}

func (s *BoltStore) DeleteCart(ctx context.Context, id string) (err error) {
	defer httpx.MarkBolt(&err)
	return s.db.Batch(func(tx *bbolt.Tx) error { return tx.Bucket(bCarts).Delete([]byte(id)) })
}
