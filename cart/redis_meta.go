// RedisStore's small records beside the orders (see BoltStore's).

package cart

import (
	"context"
	"fmt"
)

func (s *RedisStore) metaKey(k string) string { return s.prefix + "meta:" + k }

func (s *RedisStore) PutMeta(ctx context.Context, key, value string) error {
	if err := s.c.Set(ctx, s.metaKey(key), value, 0).Err(); err != nil {
		return fmt.Errorf("put meta: %w", err)
	}
	return nil
}

func (s *RedisStore) GetMeta(ctx context.Context, key string) (string, error) {
	raw, err := s.get(ctx, s.metaKey(key), "get meta")
	return string(raw), err
}
