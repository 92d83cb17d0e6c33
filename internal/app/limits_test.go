package app

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// closedWithin reads c until the server closes it and returns how long
// that took from start (or fails after limit).
func closedWithin(t *testing.T, c net.Conn, start time.Time, limit time.Duration) time.Duration {
	t.Helper()
	_ = c.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open after %v", limit)
	}
	return time.Since(start)
}

// TestSlowClients: with 1 s read and idle timeouts, request bodies
// trickled at 1 byte/s and idle keep-alive connections are closed within
// the timeouts, while an overlay WebSocket that sends nothing stays open
// and a request whose body keeps coming at a real rate is served.
func TestSlowClients(t *testing.T) {
	a := startApp(t, func(c *Config) {
		c.ReadTimeout, c.IdleTimeout, c.WriteTimeout = time.Second, time.Second, 5*time.Second
		c.MaxConnsPerIP = -1
	})
	createStream(t, a, "show")
	addr := a.HTTPAddr()

	// The WebSocket is opened first and must outlive everything below.
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws/show", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.ReadMessage(); err != nil { // the snapshot
		t.Fatal(err)
	}
	wsOpened := time.Now()

	// 1-byte/s bodies on three kinds of route, 20 connections each.
	const perRoute = 20
	routes := []struct{ method, path, ctype string }{
		{"POST", "/api/checkout", "application/json"},
		{"POST", "/whep/show", "application/sdp"},
		{"POST", "/api/streams", "application/json"},
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var worst time.Duration
	// each runs f on a connection of its own, concurrently.
	each := func(n int, f func(c net.Conn) time.Duration) {
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Error(err)
					return
				}
				defer c.Close()
				took := f(c)
				mu.Lock()
				worst = max(worst, took)
				mu.Unlock()
			}()
		}
	}
	for _, rt := range routes {
		each(perRoute, func(c net.Conn) time.Duration {
			start := time.Now()
			fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nAuthorization: Bearer %s\r\nContent-Length: 1000\r\n\r\n", rt.method, rt.path, rt.ctype, testStaff)
			stop := make(chan struct{})
			go func() { // one byte a second until the server hangs up
				for {
					select {
					case <-stop:
						return
					case <-time.After(time.Second):
						if _, err := c.Write([]byte("{")); err != nil {
							return
						}
					}
				}
			}()
			defer close(stop)
			return closedWithin(t, c, start, 4*time.Second)
		})
	}

	// Idle keep-alive connections, after one request each.
	each(20, func(c net.Conn) time.Duration {
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || res.StatusCode != 200 || res.Close {
			t.Errorf("keep-alive request: %v %v", err, res)
			return 0
		}
		_, _ = io.Copy(io.Discard, res.Body)
		return closedWithin(t, c, time.Now(), 4*time.Second)
	})

	wg.Wait()
	t.Logf("slow bodies and idle connections closed within %v (timeouts 1 s)", worst)

	// The WebSocket stayed silent past every timeout and still works.
	if d := time.Since(wsOpened); d < 2*time.Second {
		time.Sleep(2*time.Second - d)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","t":1}`)); err != nil {
		t.Fatalf("websocket closed: %v", err)
	}
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("websocket closed after %v of silence: %v", time.Since(wsOpened), err)
		}
		if strings.Contains(string(b), `"pong"`) {
			break
		}
	}
}

// TestSteadyBodyNotCutOff: a body that keeps coming at a real rate (48 KB
// over 1.5 s, above the 16 KB/s floor) is read whole although it takes
// longer than the 1 s read timeout.
func TestSteadyBodyNotCutOff(t *testing.T) {
	a := &App{Config: Config{ReadTimeout: time.Second}}
	ts := httptest.NewServer(a.deadlines(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, n)
	})))
	defer ts.Close()
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < 15; i++ {
			_, _ = pw.Write(make([]byte, 3200))
			time.Sleep(100 * time.Millisecond)
		}
		_ = pw.Close()
	}()
	start := time.Now()
	res, err := http.Post(ts.URL, "application/octet-stream", pr)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(b) != "48000" {
		t.Fatalf("steady body after %v: %d %s", time.Since(start), res.StatusCode, b)
	}
	if d := time.Since(start); d < 1400*time.Millisecond {
		t.Fatalf("the body took only %v: the test proves nothing", d)
	}
}

// TestConnsPerIP: past MaxConnsPerIP connections from one address are
// closed at once; a freed place is taken again.
func TestConnsPerIP(t *testing.T) {
	a := startApp(t, func(c *Config) { c.MaxConnsPerIP = 4 })
	var held []net.Conn
	for i := 0; i < 4; i++ {
		c, err := net.Dial("tcp", a.HTTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		if res, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || res.StatusCode != 200 {
			t.Fatalf("conn %d: %v", i, err)
		}
		held = append(held, c)
	}
	over, err := net.Dial("tcp", a.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	fmt.Fprintf(over, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	if took := closedWithin(t, over, time.Now(), 2*time.Second); took > time.Second {
		t.Fatalf("the fifth connection was closed after %v", took)
	}
	held[0].Close()
	time.Sleep(100 * time.Millisecond)
	res, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get(a.BaseURL() + "/healthz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("after a place was freed: %v", err)
	}
	res.Body.Close()
}

// TestPprofNeedsStaff: /debug/pprof (with --pprof) answers only to the
// staff token, and a CPU profile longer than the write timeout is
// delivered whole.
func TestPprofNeedsStaff(t *testing.T) {
	a := startApp(t, func(c *Config) { c.PProf, c.WriteTimeout = true, time.Second })
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=2", "/debug/pprof/profile?seconds=1", "/debug/pprof/trace?seconds=1"} {
		if code := api(t, "GET", a.BaseURL()+path, "", nil, nil); code != 401 {
			t.Errorf("%s without token: %d, want 401", path, code)
		}
		if code := api(t, "GET", a.BaseURL()+path, "wrong", nil, nil); code != 401 {
			t.Errorf("%s with a wrong token: %d, want 401", path, code)
		}
	}
	req, _ := http.NewRequest("GET", a.BaseURL()+"/debug/pprof/profile?seconds=2", nil)
	req.Header.Set("Authorization", "Bearer "+testStaff)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("2 s profile with a 1 s write timeout: %v", err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 || len(b) < 100 {
		t.Fatalf("profile: %d, %d bytes, %v", res.StatusCode, len(b), err)
	}
	if code := api(t, "GET", a.BaseURL()+"/debug/pprof/", testStaff, nil, nil); code != 200 {
		t.Fatalf("index with the staff token: %d", code)
	}
}
