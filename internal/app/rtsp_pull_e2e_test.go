// End-to-end tests of pulling an RTSP camera, against a test camera.

package app

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/streamd/streamd/internal/rtctest"
	"github.com/streamd/streamd/internal/testenv"
)

// testCamera is an RTSP source for pull tests: a gortsplib server that
// relays what ffmpeg publishes to it (like an IP camera or mediamtx).
type testCamera struct {
	srv *gortsplib.Server
	mu  sync.Mutex
	st  *gortsplib.ServerStream
	pub *gortsplib.ServerSession
}

func startCamera(t *testing.T, addr string) (*testCamera, string) {
	t.Helper()
	c := &testCamera{}
	var bound string
	c.srv = &gortsplib.Server{Handler: c, RTSPAddress: addr, Listen: func(network, address string) (net.Listener, error) {
		ln, err := net.Listen(network, address)
		if err == nil {
			bound = ln.Addr().String()
		}
		return ln, err
	}}
	var err error
	for range 50 { // a restarted camera may wait for its port
		if err = c.srv.Start(); err == nil {
			return c, bound
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("camera: %v", err)
	return nil, ""
}

func (c *testCamera) Close() { c.srv.Close() }

func (c *testCamera) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st != nil && ctx.Session == c.pub {
		c.st.Close()
		c.st = nil
	}
}

func (c *testCamera) OnDescribe(*gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, c.st, nil
}

func (c *testCamera) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st != nil {
		c.st.Close()
		c.pub.Close()
	}
	c.st = &gortsplib.ServerStream{Server: c.srv, Desc: ctx.Description}
	if err := c.st.Initialize(); err != nil {
		return &base.Response{StatusCode: base.StatusInternalServerError}, err
	}
	c.pub = ctx.Session
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (c *testCamera) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Session.State() == gortsplib.ServerSessionStatePreRecord {
		return &base.Response{StatusCode: base.StatusOK}, nil, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, c.st, nil
}

func (c *testCamera) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (c *testCamera) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	c.mu.Lock()
	st := c.st
	c.mu.Unlock()
	ctx.Session.OnPacketRTPAny(func(medi *description.Media, _ format.Format, pkt *rtp.Packet) {
		_ = st.WritePacketRTP(medi, pkt)
	})
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// createPulledStream makes a stream whose record names an rtsp:// source.
func createPulledStream(t *testing.T, a *App, id, source string) {
	t.Helper()
	var created map[string]any
	if code := api(t, "POST", a.BaseURL()+"/api/streams", testStaff, map[string]any{"id": id, "source": source}, &created); code != 201 {
		t.Fatalf("create stream with source: %d %v", code, created)
	}
}

// TestRTSPPullReconnects: a stream with an rtsp:// source is pulled; the
// camera goes away and comes back; the WHEP viewer keeps its session and
// video resumes; the API shows the source state.
func TestRTSPPullReconnects(t *testing.T) {
	testenv.FFmpeg(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cam, camAddr := startCamera(t, "127.0.0.1:0")
	defer func() { cam.Close() }()
	wait := ffmpegPublish(ctx, t, "rtsp://"+camAddr+"/cam", "tcp", "libopus", 8)

	a := startRTSPApp(t)
	createPulledStream(t, a, "cam", "rtsp://"+camAddr+"/cam")
	viewer := subscribeWHEP(ctx, t, a, "cam")
	if err := viewer.WaitVideo(ctx, func(p []rtctest.Packet) bool { n, _ := accessUnits(t, p); return n >= 15 }); err != nil {
		t.Fatalf("no video from the pulled source: %v (state %+v)", err, getStream(t, a, "cam"))
	}
	if _, key := accessUnits(t, viewer.Video()); !key {
		t.Fatal("first access unit from the pull is not SPS/PPS+IDR")
	}
	if v := getStream(t, a, "cam"); v.SourceState != "live" || !v.Live {
		t.Fatalf("want source_state live, got %+v", v)
	}

	// The camera goes away.
	cam.Close()
	_ = wait()
	waitFor(ctx, t, "source_state retrying", func() bool {
		v := getStream(t, a, "cam")
		return v.SourceState == "retrying" && v.SourceError != ""
	})
	v := getStream(t, a, "cam")
	t.Logf("camera down: %+v", v)
	before := viewer.Video()
	lastTS := before[len(before)-1].Timestamp

	// It comes back on the same address.
	cam, _ = startCamera(t, camAddr)
	wait = ffmpegPublish(ctx, t, "rtsp://"+camAddr+"/cam", "tcp", "libopus", 6)
	if err := viewer.WaitVideo(ctx, func(p []rtctest.Packet) bool {
		if len(p) <= len(before) {
			return false
		}
		n, _ := accessUnits(t, p[len(before):])
		return n >= 15
	}); err != nil {
		t.Fatalf("video did not resume after the camera came back: %v (state %+v)", err, getStream(t, a, "cam"))
	}
	after := viewer.Video()[len(before):]
	if d := int32(after[0].Timestamp - lastTS); d <= 0 {
		t.Fatalf("timestamp went back by %d across the reconnect", -d)
	}
	if viewer.PC.ConnectionState() != webrtc.PeerConnectionStateConnected {
		t.Fatal("viewer lost its session")
	}
	waitFor(ctx, t, "source_state live", func() bool { return getStream(t, a, "cam").SourceState == "live" })

	// Deleting the stream stops the pull.
	if code := api(t, "DELETE", a.BaseURL()+"/api/streams/cam", testStaff, nil, nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	waitFor(ctx, t, "pull stopped", func() bool { return !a.SFU.Live("cam") })
	cancel()
	_ = wait()
}
