package app

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/streamd/streamd/internal/rtctest"
	"github.com/streamd/streamd/internal/testenv"
)

// The harness for viewers behind a real bottleneck: a server on a Link's
// host address (startLinkedApp), a publisher looping a clip
// (publishH264Loop), and WHEP viewers in child processes (startViewer),
// inside the Link's namespace or on loopback, each reporting once a
// second what a player would have shown (rtctest.ViewerReport).

// viewerEnv makes the test binary a viewer instead of running tests: its
// value is a viewerConfig in JSON (TestMain hands it to runViewerProcess).
const viewerEnv = "STREAMD_TEST_VIEWER"

type viewerConfig struct {
	Endpoint string `json:"endpoint"` // the WHEP URL
	IP       string `json:"ip"`       // the one address ICE may use
}

// runViewerProcess is a viewer process's main: rtctest.Watch, each report
// a JSON line on stdout, until stdin closes or a SIGTERM.
func runViewerProcess(config string) int {
	var cfg viewerConfig
	if err := json.Unmarshal([]byte(config), &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", viewerEnv, err)
		return 2
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer cancel()
	go func() { // the test closes stdin to stop the viewer (or dies)
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	api, err := rtctest.NewAPIWith(rtctest.OnIP(cfg.IP))
	if err == nil {
		enc := json.NewEncoder(os.Stdout)
		err = rtctest.Watch(ctx, api, cfg.Endpoint, func(r rtctest.ViewerReport) { _ = enc.Encode(r) })
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "viewer %s: %v\n", cfg.Endpoint, err)
		return 1
	}
	return 0
}

// startLinkedApp runs a server on link's host address: viewers inside the
// namespace reach it there, and so do peers on the host (a publisher,
// a loopback viewer), through lo, unshaped.
func startLinkedApp(t *testing.T, link *testenv.Link) *App {
	t.Helper()
	addr := net.JoinHostPort(link.HostIP(), "0")
	return startApp(t, func(c *Config) {
		c.HTTP, c.WebRTCUDP, c.WebRTCIPs = addr, addr, []string{link.HostIP()}
	})
}

// publishH264Loop creates stream on a and publishes aus (Annex-B access
// units at fps) to it from a pion WHIP publisher on loopback, over and
// over, until the test ends.
func publishH264Loop(t *testing.T, a *App, stream string, aus [][]byte, fps int) {
	t.Helper()
	key := createStream(t, a, stream)
	api, err := rtctest.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	defer ccancel()
	pub, err := rtctest.Publish(cctx, api, a.BaseURL()+"/whip/"+stream, key, webrtc.MimeTypeH264)
	if err != nil {
		cancel()
		t.Fatalf("publish %s: %v", stream, err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		pub.Close()
	})
	wg.Go(func() {
		// Each frame at its time from the start: after a stall (a busy
		// machine) the late ones go at once, as an encoder's buffer would.
		frame := time.Second / time.Duration(fps)
		start := time.Now()
		timer := time.NewTimer(0)
		defer timer.Stop()
		for i := 0; ; i++ {
			select {
			case <-timer.C:
			case <-ctx.Done():
				return
			}
			if err := pub.Video.WriteSample(media.Sample{Data: aus[i%len(aus)], Duration: frame}); err != nil {
				return
			}
			timer.Reset(time.Until(start.Add(time.Duration(i+1) * frame)))
		}
	})
}

// viewerProcess is a WHEP viewer in a child process (the test binary run
// again with viewerEnv set), whose reports the test reads.
type viewerProcess struct {
	name    string
	cmd     *exec.Cmd
	stdin   io.Closer
	stderr  *os.File
	started chan struct{} // closed at the session line
	done    chan struct{} // closed when the output ends

	mu      sync.Mutex
	session string
	reports []rtctest.ViewerReport // the per-second ones
	notify  chan struct{}
}

// startViewer starts a viewer of endpoint (a WHEP URL, maybe with a
// ?layer=) inside link's namespace, or on loopback when link is nil. The
// test's cleanup stops it: stdin closed (the viewer ends its session),
// then killed by its PID if it has not exited within 3 s.
func startViewer(t *testing.T, link *testenv.Link, endpoint string) *viewerProcess {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := viewerConfig{Endpoint: endpoint, IP: "127.0.0.1"}
	v := &viewerProcess{name: "loopback viewer", started: make(chan struct{}), done: make(chan struct{}), notify: make(chan struct{}, 1)}
	args := []string{"-test.run=^$"}
	if link != nil {
		cfg.IP, v.name = link.NSIP(), "viewer in "+link.Namespace()
		v.cmd = link.Command(context.Background(), exe, args...)
	} else {
		v.cmd = exec.Command(exe, args...)
	}
	b, _ := json.Marshal(cfg)
	v.cmd.Env = append(os.Environ(), viewerEnv+"="+string(b))
	if v.stderr, err = os.CreateTemp(t.TempDir(), "viewer-stderr"); err != nil {
		t.Fatal(err)
	}
	v.cmd.Stderr = v.stderr
	stdin, err := v.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := v.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	v.stdin = stdin
	if err := v.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", v.name, err)
	}
	go v.read(stdout)
	t.Cleanup(func() { v.stop(t) })
	return v
}

// read takes the viewer's JSON lines until its output ends.
func (v *viewerProcess) read(stdout io.Reader) {
	defer close(v.done)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var r rtctest.ViewerReport
		if json.Unmarshal(sc.Bytes(), &r) != nil {
			continue
		}
		v.mu.Lock()
		if r.Session != "" && v.session == "" {
			v.session = r.Session
			close(v.started)
		} else if r.T > 0 {
			v.reports = append(v.reports, r)
		}
		v.mu.Unlock()
		select {
		case v.notify <- struct{}{}:
		default:
		}
	}
}

// stop ends the process and waits for it and its reader.
func (v *viewerProcess) stop(t *testing.T) {
	_ = v.stdin.Close()
	select {
	case <-v.done:
	case <-time.After(3 * time.Second):
		_ = v.cmd.Process.Kill()
		<-v.done
	}
	if err := v.cmd.Wait(); err != nil && !t.Failed() {
		t.Errorf("%s: %v\n%s", v.name, err, v.Stderr())
	}
	_ = v.stderr.Close()
}

// Stderr is what the viewer process has written to its stderr.
func (v *viewerProcess) Stderr() string {
	b, _ := os.ReadFile(v.stderr.Name())
	return string(b)
}

// Session waits for the viewer's WHEP session URL.
func (v *viewerProcess) Session(t *testing.T, timeout time.Duration) string {
	t.Helper()
	select {
	case <-v.started:
		v.mu.Lock()
		defer v.mu.Unlock()
		return v.session
	case <-v.done:
		t.Fatalf("%s ended before connecting:\n%s", v.name, v.Stderr())
	case <-time.After(timeout):
		t.Fatalf("%s not connected after %v:\n%s", v.name, timeout, v.Stderr())
	}
	return ""
}

// Reports is the per-second reports so far.
func (v *viewerProcess) Reports() []rtctest.ViewerReport {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]rtctest.ViewerReport(nil), v.reports...)
}

// Wait waits until cond holds for the per-second reports and returns
// them; the test fails if the viewer ends or timeout passes first.
func (v *viewerProcess) Wait(t *testing.T, timeout time.Duration, cond func([]rtctest.ViewerReport) bool) []rtctest.ViewerReport {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if rs := v.Reports(); cond(rs) {
			return rs
		}
		select {
		case <-v.notify:
		case <-v.done:
			t.Fatalf("%s ended:\n%s", v.name, v.Stderr())
		case <-deadline:
			t.Fatalf("%s: no condition after %v; reports:\n%s", v.name, timeout, reportTable(v.Reports()))
		}
	}
}

// Seconds waits for n per-second reports and returns them.
func (v *viewerProcess) Seconds(t *testing.T, n int) []rtctest.ViewerReport {
	t.Helper()
	return v.Wait(t, time.Duration(n+10)*time.Second, func(rs []rtctest.ViewerReport) bool { return len(rs) >= n })[:n]
}

// reportTable is per-second reports as lines of text for a log.
func reportTable(rs []rtctest.ViewerReport) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "  t=%2d frames=%2d max_gap=%5dms %dx%d %5d kbit/s lost=%d\n", r.T, r.Frames, r.MaxGapMS, r.Width, r.Height, r.Kbps, r.Lost)
	}
	return b.String()
}
