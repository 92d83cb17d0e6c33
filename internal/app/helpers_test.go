package app

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

const testStaff = "staff-secret"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(viewerEnv); cfg != "" { // a viewer process of netns_harness_test.go
		os.Exit(runViewerProcess(cfg))
	}
	code := m.Run()
	if builtBin != "" {
		_ = os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("STREAMD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

// startApp runs a server on loopback ports with its own data dir.
func startApp(t testing.TB, mod func(*Config)) *App {
	t.Helper()
	cfg := Config{HTTP: "127.0.0.1:0", WebRTCUDP: "127.0.0.1:0", WebRTCIPs: []string{"127.0.0.1"}, Data: t.TempDir(), StaffToken: testStaff, LoopbackOnly: true}
	if mod != nil {
		mod(&cfg)
	}
	a, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("new app: %v", err)
	}
	if err := a.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(a.Close)
	return a
}

// api does a JSON request and decodes the answer into out (if non-nil).
func api(t testing.TB, method, url, token string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, url, b, err)
		}
	}
	return res.StatusCode
}

// createStream makes a stream and returns its publish key.
func createStream(t testing.TB, a *App, id string) string {
	t.Helper()
	var out struct {
		PublishKey string `json:"publish_key"`
	}
	if code := api(t, "POST", a.BaseURL()+"/api/streams", testStaff, map[string]any{"id": id, "title": "Test " + id}, &out); code != 201 {
		t.Fatalf("create stream %s: %d", id, code)
	}
	return out.PublishKey
}

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
