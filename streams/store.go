package streams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
	bolt "go.etcd.io/bbolt"

	"github.com/streamd/streamd/internal/httpx"
)

var bucket = []byte("streams.records")

// BoltStore keeps records in the embedded bbolt file.
type BoltStore struct{ db *bolt.DB }

// NewBoltStore creates the bucket if needed.
func NewBoltStore(db *bolt.DB) (*BoltStore, error) {
	err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("streams bucket: %w", err)
	}
	return &BoltStore{db: db}, nil
}

func (s *BoltStore) Create(_ context.Context, r Record) (err error) {
	defer httpx.MarkBolt(&err)
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucket)
		if bk.Get([]byte(r.ID)) != nil {
			return ErrExists
		}
		return bk.Put([]byte(r.ID), b)
	})
}

func (s *BoltStore) Get(_ context.Context, id string) (_ Record, err error) {
	defer httpx.MarkBolt(&err)
	var r Record
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucket).Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		return json.Unmarshal(v, &r)
	})
	return r, err
}

func (s *BoltStore) List(_ context.Context) (_ []Record, err error) {
	defer httpx.MarkBolt(&err)
	var out []Record
	err = s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(_, v []byte) error {
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

func (s *BoltStore) Delete(_ context.Context, id string) (err error) {
	defer httpx.MarkBolt(&err)
	return s.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucket)
		if bk.Get([]byte(id)) == nil {
			return ErrNotFound
		}
		return bk.Delete([]byte(id))
	})
}

// RedisStore keeps records in Redis so every node of a cluster sees them.
type RedisStore struct{ c *redis.Client }

// NewRedisStore wraps a client.
func NewRedisStore(c *redis.Client) *RedisStore { return &RedisStore{c: c} }

const redisSet = "streamd:streams:ids"

func redisKey(id string) string { return "streamd:streams:rec:" + id }

func (s *RedisStore) Create(ctx context.Context, r Record) (err error) {
	defer httpx.MarkRedis(&err)
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	ok, err := s.c.SetNX(ctx, redisKey(r.ID), b, 0).Result()
	if err != nil {
		return fmt.Errorf("redis create stream: %w", err)
	}
	if !ok {
		return ErrExists
	}
	return s.c.SAdd(ctx, redisSet, r.ID).Err()
}

func (s *RedisStore) Get(ctx context.Context, id string) (_ Record, err error) {
	defer httpx.MarkRedis(&err)
	var r Record
	b, err := s.c.Get(ctx, redisKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return r, ErrNotFound
	}
	if err != nil {
		return r, fmt.Errorf("redis get stream: %w", err)
	}
	return r, json.Unmarshal(b, &r)
}

func (s *RedisStore) List(ctx context.Context) (_ []Record, err error) {
	defer httpx.MarkRedis(&err)
	ids, err := s.c.SMembers(ctx, redisSet).Result()
	if err != nil {
		return nil, fmt.Errorf("redis list streams: %w", err)
	}
	out := make([]Record, 0, len(ids))
	for _, id := range ids {
		r, err := s.Get(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (s *RedisStore) Delete(ctx context.Context, id string) (err error) {
	defer httpx.MarkRedis(&err)
	n, err := s.c.Del(ctx, redisKey(id)).Result()
	if err != nil {
		return fmt.Errorf("redis delete stream: %w", err)
	}
	s.c.SRem(ctx, redisSet, id)
	if n == 0 {
		return ErrNotFound
	}
	return nil
}
