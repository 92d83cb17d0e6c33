package app

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/streamd/streamd/internal/rtctest"
	"github.com/streamd/streamd/internal/testenv"
)

// connCounter is a TCP proxy in front of the test camera that counts the
// connections open through it (the pulls' RTSP sessions: the test camera
// serves TCP only).
type connCounter struct {
	ln                  net.Listener
	mu                  sync.Mutex
	active, peak, total int
	conns               map[net.Conn]bool
}

func startConnCounter(t *testing.T, target string) *connCounter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &connCounter{ln: ln, conns: map[net.Conn]bool{}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c, target)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for c := range p.conns {
			c.Close()
		}
	})
	return p
}

func (p *connCounter) serve(c net.Conn, target string) {
	up, err := net.Dial("tcp", target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.active++
	p.total++
	p.peak = max(p.peak, p.active)
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	<-done
	p.mu.Lock()
	p.active--
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

func (p *connCounter) counts() (active, peak, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.active, p.peak, p.total
}

// TestClusterPullOneNode: two nodes share Redis; a stream with an rtsp://
// source is pulled by one node only (the other stands by, and its viewers
// get the stream through the relay). When the puller stops, the other node
// takes the pull over within a few seconds.
func TestClusterPullOneNode(t *testing.T) {
	testenv.FFmpeg(t)
	rdb := testenv.Redis(t, 11) // flushed
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	cam, camAddr := startCamera(t, "127.0.0.1:0")
	defer cam.Close()
	ffmpegPublish(ctx, t, "rtsp://"+camAddr+"/cam", "tcp", "libopus", 40)
	proxy := startConnCounter(t, camAddr)

	n1, n2 := startClusterNode(t, 11), startClusterNode(t, 11)
	createPulledStream(t, n1, "cam", "rtsp://"+proxy.ln.Addr().String()+"/cam")

	// One node pulls, the other (which learns of the stream from Redis)
	// stands by.
	var holder, other *App
	waitFor(ctx, t, "one node live, the other standby", func() bool {
		s1, s2 := getStream(t, n1, "cam"), getStream(t, n2, "cam")
		switch {
		case s1.SourceState == "live" && s2.SourceState == "standby":
			holder, other = n1, n2
		case s2.SourceState == "live" && s1.SourceState == "standby":
			holder, other = n2, n1
		default:
			return false
		}
		return true
	})
	if v := getStream(t, other, "cam"); v.SourceError != "" {
		t.Fatalf("standby node shows a source error: %+v", v)
	}
	time.Sleep(time.Second) // the lease is renewed, nobody else connects
	if s, o := getStream(t, holder, "cam").SourceState, getStream(t, other, "cam").SourceState; s != "live" || o != "standby" {
		t.Fatalf("after a second: holder %s, other %s", s, o)
	}
	if active, _, _ := proxy.counts(); active != 1 {
		t.Fatalf("%d sessions to the camera, want 1", active)
	}

	// A viewer on the standby node gets the stream through the relay.
	viewer := subscribeWHEP(ctx, t, other, "cam")
	if err := viewer.WaitVideo(ctx, func(p []rtctest.Packet) bool { n, _ := accessUnits(t, p); return n >= 15 }); err != nil {
		t.Fatalf("no video on the standby node: %v (state %+v)", err, getStream(t, other, "cam"))
	}
	if !other.cluster.relay.Pulling("cam") {
		t.Fatal("the standby node's viewer is not served through the relay")
	}
	// One session at a time, ever (a loaded machine may see the pull
	// reconnect: then, for a moment, none is open).
	waitFor(ctx, t, "one camera session", func() bool { active, _, _ := proxy.counts(); return active == 1 })
	if active, peak, _ := proxy.counts(); active != 1 || peak != 1 {
		t.Fatalf("camera sessions: %d open, at most %d at once; want 1", active, peak)
	}

	// The puller goes away: the other node takes the pull over.
	before := len(viewer.Video())
	stopped := time.Now()
	holder.Close()
	waitFor(ctx, t, "the other node pulls", func() bool { return getStream(t, other, "cam").SourceState == "live" })
	t.Logf("pull moved to the other node in %v", time.Since(stopped).Round(time.Millisecond))
	if d := time.Since(stopped); d > 10*time.Second {
		t.Fatalf("pull took %v to move", d)
	}
	if err := viewer.WaitVideo(ctx, func(p []rtctest.Packet) bool {
		if len(p) <= before {
			return false
		}
		n, _ := accessUnits(t, wholeFrames(p[before:]))
		return n >= 15
	}); err != nil {
		t.Fatalf("video did not resume for the viewer: %v", err)
	}
	viewer2 := subscribeWHEP(ctx, t, other, "cam")
	if err := viewer2.WaitVideo(ctx, func(p []rtctest.Packet) bool { n, _ := accessUnits(t, p); return n >= 15 }); err != nil {
		t.Fatalf("no video for a new viewer after the move: %v", err)
	}
	if h, err := rdb.Get(ctx, "streamd:pull:cam").Result(); err != nil || h != other.Config.NodeURL {
		t.Fatalf("lease holder %q (%v), want %s", h, err, other.Config.NodeURL)
	}
	if ttl := rdb.PTTL(ctx, "streamd:pull:cam").Val(); ttl <= 0 || ttl > pullLeaseTTL {
		t.Fatalf("lease TTL %v, want (0, %v]", ttl, pullLeaseTTL)
	}
	if o, _ := rdb.Get(ctx, originKey("cam")).Result(); o != other.Config.NodeURL {
		t.Fatalf("origin record %q, want %s", o, other.Config.NodeURL)
	}
	if other.cluster.relay.Pulling("cam") {
		t.Fatal("still relaying after taking the pull over")
	}
	active, peak, total := proxy.counts()
	t.Logf("camera connections: %d in all (first tries may find it not yet published)", total)
	if active != 1 || peak != 1 {
		t.Fatalf("camera sessions: %d open, at most %d at once; want 1", active, peak)
	}
}
