package streams

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/streamd/streamd/internal/testenv"
)

func stores(t *testing.T) map[string]Store {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "s.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	bs, err := NewBoltStore(db)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]Store{"bolt": bs, "redis": NewRedisStore(testenv.Redis(t, 8))}
}

// The registry behaves the same on both stores.
func TestRegistryConformance(t *testing.T) {
	for name, store := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			var changes []string
			g := &Registry{Store: store}
			if err := g.Initialize(); err != nil {
				t.Fatal(err)
			}
			g.Watch(func(r Record, deleted bool) {
				changes = append(changes, map[bool]string{false: "+", true: "-"}[deleted]+r.ID)
			})
			r, err := g.Create(ctx, Record{ID: "s1", Title: "One"})
			if err != nil || r.PublishKey == "" || len(r.PublishKey) < 20 {
				t.Fatalf("create: %+v %v", r, err)
			}
			if _, err := g.Create(ctx, Record{ID: "s1"}); !errors.Is(err, ErrExists) {
				t.Fatalf("duplicate create: %v", err)
			}
			for _, bad := range []Record{{ID: "has space"}, {ID: "-lead"}, {ID: "ok", Source: "http://camera/x"}} {
				if _, err := g.Create(ctx, bad); !errors.Is(err, errInvalid) {
					t.Fatalf("create %+v: %v, want invalid", bad, err)
				}
			}
			if _, err := g.Create(ctx, Record{ID: "cam", Source: "rtsp://u:p@10.0.0.9/live"}); err != nil {
				t.Fatal(err)
			}
			got, err := g.Get(ctx, "s1")
			if err != nil || got.PublishKey != r.PublishKey || got.Title != "One" {
				t.Fatalf("get: %+v %v", got, err)
			}
			list, err := g.List(ctx)
			if err != nil || len(list) != 2 {
				t.Fatalf("list: %d %v", len(list), err)
			}
			if ok, _ := g.StreamExists(ctx, "nosuch"); ok {
				t.Fatal("unknown stream exists")
			}
			if err := g.Delete(ctx, "s1"); err != nil {
				t.Fatal(err)
			}
			if _, err := g.Get(ctx, "s1"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("get after delete: %v", err)
			}
			if err := g.Delete(ctx, "s1"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("delete twice: %v", err)
			}
			if len(changes) != 3 || changes[0] != "+s1" || changes[2] != "-s1" {
				t.Fatalf("changes %v", changes)
			}
			if _, created, err := g.EnsureDemo(ctx, "demo", "Demo"); err != nil || !created {
				t.Fatalf("ensure demo: %v %v", created, err)
			}
			if _, created, err := g.EnsureDemo(ctx, "demo", "Demo"); err != nil || created {
				t.Fatalf("ensure demo again: %v %v", created, err)
			}
		})
	}
}

// With a CacheTTL, a record deleted behind this registry's back (by another
// node of a cluster) stops being served once the TTL has passed.
func TestCacheTTL(t *testing.T) {
	store := stores(t)["redis"]
	ctx := context.Background()
	a := &Registry{Store: store, CacheTTL: 50 * time.Millisecond}
	b := &Registry{Store: store}
	_ = a.Initialize()
	_ = b.Initialize()
	if _, err := b.Create(ctx, Record{ID: "gone"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Get(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(80 * time.Millisecond)
	if _, err := a.Get(ctx, "gone"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted record still served: %v", err)
	}
}
