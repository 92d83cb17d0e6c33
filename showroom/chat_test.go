package showroom

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/streamd/streamd/internal/signer"
	"github.com/streamd/streamd/internal/testenv"
	"github.com/streamd/streamd/overlay"
)

// chatStores are the ChatStore implementations under one conformance suite
// (Redis DB 15 is the showroom's).
func chatStores(t *testing.T) map[string]ChatStore {
	return map[string]ChatStore{"memory": NewMemoryChatStore(), "redis": NewRedisChatStore(testenv.Redis(t, 15)),
		"bolt": openBoltChat(t, filepath.Join(t.TempDir(), "chat.db"))}
}

func openBoltChat(t *testing.T, path string) *BoltChatStore {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	st, err := NewBoltChatStore(db)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// Settings and bans outlive a restart of a single node; lifting a ban does too.
func TestBoltChatStoreRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "chat.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := NewBoltChatStore(db)
	if err != nil {
		t.Fatal(err)
	}
	want := ChatSettings{Enabled: true, SlowS: 30, BlockedWords: []string{"spam"}}
	for _, err := range []error{
		st.SetSettings(ctx, "s", want),
		st.SetSettings(ctx, "quiet", ChatSettings{}),
		st.SetBan(ctx, "s", "troll", BanShadow),
		st.SetBan(ctx, "s", "loud", BanMute),
		st.SetBan(ctx, "s", "loud", ""),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	st2 := openBoltChat(t, path)
	if s, err := st2.Settings(ctx, "s"); err != nil || !reflect.DeepEqual(s, want) {
		t.Fatalf("settings after restart: %+v %v", s, err)
	}
	if s, _ := st2.Settings(ctx, "quiet"); s.Enabled || s.BlockedWords == nil {
		t.Fatalf("chat turned off before the restart: %+v", s)
	}
	if bans, err := st2.Bans(ctx, "s"); err != nil || !reflect.DeepEqual(bans, map[string]string{"troll": BanShadow}) {
		t.Fatalf("bans after restart: %v %v", bans, err)
	}
}

func TestChatStoreConformance(t *testing.T) {
	ctx := context.Background()
	for name, st := range chatStores(t) {
		t.Run(name, func(t *testing.T) {
			if s, err := st.Settings(ctx, "s"); err != nil || !reflect.DeepEqual(s, ChatSettings{Enabled: true, BlockedWords: []string{}}) {
				t.Fatalf("default settings: %+v %v", s, err)
			}
			want := ChatSettings{Enabled: false, SlowS: 10, BlockedWords: []string{"spam", "buy now"}}
			if err := st.SetSettings(ctx, "s", want); err != nil {
				t.Fatal(err)
			}
			if s, err := st.Settings(ctx, "s"); err != nil || !reflect.DeepEqual(s, want) {
				t.Fatalf("settings: %+v %v", s, err)
			}
			if s, _ := st.Settings(ctx, "other"); !s.Enabled {
				t.Fatal("settings leak across streams")
			}
			for _, b := range [][2]string{{"v1", BanMute}, {"v2", BanShadow}, {"v3", BanMute}, {"v3", ""}} {
				if err := st.SetBan(ctx, "s", b[0], b[1]); err != nil {
					t.Fatal(err)
				}
			}
			if m, _ := st.Ban(ctx, "s", "v2"); m != BanShadow {
				t.Fatalf("ban v2: %q", m)
			}
			if m, _ := st.Ban(ctx, "other", "v2"); m != "" {
				t.Fatalf("ban leaks across streams: %q", m)
			}
			if bans, err := st.Bans(ctx, "s"); err != nil || !reflect.DeepEqual(bans, map[string]string{"v1": BanMute, "v2": BanShadow}) {
				t.Fatalf("bans: %v %v", bans, err)
			}
			// Burst 3, then one per 200 ms.
			every := 200 * time.Millisecond
			for i := 0; i < 3; i++ {
				if ok, err := st.Allow(ctx, "s", "v9", every, 3, 0); !ok || err != nil {
					t.Fatalf("burst message %d refused: %v", i, err)
				}
			}
			if ok, _ := st.Allow(ctx, "s", "v9", every, 3, 0); ok {
				t.Fatal("4th message of the burst allowed")
			}
			if ok, _ := st.Allow(ctx, "s", "v8", every, 3, 0); !ok {
				t.Fatal("another viewer is limited too")
			}
			time.Sleep(every + 30*time.Millisecond)
			if ok, _ := st.Allow(ctx, "s", "v9", every, 3, 0); !ok {
				t.Fatal("refilled token refused")
			}
			if ok, _ := st.Allow(ctx, "s", "v9", every, 3, 0); ok {
				t.Fatal("a second token appeared")
			}
			// Slow mode: one message per slow, whatever the bucket holds.
			if ok, _ := st.Allow(ctx, "s", "v7", every, 3, 300*time.Millisecond); !ok {
				t.Fatal("slow mode: first message refused")
			}
			if ok, _ := st.Allow(ctx, "s", "v7", every, 3, 300*time.Millisecond); ok {
				t.Fatal("slow mode: second message allowed")
			}
			time.Sleep(330 * time.Millisecond)
			if ok, _ := st.Allow(ctx, "s", "v7", every, 3, 300*time.Millisecond); !ok {
				t.Fatal("slow mode: message after the interval refused")
			}
		})
	}
}

func TestBlockedWords(t *testing.T) {
	words := []string{"scam", "buy now", "ass"}
	for text, want := range map[string]bool{
		"this is a SCAM!": true, "Buy now please": true, "scammer": false, "first class": false,
		"ass": true, "nice bag": false, "kick-ass deal": true, "": false,
	} {
		if got := blocked(text, words); got != want {
			t.Errorf("blocked(%q) = %v", text, got)
		}
	}
}

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{"  Ann ": "Ann", "Zoë 👩‍👩‍👧": "Zoë 👩‍👩‍👧", "": "", "   ": "", "a\nb": "", "a\u202eb": "", strings.Repeat("x", 32): strings.Repeat("x", 32), strings.Repeat("x", 33): ""} {
		got, ok := cleanName(in)
		if got != want || ok != (want != "") {
			t.Errorf("cleanName(%q) = %q, %v", in, got, ok)
		}
	}
}

// TestChatCheck: the rules a viewer's message passes, in order.
func TestChatCheck(t *testing.T) {
	ctx := context.Background()
	key := make([]byte, 32)
	sg, _ := signer.New(key)
	s := &Server{Streams: fakeStreams{"s": true}, Signer: sg, ChatEvery: time.Hour}
	if err := s.Initialize(); err != nil {
		t.Fatal(err)
	}
	code := func(err error) string {
		var ce *overlay.ChatError
		if errors.As(err, &ce) {
			return ce.Code
		}
		if err != nil {
			return err.Error()
		}
		return ""
	}
	ann := overlay.Viewer{ID: "v_ann", Name: "Ann"}
	if _, err := s.Check(ctx, "s", overlay.Viewer{}, false, "hi"); code(err) != "no_viewer" {
		t.Fatalf("anonymous: %v", err)
	}
	if _, err := s.Check(ctx, "s", ann, true, strings.Repeat("é", 281)); code(err) != "too_long" {
		t.Fatalf("281 characters: %v", err)
	}
	if hidden, err := s.Check(ctx, "s", ann, true, strings.Repeat("é", 280)); err != nil || hidden {
		t.Fatalf("280 characters: %v %v", hidden, err)
	}
	_ = s.ChatStore.SetSettings(ctx, "s", ChatSettings{Enabled: true, BlockedWords: []string{"scam"}})
	if hidden, err := s.Check(ctx, "s", ann, true, "a scam"); err != nil || !hidden {
		t.Fatalf("blocked word: %v %v", hidden, err)
	}
	if _, err := s.Check(ctx, "s", ann, true, "third"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Check(ctx, "s", ann, true, "fourth"); code(err) != "rate_limited" {
		t.Fatalf("over the burst: %v", err)
	}
	bob := overlay.Viewer{ID: "v_bob", Name: "Bob"}
	_ = s.ChatStore.SetBan(ctx, "s", bob.ID, BanShadow)
	if hidden, err := s.Check(ctx, "s", bob, true, "hello"); err != nil || !hidden {
		t.Fatalf("shadow: %v %v", hidden, err)
	}
	_ = s.ChatStore.SetBan(ctx, "s", bob.ID, BanMute)
	if _, err := s.Check(ctx, "s", bob, true, "hello"); code(err) != "muted" {
		t.Fatalf("muted: %v", err)
	}
	_ = s.ChatStore.SetSettings(ctx, "s", ChatSettings{Enabled: false})
	if _, err := s.Check(ctx, "s", ann, true, "hello"); code(err) != "chat_off" {
		t.Fatalf("chat off: %v", err)
	}

	// The viewer cookie: signed, HttpOnly, SameSite=Lax; a rename keeps the id.
	mux := http.NewServeMux()
	s.ChatOverlay = nil
	s.registerChat(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("POST", "/api/viewer", strings.NewReader(`{"name":"  <img src=x onerror=alert(1)> "}`)))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"name":"\u003cimg src=x onerror=alert(1)\u003e"`) {
		t.Fatalf("POST /api/viewer: %d %s", rec.Code, rec.Body)
	}
	ck := rec.Result().Cookies()
	if len(ck) != 1 || ck[0].Name != ViewerCookie || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteLaxMode || ck[0].Path != "/" {
		t.Fatalf("cookie: %+v", ck)
	}
	req := httptest.NewRequest("GET", "/ws/s", nil)
	req.AddCookie(ck[0])
	v, ok := s.Viewer(req)
	if !ok || !strings.HasPrefix(v.ID, "v_") || v.Name != "<img src=x onerror=alert(1)>" {
		t.Fatalf("viewer from cookie: %+v %v", v, ok)
	}
	req = httptest.NewRequest("POST", "/api/viewer", strings.NewReader(`{"name":"Ann"}`))
	req.AddCookie(ck[0])
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	if !strings.Contains(rec.Body.String(), `"id":"`+v.ID+`","name":"Ann"`) {
		t.Fatalf("rename: %s", rec.Body)
	}
	tampered := *ck[0]
	tampered.Value = strings.Replace(tampered.Value, ".", "x.", 1)
	req = httptest.NewRequest("GET", "/api/viewer", nil)
	req.AddCookie(&tampered)
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	if rec.Code != 404 {
		t.Fatalf("tampered cookie: %d", rec.Code)
	}
	for _, bad := range []string{`{"name":""}`, `{"name":"a\u0007"}`, `{"name":"` + strings.Repeat("n", 33) + `"}`} {
		rec = httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("POST", "/api/viewer", strings.NewReader(bad)))
		if rec.Code != 422 || !strings.Contains(rec.Body.String(), "invalid_name") {
			t.Fatalf("%s: %d %s", bad, rec.Code, rec.Body)
		}
	}
}
