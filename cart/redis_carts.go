// RedisStore's carts: one JSON key per cart.

package cart

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

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
	var c Cart
	if err := s.getJSON(ctx, s.cartKey(id), "cart", &c); err != nil {
		return Cart{}, err
	}
	return c, nil
}

func (s *RedisStore) DeleteCart(ctx context.Context, id string) error {
	return s.c.Del(ctx, s.cartKey(id)).Err()
}
