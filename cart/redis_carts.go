// RedisStore's carts: one JSON key per cart.

package cart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
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
