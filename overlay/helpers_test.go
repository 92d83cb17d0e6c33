package overlay

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/streamd/streamd/internal/testenv"
)

// busImpl is one Bus implementation under the conformance suites.
type busImpl struct {
	name string
	// newBus returns a fresh bus on empty storage; several calls in one test
	// share the storage (two nodes).
	newBus func(t *testing.T, history int) Bus
	// flush loses all history (nil: the implementation cannot).
	flush func(t *testing.T)
}

func busImpls(t *testing.T, db int) []busImpl {
	mem := busImpl{name: "memory", newBus: func(t *testing.T, history int) Bus {
		b := NewMemoryBus(history)
		t.Cleanup(func() { _ = b.Close() })
		return b
	}}
	var rc *redis.Client
	red := busImpl{name: "redis",
		newBus: func(t *testing.T, history int) Bus {
			if rc == nil {
				rc = testenv.Redis(t, db)
			}
			c := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(), DB: db})
			b := NewRedisBus(c, history)
			t.Cleanup(func() { _ = b.Close(); _ = c.Close() })
			return b
		},
		flush: func(t *testing.T) {
			if err := rc.FlushDB(context.Background()).Err(); err != nil {
				t.Fatal(err)
			}
		},
	}
	return []busImpl{mem, red}
}

// forEachBus runs f as a subtest per Bus implementation, with a leak check.
func forEachBus(t *testing.T, db int, f func(t *testing.T, impl busImpl)) {
	for _, impl := range busImpls(t, db) {
		t.Run(impl.name, func(t *testing.T) {
			leakCheck(t)
			f(t, impl)
		})
	}
}

// leakCheck fails the test when goroutines of the package's own types are
// still running after the test's cleanups.
func leakCheck(t testing.TB) {
	t.Helper()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		var stacks string
		for time.Now().Before(deadline) {
			buf := make([]byte, 1<<20)
			stacks = string(buf[:runtime.Stack(buf, true)])
			if !hasOwnGoroutines(stacks) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Errorf("goroutine leak:\n%s", ownGoroutines(stacks))
	})
}

var ownFrames = []string{"overlay.(*Server)", "overlay.(*conn)", "overlay.(*RedisBus)", "overlay.(*room)", "overlay.(*MemoryBus)"}

func ownGoroutines(stacks string) string {
	var out []string
	for _, g := range strings.Split(stacks, "\n\n") {
		if strings.Contains(g, "overlay.leakCheck") {
			continue
		}
		for _, f := range ownFrames {
			if strings.Contains(g, f) {
				out = append(out, g)
				break
			}
		}
	}
	return strings.Join(out, "\n\n")
}

func hasOwnGoroutines(stacks string) bool { return ownGoroutines(stacks) != "" }

type fakeClock struct{ ts atomic.Uint32 }

func (c *fakeClock) MediaTime(string) (uint32, bool) {
	v := c.ts.Load()
	return v, v != 0
}

type fakeStock struct {
	mu    sync.Mutex
	n     map[string]int
	reads atomic.Int64
}

func (f *fakeStock) set(p string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == nil {
		f.n = map[string]int{}
	}
	f.n[p] = n
}

func (f *fakeStock) Available(_ context.Context, p string) (int, error) {
	f.reads.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n[p], nil
}

// testServer starts a Server on bus behind an httptest server.
func testServer(t testing.TB, bus Bus, opt func(*Server)) (*Server, *httptest.Server) {
	t.Helper()
	s := &Server{Bus: bus, StockInterval: 50 * time.Millisecond, WriteTimeout: 2 * time.Second}
	if opt != nil {
		opt(s)
	}
	if err := s.Initialize(); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	s.Register(mux)
	ts := httptest.NewServer(mux)
	t.Cleanup(func() {
		s.Close()
		ts.Close()
	})
	return s, ts
}

type wireMsg struct {
	Type       string          `json:"type"`
	Seq        uint64          `json:"seq"`
	Epoch      string          `json:"epoch"`
	Live       *bool           `json:"live"`
	Card       json.RawMessage `json:"card"`
	CardID     string          `json:"card_id"`
	Stock      map[string]int  `json:"stock"`
	ID         string          `json:"id"`
	Action     string          `json:"action"`
	Media      *wireMedia      `json:"media"`
	ProductID  string          `json:"product_id"`
	Available  int             `json:"available"`
	Order      json.RawMessage `json:"order"`
	T          float64         `json:"t"`
	ServerTime int64           `json:"server_time"`
	Error      string          `json:"error"`
	Code       string          `json:"code"`
	Text       string          `json:"text"`
	Author     *ChatAuthor     `json:"author"`
	Chat       []wireMsg       `json:"chat"`
	Pin        json.RawMessage `json:"pin"`
	Message    json.RawMessage `json:"message"`
	Counts     map[string]int  `json:"counts"`
	raw        []byte
	at         time.Time
}

type wireMedia struct {
	RTPTS *uint32 `json:"rtp_ts"`
	Live  bool    `json:"live"`
}

// client is a test WebSocket client reading on its own goroutine.
type client struct {
	ws       *websocket.Conn
	msgs     chan wireMsg
	done     chan struct{}
	closeErr error
}

func wsURL(ts *httptest.Server, stream, query string) string {
	u := "ws" + strings.TrimPrefix(ts.URL, "http") + "/ws/" + stream
	if query != "" {
		u += "?" + query
	}
	return u
}

func dial(t testing.TB, ts *httptest.Server, stream, query string) *client {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(wsURL(ts, stream, query), nil)
	if err != nil {
		t.Fatalf("dial: %v (resp %v)", err, resp)
	}
	c := &client{ws: ws, msgs: make(chan wireMsg, 4096), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer close(c.msgs)
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				c.closeErr = err
				return
			}
			var m wireMsg
			if err := json.Unmarshal(data, &m); err != nil {
				c.closeErr = err
				return
			}
			m.raw, m.at = data, time.Now()
			c.msgs <- m
		}
	}()
	t.Cleanup(func() { c.close() })
	return c
}

func (c *client) close() {
	_ = c.ws.Close()
	<-c.done
}

func (c *client) next(t testing.TB) wireMsg {
	t.Helper()
	select {
	case m, ok := <-c.msgs:
		if !ok {
			t.Fatalf("connection ended: %v", c.closeErr)
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message within 5s")
	}
	return wireMsg{}
}

// nextOfType skips pongs/errors until a message of typ.
func (c *client) nextOfType(t testing.TB, typ string) wireMsg {
	t.Helper()
	for {
		if m := c.next(t); m.Type == typ {
			return m
		}
	}
}

// closed waits for the server to end the connection and returns the error.
func (c *client) closed(t testing.TB) error {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-c.msgs:
			if !ok {
				return c.closeErr
			}
		case <-deadline:
			t.Fatal("connection not closed within 5s")
			return nil
		}
	}
}

func closeCode(err error) int {
	if ce, ok := err.(*websocket.CloseError); ok {
		return ce.Code
	}
	return -1
}

// smallBufListener shrinks the server side send buffer of accepted conns.
type smallBufListener struct{ net.Listener }

func (l smallBufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

// smallRecvDialer dials with a tiny receive buffer.
var smallRecvDialer = &websocket.Dialer{
	NetDial: func(network, addr string) (net.Conn, error) {
		d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048)
			})
			if err != nil {
				return err
			}
			return serr
		}}
		return d.Dial(network, addr)
	},
	HandshakeTimeout: 5 * time.Second,
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
