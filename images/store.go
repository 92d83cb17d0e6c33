package images

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/redis/go-redis/v9"
)

// DirStore keeps images as files in a directory (one node).
type DirStore struct{ Dir string }

// Put writes the file atomically (temp file, then rename).
func (d DirStore) Put(_ context.Context, name string, b []byte) error {
	if err := os.MkdirAll(d.Dir, 0o755); err != nil {
		return fmt.Errorf("images dir: %w", err)
	}
	f, err := os.CreateTemp(d.Dir, ".up-*")
	if err != nil {
		return fmt.Errorf("images: %w", err)
	}
	defer os.Remove(f.Name()) // no-op after the rename
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("images: write: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("images: write: %w", err)
	}
	if err := os.Rename(f.Name(), filepath.Join(d.Dir, name)); err != nil {
		return fmt.Errorf("images: %w", err)
	}
	return nil
}

// Get reads a file; ErrNotFound when there is none.
func (d DirStore) Get(_ context.Context, name string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(d.Dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotFound
	}
	return b, err
}

// RedisStore keeps images in Redis so every node of a cluster serves
// them. MaxBytes caps one stored image.
type RedisStore struct {
	C        *redis.Client
	Prefix   string // default "streamd:images:"
	MaxBytes int    // default 512 KiB
}

func (r RedisStore) key(name string) string {
	if r.Prefix == "" {
		return "streamd:images:" + name
	}
	return r.Prefix + name
}

// Put stores the image (names are content hashes: same name, same bytes).
func (r RedisStore) Put(ctx context.Context, name string, b []byte) error {
	limit := r.MaxBytes
	if limit <= 0 {
		limit = 512 << 10
	}
	if len(b) > limit {
		return badImage(fmt.Sprintf("the resized image is %d KiB, over the cluster's %d KiB per image", len(b)>>10, limit>>10))
	}
	if err := r.C.Set(ctx, r.key(name), b, 0).Err(); err != nil {
		return fmt.Errorf("images: redis: %w", err)
	}
	return nil
}

// Get reads an image; ErrNotFound when there is none.
func (r RedisStore) Get(ctx context.Context, name string) ([]byte, error) {
	b, err := r.C.Get(ctx, r.key(name)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("images: redis: %w", err)
	}
	return b, nil
}
