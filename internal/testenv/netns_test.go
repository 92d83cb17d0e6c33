package testenv

import (
	"context"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestShapedLink: a command run through the link sees the namespace's
// address (not the host's), TCP from the host reaches a listener inside,
// Shape holds that transfer to about the rate, Unshape lifts it, and
// cleanup removes the namespace and the host's veth end.
func TestShapedLink(t *testing.T) {
	var ns, dev string
	t.Run("link", func(t *testing.T) {
		l := NewShapedLink(t)
		ns, dev = l.Namespace(), l.hostDev
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := l.Command(ctx, "ip", "-o", "-4", "addr", "show").CombinedOutput()
		if err != nil {
			t.Fatalf("ip addr in the namespace: %v: %s", err, out)
		}
		if !strings.Contains(string(out), l.NSIP()+"/30") || strings.Contains(string(out), l.HostIP()+"/30") {
			t.Fatalf("addresses inside the namespace:\n%s", out)
		}

		free := tcpRate(t, l, 0, 300*time.Millisecond)
		l.Shape("1mbit")
		shaped := tcpRate(t, l, time.Second, 2*time.Second)
		l.Unshape()
		again := tcpRate(t, l, 0, 300*time.Millisecond)
		t.Logf("host→namespace TCP: %.1f Mbit/s unshaped, %.0f kbit/s under Shape(1mbit), %.1f Mbit/s after Unshape",
			free/1e6, shaped/1e3, again/1e6)
		// The bucket counts whole frames: TCP's goodput is a little
		// under the rate (measured: 0.95-0.97 of it).
		if shaped < 0.8e6 || shaped > 1.05e6 {
			t.Errorf("shaped to 1mbit, TCP got %.0f kbit/s", shaped/1e3)
		}
		if free < 20e6 || again < 20e6 {
			t.Errorf("unshaped the veth carries only %.1f / %.1f Mbit/s", free/1e6, again/1e6)
		}
	})
	if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), ns) {
		t.Errorf("namespace %s left behind:\n%s", ns, out)
	}
	if _, err := net.InterfaceByName(dev); err == nil {
		t.Errorf("veth %s left behind", dev)
	}
}

// tcpRate sends from the host to a listener inside l's namespace as fast
// as TCP goes and returns the receiver's rate in bit/s over measure,
// after skipping the first skip (slow start, the bucket's burst).
func tcpRate(t *testing.T, l *Link, skip, measure time.Duration) float64 {
	t.Helper()
	var ln net.Listener
	if err := l.Do(func() (err error) {
		ln, err = net.Listen("tcp4", l.NSIP()+":0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		bytes int64
		err   error
	}
	res := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			res <- result{err: err}
			return
		}
		defer c.Close()
		buf := make([]byte, 64<<10)
		start := time.Now().Add(skip)
		var n int64
		for time.Now().Before(start) {
			if _, err := c.Read(buf); err != nil {
				res <- result{err: err}
				return
			}
		}
		start = time.Now()
		for time.Since(start) < measure {
			k, err := c.Read(buf)
			n += int64(k)
			if err != nil {
				res <- result{err: err}
				return
			}
		}
		res <- result{bytes: n}
	}()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(c, zeros{})
	}()
	r := <-res
	_ = c.Close() // ends the copy
	<-copied
	if r.err != nil {
		t.Fatalf("receive through the link: %v", r.err)
	}
	return float64(r.bytes) * 8 / measure.Seconds()
}

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
