package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// holdTCP and holdUDP occupy a loopback port for the test.
func holdTCP(t *testing.T) (addr string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

func holdUDP(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.LocalAddr().String()
}

// freeRTSPPort finds an even port P free for TCP, with UDP P and P+1 free
// (Linux hands out odd ports for port 0, so the even one below is tried).
func freeRTSPPort(t *testing.T) int {
	t.Helper()
	for range 100 {
		p := freePort(t) &^ 1
		ok := true
		for _, a := range []struct {
			network string
			port    int
		}{{"tcp", p}, {"udp", p}, {"udp", p + 1}} {
			addr := fmt.Sprintf("127.0.0.1:%d", a.port)
			var c interface{ Close() error }
			var err error
			if a.network == "tcp" {
				c, err = net.Listen("tcp", addr)
			} else {
				c, err = net.ListenPacket("udp", addr)
			}
			if err != nil {
				ok = false
				break
			}
			c.Close()
		}
		if ok {
			return p
		}
	}
	t.Fatal("no free RTSP port with a free UDP pair")
	return 0
}

// TestStartupErrors runs the real binary into each start-up failure: it
// prints one line saying what failed, where and what to do, exits 1, and
// never panics.
func TestStartupErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildStreamd(t)
	rtspPort := freeRTSPPort(t)
	rtspAddr := fmt.Sprintf("127.0.0.1:%d", rtspPort)
	base := func(dir string) map[string]string {
		return map[string]string{"--http": "127.0.0.1:0", "--webrtc-udp": "127.0.0.1:0", "--rtsp": "", "--data": dir, "--staff-token": testStaff}
	}

	// A running streamd holds its data directory.
	busyDir := t.TempDir()
	runStreamd(t, bin, busyDir, freePort(t))

	cases := []struct {
		name  string
		set   func(t *testing.T, flags map[string]string)
		parts []string // the line names these
	}{
		{"unreachable redis", func(t *testing.T, f map[string]string) { f["--redis"] = "redis://user:hunter2@127.0.0.1:1/0" },
			[]string{"cannot reach Redis at redis://user:xxxxx@127.0.0.1:1/0 (--redis)", "start Redis", "connection refused"}},
		{"bad redis URL", func(t *testing.T, f map[string]string) { f["--redis"] = "http://127.0.0.1:6379" },
			[]string{`--redis "http://127.0.0.1:6379" is not a Redis URL`, "redis://"}},
		{"http port in use", func(t *testing.T, f map[string]string) { f["--http"] = holdTCP(t) },
			[]string{"HTTP address 127.0.0.1:", "(--http) is already in use", "choose another address with --http"}},
		{"rtsp port in use", func(t *testing.T, f map[string]string) { f["--rtsp"] = holdTCP(t) },
			[]string{"RTSP address 127.0.0.1:", "(--rtsp) is already in use"}},
		{"rtsp udp rtp port in use", func(t *testing.T, f map[string]string) {
			holdUDP(t, fmt.Sprintf("127.0.0.1:%d", rtspPort))
			f["--rtsp"] = rtspAddr
		}, []string{fmt.Sprintf("RTSP's UDP RTP port %d", rtspPort), fmt.Sprintf("pair %d/%d", rtspPort, rtspPort+1), "already in use", "--rtsp"}},
		{"rtsp udp rtcp port in use", func(t *testing.T, f map[string]string) {
			holdUDP(t, fmt.Sprintf("127.0.0.1:%d", rtspPort+1))
			f["--rtsp"] = rtspAddr
		}, []string{fmt.Sprintf("RTSP's UDP RTCP port %d", rtspPort+1), "already in use"}},
		{"webrtc udp port in use", func(t *testing.T, f map[string]string) { f["--webrtc-udp"] = holdUDP(t, "127.0.0.1:0") },
			[]string{"WebRTC UDP address 127.0.0.1:", "(--webrtc-udp) is already in use"}},
		{"data dir locked by another streamd", func(t *testing.T, f map[string]string) { f["--data"] = busyDir },
			[]string{"data directory " + busyDir + " (--data) is in use by another streamd", "--data"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			flags := base(t.TempDir())
			c.set(t, flags)
			var args []string
			for k, v := range flags {
				args = append(args, k, v)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var out bytes.Buffer
			cmd := exec.CommandContext(ctx, bin, args...)
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("exit: %v, want status 1\n%s", err, out.String())
			}
			text := out.String()
			if strings.Contains(text, "panic") || strings.Contains(text, "goroutine ") {
				t.Fatalf("panicked:\n%s", text)
			}
			var lines []string
			for _, l := range strings.Split(text, "\n") {
				if strings.HasPrefix(l, "streamd: ") {
					lines = append(lines, l)
				}
			}
			if len(lines) != 1 {
				t.Fatalf("want one error line, got %d:\n%s", len(lines), text)
			}
			for _, p := range c.parts {
				if !strings.Contains(lines[0], p) {
					t.Errorf("line %q does not say %q", lines[0], p)
				}
			}
			if strings.Contains(text, "hunter2") {
				t.Errorf("the Redis password was printed:\n%s", text)
			}
			t.Log(lines[0])
		})
	}
}
