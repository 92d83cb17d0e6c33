package app

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd/internal/httpx"
)

// Slow and greedy clients. net/http's own timeouts are per server, but
// streamd's routes differ: WebSockets live for hours, WHEP/WHIP calls wait
// for ICE gathering, pprof streams for as long as asked, and an upload from
// a phone is slow but honest. So the server sets only the header timeout and
// the idle timeout, and deadlines() sets each request's own read and write
// deadlines through http.ResponseController.

// Defaults of the Config timeouts and limits (a zero field takes these).
const (
	defaultReadTimeout   = 10 * time.Second
	defaultWriteTimeout  = 60 * time.Second
	defaultIdleTimeout   = 60 * time.Second
	defaultMaxConnsPerIP = 1024
	// minBodyRate: a request body gets ReadTimeout plus one second per
	// this many bytes received, so a large upload over a slow link
	// finishes while a body trickled at a few bytes a second is cut off.
	minBodyRate = 16 << 10
)

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// isWebSocket reports an upgrade request: after the upgrade the overlay
// keeps its own read and write deadlines (pings every 30 s).
func isWebSocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// deadlines gives each request a write deadline and its body a read
// deadline; WebSocket upgrades get none.
func (a *App) deadlines(next http.Handler) http.Handler {
	readTimeout := orDefault(a.Config.ReadTimeout, defaultReadTimeout)
	writeTimeout := orDefault(a.Config.WriteTimeout, defaultWriteTimeout)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isWebSocket(r) {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		now := time.Now()
		_ = rc.SetWriteDeadline(now.Add(writeTimeout))
		// A request without a body gets no read deadline: net/http reads
		// the connection in the background during the handler, and a read
		// deadline passing there would cancel the request's context.
		if r.Body != nil && r.Body != http.NoBody && (r.ContentLength != 0 || len(r.TransferEncoding) > 0) {
			_ = rc.SetReadDeadline(now.Add(readTimeout))
			r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc, start: now, timeout: readTimeout}
		}
		next.ServeHTTP(w, r)
	})
}

// deadlineBody moves the read deadline on as the body arrives (at
// minBodyRate) and lifts it at the end of the body, for the same reason a
// bodiless request has none.
type deadlineBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	start   time.Time
	timeout time.Duration
	n       int64
	done    bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if b.done {
		return n, err
	}
	b.n += int64(n)
	if err != nil {
		b.done = true
		if err == io.EOF {
			_ = b.rc.SetReadDeadline(time.Time{})
		}
		return n, err
	}
	if n > 0 {
		_ = b.rc.SetReadDeadline(b.start.Add(b.timeout + time.Duration(b.n)*time.Second/minBodyRate))
	}
	return n, err
}

// ipLimitListener caps the connections open at once from one client IP: a
// client opening thousands of sockets runs the process out of descriptors
// for everyone. Connections over the cap are closed at once.
type ipLimitListener struct {
	net.Listener
	max     int
	refused prometheus.Counter

	mu sync.Mutex
	n  map[string]int
}

func newIPLimitListener(ln net.Listener, max int, reg prometheus.Registerer) *ipLimitListener {
	l := &ipLimitListener{Listener: ln, max: max, n: map[string]int{},
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "streamd_http_connections_refused_total",
			Help: "HTTP connections closed at once because their client IP had --max-conns-per-ip open."})}
	if reg != nil {
		reg.MustRegister(l.refused)
	}
	return l
}

func (l *ipLimitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := c.RemoteAddr().String()
		if h, _, err := net.SplitHostPort(ip); err == nil {
			ip = h
		}
		l.mu.Lock()
		if l.n[ip] >= l.max {
			l.mu.Unlock()
			l.refused.Inc()
			_ = c.Close()
			continue
		}
		l.n[ip]++
		l.mu.Unlock()
		return &ipConn{Conn: c, l: l, ip: ip}, nil
	}
}

type ipConn struct {
	net.Conn
	l    *ipLimitListener
	ip   string
	once sync.Once
}

// Close releases the connection's place (also for hijacked WebSockets,
// which close this same conn).
func (c *ipConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		if c.l.n[c.ip]--; c.l.n[c.ip] <= 0 {
			delete(c.l.n, c.ip)
		}
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// pprofHandler serves a /debug/pprof page to staff only (profiles show
// memory contents and the code's shape), with the write deadline moved past
// the ?seconds= a CPU profile or trace runs for.
func (a *App) pprofHandler(h http.HandlerFunc) http.Handler {
	writeTimeout := orDefault(a.Config.WriteTimeout, defaultWriteTimeout)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !httpx.RequireStaff(w, r, a.Config.StaffToken) {
			return
		}
		if s, err := strconv.Atoi(r.URL.Query().Get("seconds")); err == nil && s > 0 {
			_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Duration(s)*time.Second + writeTimeout))
		} else if strings.HasSuffix(r.URL.Path, "/profile") || strings.HasSuffix(r.URL.Path, "/trace") {
			// pprof's own default: a 30 s profile, 1 s trace.
			_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(30*time.Second + writeTimeout))
		}
		h(w, r)
	})
}
