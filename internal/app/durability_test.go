package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/streamd/streamd/internal/rtctest"
)

var (
	buildOnce sync.Once
	builtBin  string // the streamd binary, built once per test run
	buildErr  error
)

// buildStreamd compiles the real binary once for all the tests that run it
// (TestMain removes it).
func buildStreamd(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "streamd-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "streamd")
		if out, err := exec.Command("go", "build", "-o", builtBin, "github.com/streamd/streamd/cmd/streamd").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// binaryServer is the real streamd binary on a data dir and port that
// survive its restarts.
type binaryServer struct {
	t     *testing.T
	bin   string
	dir   string
	port  int
	base  string
	extra []string
}

// newBinaryServer prepares (does not start) a server; extra flags are
// passed on every start.
func newBinaryServer(t *testing.T, extra ...string) *binaryServer {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	port := freePort(t)
	return &binaryServer{t: t, bin: buildStreamd(t), dir: t.TempDir(), port: port, base: fmt.Sprintf("http://127.0.0.1:%d", port), extra: extra}
}

func (s *binaryServer) start() *exec.Cmd {
	s.t.Helper()
	return runStreamd(s.t, s.bin, s.dir, s.port, s.extra...)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// runStreamd starts the binary and waits for /healthz.
func runStreamd(t *testing.T, bin, dir string, port int, extra ...string) *exec.Cmd {
	t.Helper()
	args := append([]string{"--http", fmt.Sprintf("127.0.0.1:%d", port), "--webrtc-udp", "127.0.0.1:0", "--webrtc-tcp", "127.0.0.1:0", "--webrtc-ip", "127.0.0.1",
		"--rtsp", "", "--data", dir, "--staff-token", testStaff}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if !testing.Verbose() {
		cmd.Stdout, cmd.Stderr = nil, nil
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	url := fmt.Sprintf("http://127.0.0.1:%d/healthz", port)
	for i := 0; i < 200; i++ {
		if res, err := http.Get(url); err == nil {
			res.Body.Close()
			return cmd
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("streamd did not come up")
	return nil
}

// TestOrdersSurviveSIGKILL kills streamd with SIGKILL under checkout load
// and restarts it on the same data dir: every order that got a 201 is
// there, and no stock stays held once the hold time has passed.
func TestOrdersSurviveSIGKILL(t *testing.T) {
	bs := newBinaryServer(t, "--hold-ttl", "2s")
	base := bs.base
	srv := bs.start()
	const stock = 100000
	if code := api(t, "POST", base+"/api/products", testStaff, map[string]any{"id": "tee", "title": "Tee", "price": map[string]any{"amount": 1500, "currency": "eur"}, "stock": stock}, nil); code != 201 {
		t.Fatalf("create product: %d", code)
	}

	var mu sync.Mutex
	var got []string // order ids that got a 201
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				body, _ := json.Marshal(map[string]any{"items": []map[string]any{{"product_id": "tee", "quantity": 1}},
					"buyer": map[string]any{"email": "ana@example.com", "name": "Ana"}, "delivery": map[string]any{"method": "pickup"}})
				req, _ := http.NewRequest("POST", base+"/api/checkout", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Idempotency-Key", fmt.Sprintf("kill-%d-%d", w, i))
				res, err := client.Do(req)
				if err != nil {
					continue // the server is being killed
				}
				var o struct {
					ID string `json:"order_id"`
				}
				_ = json.NewDecoder(res.Body).Decode(&o)
				res.Body.Close()
				if res.StatusCode == 201 {
					mu.Lock()
					got = append(got, o.ID)
					mu.Unlock()
				}
			}
		}(w)
	}
	time.Sleep(1500 * time.Millisecond)
	if err := srv.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = srv.Process.Wait()
	close(stop)
	wg.Wait()
	if len(got) < 50 {
		t.Fatalf("only %d orders before the kill: the load did not run", len(got))
	}

	bs.start()
	for _, id := range got {
		var o struct {
			Status string `json:"status"`
		}
		if code := api(t, "GET", base+"/api/orders/"+id, testStaff, nil, &o); code != 200 || o.Status != "paid" {
			t.Fatalf("order %s got a 201 before the kill; after restart: HTTP %d status %q", id, code, o.Status)
		}
	}
	// Holds of requests cut off by the kill expire and return to stock.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var p struct {
			Available int `json:"available"`
			SKUs      []struct {
				Held int `json:"held"`
				Sold int `json:"sold"`
			} `json:"skus"`
		}
		api(t, "GET", base+"/api/products/tee", testStaff, nil, &p) // held/sold: staff only
		held, sold := 0, 0
		for _, s := range p.SKUs {
			held += s.Held
			sold += s.Sold
		}
		if held == 0 && p.Available == stock-sold && sold >= len(got) {
			t.Logf("%d orders acknowledged before SIGKILL, all present after restart; %d sold, 0 held, %d available", len(got), sold, p.Available)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after restart: %d held, %d sold (%d acknowledged), %d available of %d", held, sold, len(got), p.Available, stock)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestGracefulShutdown: SIGTERM closes the peers, flushes the store and
// exits 0; what was stored is there after a restart.
func TestGracefulShutdown(t *testing.T) {
	bs := newBinaryServer(t)
	base := bs.base
	srv := bs.start()
	if code := api(t, "POST", base+"/api/streams", testStaff, map[string]any{"id": "keep", "title": "Kept"}, nil); code != 201 {
		t.Fatalf("create stream: %d", code)
	}
	rapi, err := rtctest.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	viewer, err := rtctest.Subscribe(ctx, rapi, base+"/whep/keep")
	if err != nil {
		t.Fatal(err)
	}
	defer viewer.PC.Close()
	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("streamd exited with %v after SIGTERM", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("streamd did not exit within 10 s of SIGTERM")
	}
	// The viewer's peer was closed by the server (DTLS close), not left to time out.
	deadline := time.Now().Add(3 * time.Second)
	for viewer.PC.ConnectionState() == webrtc.PeerConnectionStateConnected {
		if time.Now().After(deadline) {
			t.Fatal("the viewer's peer connection is still up after shutdown")
		}
		time.Sleep(50 * time.Millisecond)
	}
	bs.start()
	var rec struct {
		Title string `json:"title"`
	}
	if code := api(t, "GET", base+"/api/streams/keep", testStaff, nil, &rec); code != 200 || rec.Title != "Kept" {
		t.Fatalf("after restart: %d %+v", code, rec)
	}
}
