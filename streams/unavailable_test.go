package streams

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	bolt "go.etcd.io/bbolt"

	"github.com/streamd/streamd/internal/testenv"
)

// TestStoreUnreachable: with Redis down or the bbolt file closed, every
// registry route answers 503 store_unavailable with Retry-After (not 500).
func TestStoreUnreachable(t *testing.T) {
	check := func(t *testing.T, st Store) {
		g := &Registry{Store: st, StaffToken: "staff"}
		if err := g.Initialize(); err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		g.Register(mux)
		for _, rt := range []struct{ method, path, body string }{
			{"POST", "/api/streams", `{"id":"s2","title":"Two"}`},
			{"GET", "/api/streams", ""},
			{"GET", "/api/streams/s1", ""},
			{"GET", "/api/streams/s1/public", ""},
			{"DELETE", "/api/streams/s1", ""},
		} {
			req := httptest.NewRequest(rt.method, rt.path, strings.NewReader(rt.body))
			req.Header.Set("Authorization", "Bearer staff")
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, req)
			var body map[string]any
			_ = json.Unmarshal(w.Body.Bytes(), &body)
			if w.Code != 503 || body["error"] != "store_unavailable" || w.Header().Get("Retry-After") == "" {
				t.Errorf("%s %s: %d %s", rt.method, rt.path, w.Code, w.Body)
			}
		}
		if ok, err := g.StreamExists(t.Context(), "s1"); ok || err == nil {
			t.Errorf("StreamExists with the store down: %v %v", ok, err)
		}
	}
	t.Run("redis", func(t *testing.T) {
		srv := testenv.StartRedisServer(t)
		c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
		t.Cleanup(func() { _ = c.Close() })
		srv.Kill()
		check(t, NewRedisStore(c))
	})
	t.Run("bolt", func(t *testing.T) {
		db, err := bolt.Open(filepath.Join(t.TempDir(), "s.db"), 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		st, err := NewBoltStore(db)
		if err != nil {
			t.Fatal(err)
		}
		_ = db.Close()
		check(t, st)
	})
}
