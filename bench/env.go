package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Env is what the scenarios share: options, the results folder, the
// progress line and the servers the bench started (stopped by Close).
type Env struct {
	Opts     Options
	Progress *Progress

	mu      sync.Mutex
	bin     string
	label   string // the server column of fanout rows ("" = "streamd")
	binOver string // the binary of a -compare run
	tmp     string
	servers []*Server
}

func newEnv(o Options) *Env {
	w := o.ProgressOut
	if w == nil {
		w = os.Stderr
	}
	return &Env{Opts: o, Progress: newProgress(w)}
}

// Close stops every server the bench started and removes its temp files.
func (e *Env) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.servers {
		s.Stop()
	}
	e.servers = nil
	if e.tmp != "" {
		_ = os.RemoveAll(e.tmp)
	}
	e.Progress.Stop()
}

// Server is a streamd the bench talks to (started by it, or external).
type Server struct {
	Base  string // http://host:port
	Staff string
	PID   int // 0: unknown (no CPU/RSS figures)
	cmd   *exec.Cmd
	done  chan struct{}
}

// Stop kills a server the bench started (by its PID) and waits for it.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
}

// streamdBinary builds ./cmd/streamd once (or returns -streamd).
func (e *Env) streamdBinary() (string, error) {
	if e.binOver != "" {
		return e.binOver, nil
	}
	if e.Opts.Streamd != "" {
		return e.Opts.Streamd, nil
	}
	if e.bin != "" {
		return e.bin, nil
	}
	dir, err := e.tmpDir()
	if err != nil {
		return "", err
	}
	e.Progress.Set("building streamd")
	if e.bin, err = buildStreamd(dir); err != nil {
		return "", err
	}
	return e.bin, nil
}

// buildStreamd builds this module's ./cmd/streamd into dir.
func buildStreamd(dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "streamd")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/streamd")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/streamd: %v: %s", err, out)
	}
	return bin, nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// StartServer starts streamd on free loopback ports with its own data dir.
// extra flags are appended (e.g. --redis URL; --rtsp ADDR turns RTSP on).
// Its log goes to <out>/server-<name>.log.
func (e *Env) StartServer(ctx context.Context, name string, extra ...string) (*Server, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	bin, err := e.streamdBinary()
	if err != nil {
		return nil, err
	}
	httpPort, err := freePort("tcp")
	if err != nil {
		return nil, err
	}
	udpPort, err := freePort("udp")
	if err != nil {
		return nil, err
	}
	tmp, err := e.tmpDir()
	if err != nil {
		return nil, err
	}
	data, err := os.MkdirTemp(tmp, "data-"+name+"-")
	if err != nil {
		return nil, err
	}
	staff := "bench-staff-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	args := []string{"--http", fmt.Sprintf("127.0.0.1:%d", httpPort), "--webrtc-udp", fmt.Sprintf("127.0.0.1:%d", udpPort),
		"--webrtc-ip", "127.0.0.1", "--data", data, "--staff-token", staff}
	if !slices.Contains(extra, "--rtsp") {
		args = append(args, "--rtsp", "") // RTSP off unless extra turns it on
	}
	if e.Opts.PProf {
		args = append(args, "--pprof")
	}
	args = append(args, extra...)
	logf, err := os.Create(filepath.Join(e.Opts.Out, "server-"+name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	// No ICE-over-TCP port: servers run side by side and --webrtc-tcp
	// defaults to :8189. Set through the environment, which binaries that
	// predate the flag ignore.
	// All the bench's clients come from 127.0.0.1: lift the per-IP
	// connection cap (thousands of overlay and chat viewers).
	cmd.Env = append(os.Environ(), "STREAMD_WEBRTC_TCP=", "STREAMD_MAX_CONNS_PER_IP=-1")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	s := &Server{Base: fmt.Sprintf("http://127.0.0.1:%d", httpPort), Staff: staff, PID: cmd.Process.Pid, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(s.done) }()
	e.servers = append(e.servers, s)
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := http.Get(s.Base + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return s, nil
			}
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("streamd exited at start (see %s)", logf.Name())
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("streamd did not answer /healthz in 20 s (see %s)", logf.Name())
		}
	}
}

// tmpDir is the bench's temp folder (the binary, data dirs), made once.
func (e *Env) tmpDir() (string, error) {
	if e.tmp == "" {
		var err error
		if e.tmp, err = os.MkdirTemp("", "streamd-bench-"); err != nil {
			return "", err
		}
	}
	return e.tmp, nil
}

// target is the streamd the overlay, checkout and glass scenarios use:
// -base, or one the bench starts.
func (e *Env) target(ctx context.Context, name string) (*Server, error) {
	if e.Opts.Base != "" {
		return &Server{Base: strings.TrimRight(e.Opts.Base, "/"), Staff: e.Opts.Staff, PID: e.Opts.PID}, nil
	}
	return e.StartServer(ctx, name)
}

func freePort(network string) (int, error) {
	if network == "udp" {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// API does a JSON request against the server; out may be nil.
func (s *Server) API(ctx context.Context, method, path string, body, out any) (int, error) {
	url := s.Base + path
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if s.Staff != "" {
		req.Header.Set("Authorization", "Bearer "+s.Staff)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if out != nil && len(b) > 0 && res.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			return res.StatusCode, fmt.Errorf("%s %s: decode %q: %w", method, url, b, err)
		}
	}
	if res.StatusCode >= 300 {
		return res.StatusCode, fmt.Errorf("%s %s: HTTP %d: %s", method, url, res.StatusCode, bytes.TrimSpace(b))
	}
	return res.StatusCode, nil
}

// CreateStream makes a stream and returns its publish key.
func (s *Server) CreateStream(ctx context.Context, id string) (string, error) {
	var out struct {
		PublishKey string `json:"publish_key"`
	}
	if _, err := s.API(ctx, "POST", "/api/streams", map[string]any{"id": id, "title": "bench " + id}, &out); err != nil {
		return "", err
	}
	return out.PublishKey, nil
}

// CreateProduct makes a product with the given stock.
func (s *Server) CreateProduct(ctx context.Context, id string, stock int) error {
	_, err := s.createProduct(ctx, id, stock)
	return err
}

// EnsureProduct is CreateProduct where an existing product (409, e.g. on a
// -base server from an earlier run) is fine.
func (s *Server) EnsureProduct(ctx context.Context, id string, stock int) error {
	if code, err := s.createProduct(ctx, id, stock); code != http.StatusConflict {
		return err
	}
	return nil
}

func (s *Server) createProduct(ctx context.Context, id string, stock int) (int, error) {
	return s.API(ctx, "POST", "/api/products", map[string]any{"id": id, "title": "Bench " + id,
		"price": map[string]any{"amount": 4900, "currency": "eur"}, "stock": stock}, nil)
}

// ── process figures (/proc) ──

const clockTick = 100 // USER_HZ on Linux

// procCPU is utime+stime of a process.
func procCPU(pid int) (time.Duration, bool) {
	if pid <= 0 {
		return 0, false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 { // fields 3.. after the name; utime is field 14
		return 0, false
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clockTick, true
}

// procRSS is VmRSS of a process in bytes.
func procRSS(pid int) (int64, bool) {
	if pid <= 0 {
		return 0, false
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			fs := strings.Fields(rest)
			if len(fs) > 0 {
				kb, _ := strconv.ParseInt(fs[0], 10, 64)
				return kb * 1024, true
			}
		}
	}
	return 0, false
}

// selfCPU is the bench process's own user+system time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// raiseFileLimit lifts RLIMIT_NOFILE to the hard limit (servers the bench
// starts inherit it).
func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

// usage samples a process's CPU and the bench's own over a window.
type usage struct {
	pid         int
	t0          time.Time
	cpu0, self0 time.Duration
	ok          bool
}

func startUsage(pid int) usage {
	u := usage{pid: pid, t0: time.Now(), self0: selfCPU()}
	u.cpu0, u.ok = procCPU(pid)
	return u
}

// end returns server CPU (cores, -1 unknown), server CPU time, bench cores.
func (u usage) end() (cores float64, cpu time.Duration, self float64) {
	wall := time.Since(u.t0).Seconds()
	self = (selfCPU() - u.self0).Seconds() / wall
	cores = -1
	if c, ok := procCPU(u.pid); ok && u.ok {
		cpu = c - u.cpu0
		cores = cpu.Seconds() / wall
	}
	return cores, cpu, self
}

// ── /metrics ──

// scrape sums every series of each metric name (over labels) and keeps
// each labelled series under its full name too.
func scrape(ctx context.Context, url string) (map[string]float64, error) {
	if url == "" {
		return nil, errors.New("no metrics URL")
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s: %d", url, res.StatusCode)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name := line
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		rest := line[len(name):]
		if i := strings.LastIndexByte(rest, '}'); i >= 0 {
			rest = rest[i+1:]
		}
		fs := strings.Fields(rest)
		if len(fs) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fs[0], 64)
		if err != nil {
			continue
		}
		m[name] += v
		if i := strings.IndexByte(line, '}'); i > 0 && line[len(name)] == '{' {
			m[line[:i+1]] = v // one labelled series, e.g. name{kind="video"}
		}
	}
	return m, sc.Err()
}

// ── statistics ──

// percentile of sorted values (nearest rank); p in [0,1].
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN() // no samples: missing, not 0 (written as null)
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

func sortedCopy(v []float64) []float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s
}

// ── progress line ──

// Progress is one status line on stderr, rewritten in place.
type Progress struct {
	w    io.Writer
	mu   sync.Mutex
	msg  string
	last string
	stop chan struct{}
	once sync.Once
	done chan struct{}
}

func newProgress(w io.Writer) *Progress {
	p := &Progress{w: w, stop: make(chan struct{}), done: make(chan struct{})}
	go p.loop()
	return p
}

func (p *Progress) loop() {
	defer close(p.done)
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.flush()
		}
	}
}

func (p *Progress) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.msg != p.last {
		fmt.Fprintf(p.w, "\r\033[K%s", p.msg)
		p.last = p.msg
	}
}

// Set replaces the status line.
func (p *Progress) Set(f string, a ...any) {
	p.mu.Lock()
	p.msg = fmt.Sprintf(f, a...)
	p.mu.Unlock()
}

// Done ends the current line.
func (p *Progress) Done() {
	p.flush()
	p.mu.Lock()
	if p.last != "" {
		fmt.Fprint(p.w, "\n")
	}
	p.msg, p.last = "", ""
	p.mu.Unlock()
}

// Stop ends the progress goroutine.
func (p *Progress) Stop() {
	p.once.Do(func() { close(p.stop); <-p.done })
}

// histQuantile estimates quantile q of a Prometheus histogram from the
// bucket counts gained between two scrapes (the upper bound of the bucket
// the quantile falls in); -1 when the histogram is absent or empty.
func histQuantile(before, after map[string]float64, name string, q float64) float64 {
	type bucket struct{ le, n float64 }
	var bs []bucket
	prefix := name + `_bucket{le="`
	for k, v := range after {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		le, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(k, prefix), `"}`), 64)
		if err != nil {
			le = math.Inf(1)
		}
		bs = append(bs, bucket{le, v - before[k]})
	}
	if len(bs) == 0 {
		return -1
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	total := bs[len(bs)-1].n
	if total <= 0 {
		return -1
	}
	for _, b := range bs {
		if b.n >= q*total {
			return b.le
		}
	}
	return bs[len(bs)-1].le
}
