// RedisStore's carts: one JSON key per cart.

package cart

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/streamd/streamd/internal/httpx"
)

func (s *RedisStore) cartKey(id string) string { return s.prefix + "cart:" + id }

func (s *RedisStore) PutCart(ctx context.Context, c Cart) (err error) {
	defer httpx.MarkRedis(&err)
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if err := s.c.Set(ctx, s.cartKey(c.ID), b, 7*24*time.Hour).Err(); err != nil {
		return fmt.Errorf("put cart: %w", err)
	}
	return nil
}

func (s *RedisStore) GetCart(ctx context.Context, id string) (_ Cart, err error) {
	defer httpx.MarkRedis(&err)
	var c Cart
	if err := s.getJSON(ctx, s.cartKey(id), "cart", &c); err != nil {
		return Cart{}, err
	}
	return c, nil
}

func (s *RedisStore) DeleteCart(ctx context.Context, id string) (err error) {
	defer httpx.MarkRedis(&err)
	return s.c.Del(ctx, s.cartKey(id)).Err()
}
