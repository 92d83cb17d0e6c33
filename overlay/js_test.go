package overlay

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/streamd/streamd/internal/testenv"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// TestJSClient runs web/static/overlay-client.js under node against a live
// server: resume after a dropped connection, snapshot after history loss,
// clock offset, and frame sync with a fake video. It needs Node 20.10+ (for
// its WebSocket); without it the test skips locally and fails under CI.
func TestJSClient(t *testing.T) {
	node := testenv.LookPath(t, "node", "install Node.js 20.10 or newer (make test's deps step tries apt-get install nodejs)")
	if v, err := exec.Command(node, "-e", "const [a,b]=process.versions.node.split('.').map(Number);process.exit(a>20||(a===20&&b>=10)?0:1)").CombinedOutput(); err != nil {
		testenv.Missing(t, "Node.js 20.10+ (found an older one) "+string(v), "install Node.js 20.10 or newer")
	}
	leakCheck(t)
	s := &Server{HistorySize: 16}
	if err := s.Initialize(); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	s.Register(mux)
	n := 0
	publish := func(w http.ResponseWriter, r *http.Request) bool {
		count, _ := strconv.Atoi(r.URL.Query().Get("count"))
		for i := 0; i < count; i++ {
			n++
			if _, err := s.PublishCard(r.Context(), "js", "update", json.RawMessage(fmt.Sprintf(`{"n":%d}`, n))); err != nil {
				http.Error(w, err.Error(), 500)
				return false
			}
		}
		return true
	}
	mux.HandleFunc("POST /test/publish", func(w http.ResponseWriter, r *http.Request) { publish(w, r) })
	mux.HandleFunc("POST /test/drop-and-publish", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		for _, rm := range s.rooms {
			rm.mu.Lock()
			for _, c := range rm.conns {
				_ = c.ws.Close() // like a network drop: no close frame
			}
			rm.mu.Unlock()
		}
		s.mu.Unlock()
		publish(w, r)
	})
	ts := httptest.NewServer(mux)
	defer func() { s.Close(); ts.Close() }()
	if _, err := s.PublishCard(context.Background(), "js", "show", json.RawMessage(`{"n":0}`)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--experimental-websocket", "--no-warnings", "testdata/client_check.mjs")
	cmd.Env = append(cmd.Environ(), "OVERLAY_HTTP="+ts.URL)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
