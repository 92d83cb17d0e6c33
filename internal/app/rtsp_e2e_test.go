package app

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"github.com/streamd/streamd/internal/rtctest"
	"github.com/streamd/streamd/internal/testenv"
)

func startRTSPApp(t *testing.T) *App {
	t.Helper()
	a := startApp(t, func(c *Config) { c.RTSP = "127.0.0.1:0" })
	if a.RTSPAddr() == "" {
		t.Fatal("rtsp server not listening")
	}
	return a
}

// ffmpegPublish starts Debian's ffmpeg sending testsrc2 720p30 H.264 (no
// B-frames: zerolatency) plus a sine tone in audioCodec to an RTSP URL for
// seconds, in real time. The returned func waits for it to end.
func ffmpegPublish(ctx context.Context, t *testing.T, url, transport, audioCodec string, seconds int) (wait func() error) {
	t.Helper()
	ffmpeg := testenv.FFmpeg(t)
	args := []string{"-hide_banner", "-loglevel", "error", "-nostdin", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", strconv.Itoa(seconds), "-map", "0:v", "-map", "1:a",
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30", "-pix_fmt", "yuv420p",
		"-c:a", audioCodec,
		"-f", "rtsp", "-rtsp_transport", transport, url}
	cmd := exec.CommandContext(ctx, ffmpeg, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("ffmpeg: %v", err)
	}
	var once sync.Once
	var werr error
	wait = func() error {
		once.Do(func() {
			werr = cmd.Wait()
			if werr != nil {
				werr = fmt.Errorf("%w: %s", werr, stderr.String())
			}
		})
		return werr
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = wait()
	})
	return wait
}

// accessUnits depacketizes H.264 packets (marker ends a unit) and checks
// what WebRTC needs: payloads of at most 1200 bytes, no AUD, SPS and PPS
// before every IDR. It returns the number of units and whether the first is
// SPS/PPS+IDR.
func accessUnits(t *testing.T, pkts []rtctest.Packet) (n int, firstKey bool) {
	t.Helper()
	var dep codecs.H264Packet
	var au []byte
	for _, p := range rtctest.InOrder(pkts) {
		if len(p.Payload) > 1200 {
			t.Fatalf("H.264 payload of %d bytes (max 1200)", len(p.Payload))
		}
		b, err := dep.Unmarshal(p.Payload)
		if err == nil {
			au = append(au, b...)
		}
		if !p.Marker {
			continue
		}
		types := nalTypes(au)
		var sps, pps, idr bool
		for _, nt := range types {
			switch nt {
			case 9:
				t.Fatalf("access unit %d carries an AUD: %v", n, types)
			case 7:
				sps = true
			case 8:
				pps = true
			case 5:
				if !sps || !pps {
					t.Fatalf("access unit %d: IDR without SPS/PPS before it: %v", n, types)
				}
				idr = true
			}
		}
		if n == 0 {
			firstKey = idr && len(types) > 0 && types[0] == 7
			if !firstKey {
				t.Logf("first access unit: NAL types %v", types)
			}
		}
		n++
		au = au[:0]
	}
	return n, firstKey
}

func nalTypes(annexB []byte) []byte {
	var out []byte
	for i, nal := range bytes.Split(annexB, []byte{0, 0, 1}) {
		if i > 0 && len(nal) > 0 { // [0] is what precedes the first start code
			out = append(out, nal[0]&0x1f)
		}
	}
	return out
}

func subscribeWHEP(ctx context.Context, t *testing.T, a *App, id string) *rtctest.Subscriber {
	t.Helper()
	api, err := rtctest.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	s, err := rtctest.Subscribe(ctx, api, a.BaseURL()+"/whep/"+id)
	if err != nil {
		t.Fatalf("whep subscribe: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

type streamView struct {
	Live        bool     `json:"live"`
	Warnings    []string `json:"warnings"`
	SourceState string   `json:"source_state"`
	SourceError string   `json:"source_error"`
}

func getStream(t *testing.T, a *App, id string) streamView {
	t.Helper()
	var v streamView
	if code := api(t, "GET", a.BaseURL()+"/api/streams/"+id, testStaff, nil, &v); code != 200 {
		t.Fatalf("GET stream %s: %d", id, code)
	}
	return v
}

func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestRTSPPublishTCPUDPAndRead: ffmpeg publishes over TCP, then UDP (taking
// the stream over); a WHEP viewer gets WebRTC-ready H.264 and Opus, and
// ffmpeg reads the stream back over RTSP.
func TestRTSPPublishTCPUDPAndRead(t *testing.T) {
	ffmpeg := testenv.FFmpeg(t)
	a := startRTSPApp(t)
	key := createStream(t, a, "shop")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	viewer := subscribeWHEP(ctx, t, a, "shop")
	url := "rtsp://pub:" + key + "@" + a.RTSPAddr() + "/shop"

	for i, transport := range []string{"tcp", "udp"} {
		before := len(viewer.Video())
		wait := ffmpegPublish(ctx, t, url, transport, "libopus", 4)
		err := viewer.WaitVideo(ctx, func(p []rtctest.Packet) bool {
			n, _ := accessUnits(t, p[before:])
			return n >= 45
		})
		if err != nil {
			t.Fatalf("%s: viewer got no video: %v", transport, err)
		}
		n, key := accessUnits(t, viewer.Video()[before:])
		if !key {
			t.Fatalf("%s: first access unit is not SPS/PPS+IDR", transport)
		}
		if len(viewer.Audio()) == 0 {
			t.Fatalf("%s: no Opus packets", transport)
		}
		t.Logf("%s: %d access units, %d audio packets so far", transport, n, len(viewer.Audio()))
		if i == 0 {
			// Read it back over RTSP while it is live: ffmpeg decodes frames.
			out, err := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin",
				"-rtsp_transport", "tcp", "-i", "rtsp://"+a.RTSPAddr()+"/shop",
				"-map", "0:v", "-frames:v", "10", "-f", "framecrc", "-").Output()
			if err != nil {
				t.Fatalf("ffmpeg read over RTSP: %v", err)
			}
			frames := 0
			for _, line := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(line, "0,") {
					frames++
				}
			}
			if frames != 10 {
				t.Fatalf("RTSP read decoded %d frames, want 10:\n%s", frames, out)
			}
		}
		if err := wait(); err != nil {
			t.Fatalf("ffmpeg publish over %s: %v", transport, err)
		}
	}
	if viewer.PC.ConnectionState() != webrtc.PeerConnectionStateConnected {
		t.Fatal("viewer lost its session across the republish")
	}
}

// TestRTSPAACWarns: AAC audio is refused with a warning; video still flows.
func TestRTSPAACWarns(t *testing.T) {
	a := startRTSPApp(t)
	key := createStream(t, a, "aac")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	viewer := subscribeWHEP(ctx, t, a, "aac")
	wait := ffmpegPublish(ctx, t, "rtsp://pub:"+key+"@"+a.RTSPAddr()+"/aac", "tcp", "aac", 3)
	if err := viewer.WaitVideo(ctx, func(p []rtctest.Packet) bool { n, _ := accessUnits(t, p); return n >= 10 }); err != nil {
		t.Fatalf("no video: %v", err)
	}
	v := getStream(t, a, "aac")
	if !v.Live || len(v.Warnings) == 0 || !strings.Contains(strings.Join(v.Warnings, "\n"), "libopus") {
		t.Fatalf("want a live stream with an AAC warning naming libopus, got %+v", v)
	}
	t.Logf("warnings: %q", v.Warnings)
	if len(viewer.Audio()) != 0 {
		t.Fatalf("viewer got %d audio packets from an AAC track", len(viewer.Audio()))
	}
	_ = wait()
}

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
	var created map[string]any
	if code := api(t, "POST", a.BaseURL()+"/api/streams", testStaff, map[string]any{"id": "cam", "source": "rtsp://" + camAddr + "/cam"}, &created); code != 201 {
		t.Fatalf("create stream with source: %d %v", code, created)
	}
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

func statusCode(err error) base.StatusCode {
	var bad liberrors.ErrClientBadStatusCode
	if errors.As(err, &bad) {
		return bad.Code
	}
	return 0
}

// TestRTSPBadInput: wrong keys, unknown paths, private streams and garbage
// get clear answers and the server keeps serving.
func TestRTSPBadInput(t *testing.T) {
	a := startRTSPApp(t)
	key := createStream(t, a, "good")
	if code := api(t, "POST", a.BaseURL()+"/api/streams", testStaff, map[string]any{"id": "secret", "private": true}, nil); code != 201 {
		t.Fatalf("create private stream: %d", code)
	}
	var secret struct {
		PublishKey string `json:"publish_key"`
	}
	api(t, "GET", a.BaseURL()+"/api/streams/secret", testStaff, nil, &secret)
	addr := a.RTSPAddr()
	desc := &description.Session{Medias: []*description.Media{{
		Type:    description.MediaTypeVideo,
		Formats: []format.Format{&format.H264{PayloadTyp: 96, PacketizationMode: 1}},
	}}}
	record := func(url string) error {
		c := &gortsplib.Client{}
		err := c.StartRecording(url, desc)
		if err == nil {
			c.Close()
		}
		return err
	}
	describe := func(url string) error {
		u, _ := base.ParseURL(url)
		c := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host}
		if err := c.Start2(); err != nil {
			return err
		}
		defer c.Close()
		_, _, err := c.Describe(u)
		return err
	}
	garbage := func(b []byte) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer conn.Close()
		_, _ = conn.Write(b)
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		reply, err := io.ReadAll(conn)
		var ne net.Error // closed (EOF or reset when unread garbage remains), not left open
		if (errors.As(err, &ne) && ne.Timeout()) || !strings.HasPrefix(string(reply), "RTSP/1.0 400") {
			t.Errorf("garbage %q: got %q, %v; want a 400 and the connection closed", b[:min(len(b), 16)], reply, err)
		}
	}

	for _, tc := range []struct {
		name string
		err  error
		want base.StatusCode
	}{
		{"wrong key", record("rtsp://pub:wrong@" + addr + "/good"), base.StatusUnauthorized},
		{"no key", record("rtsp://" + addr + "/good"), base.StatusUnauthorized},
		{"unknown stream", record("rtsp://pub:" + key + "@" + addr + "/nope"), base.StatusNotFound},
		{"nested path", record("rtsp://pub:" + key + "@" + addr + "/good/more"), base.StatusNotFound},
		{"read unknown", describe("rtsp://" + addr + "/nope"), base.StatusNotFound},
		{"read not live", describe("rtsp://" + addr + "/good"), base.StatusNotFound},
		{"read private without key", describe("rtsp://" + addr + "/secret"), base.StatusUnauthorized},
		{"read private with wrong key", describe("rtsp://x:" + key + "@" + addr + "/secret"), base.StatusUnauthorized},
		{"read private with key, not live", describe("rtsp://x:" + secret.PublishKey + "@" + addr + "/secret"), base.StatusNotFound},
	} {
		if got := statusCode(tc.err); got != tc.want {
			t.Errorf("%s: got %v (%v), want %d", tc.name, got, tc.err, tc.want)
		}
	}
	garbage([]byte("\x00\x01\x02\x03garbage garbage\r\n\r\n"))
	garbage(bytes.Repeat([]byte{0xff}, 8192))
	garbage([]byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")) // a TLS hello
	garbage([]byte("$\x00\x05\x00hello"))

	// Still serving: a good publisher gets in and goes live.
	c := &gortsplib.Client{}
	if err := c.StartRecording("rtsp://pub:"+key+"@"+addr+"/good", desc); err != nil {
		t.Fatalf("publish after bad input: %v", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	waitFor(ctx, t, "live", func() bool { return a.SFU.Live("good") })
	if m := scrape(t, a, "streamd_rtsp_auth_failures_total"); m < 2 {
		t.Errorf("auth failures metric %v, want >= 2", m)
	}
}

// scrape returns the sum of a metric's samples on /metrics.
func scrape(t *testing.T, a *App, name string) float64 {
	t.Helper()
	res, err := http.Get(a.BaseURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest != "" && rest[0] != ' ' && rest[0] != '{' {
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		sum += v
	}
	return sum
}

// histogramQuantiles reads a histogram's cumulative buckets from /metrics
// and interpolates quantiles within them.
func histogramQuantiles(t *testing.T, a *App, name string, qs ...float64) (count float64, out []float64) {
	t.Helper()
	res, err := http.Get(a.BaseURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	type bucket struct{ le, n float64 }
	var bs []bucket
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"_bucket{") {
			continue
		}
		i := strings.Index(line, `le="`)
		j := strings.Index(line[i+4:], `"`)
		le, _ := strconv.ParseFloat(line[i+4:i+4+j], 64)
		f := strings.Fields(line)
		n, _ := strconv.ParseFloat(f[len(f)-1], 64)
		bs = append(bs, bucket{le, n})
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	if len(bs) == 0 {
		return 0, nil
	}
	count = bs[len(bs)-1].n
	for _, q := range qs {
		rank := q * count
		lo, prev := 0.0, 0.0
		v := math.Inf(1)
		for _, b := range bs {
			if b.n >= rank {
				if math.IsInf(b.le, 1) {
					v = lo
				} else if b.n == prev {
					v = b.le
				} else {
					v = lo + (b.le-lo)*(rank-prev)/(b.n-prev)
				}
				break
			}
			lo, prev = b.le, b.n
		}
		out = append(out, v)
	}
	return count, out
}

// TestRTSPForwardDelay50Viewers measures the in-sfu forward delay of an
// RTSP publish fanned out to 50 WHEP viewers. It only logs the figure.
func TestRTSPForwardDelay50Viewers(t *testing.T) {
	testenv.FFmpeg(t)
	if testing.Short() {
		t.Skip("50 viewers: not in -short")
	}
	a := startRTSPApp(t)
	key := createStream(t, a, "crowd")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	api, err := rtctest.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	const viewers = 50
	subs := make([]*rtctest.Subscriber, viewers)
	var wg sync.WaitGroup
	errs := make(chan error, viewers)
	for i := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := rtctest.Subscribe(ctx, api, a.BaseURL()+"/whep/crowd")
			if err != nil {
				errs <- err
				return
			}
			subs[i] = s
		}()
	}
	wg.Wait()
	close(errs)
	defer func() {
		for _, s := range subs {
			if s != nil {
				s.Close()
			}
		}
	}()
	for err := range errs {
		t.Fatalf("subscribe: %v", err)
	}
	wait := ffmpegPublish(ctx, t, "rtsp://pub:"+key+"@"+a.RTSPAddr()+"/crowd", "tcp", "libopus", 4)
	if err := wait(); err != nil {
		t.Fatalf("ffmpeg: %v", err)
	}
	got := 0
	for _, s := range subs {
		if n, _ := accessUnits(t, s.Video()); n > 0 {
			got++
		}
	}
	if got != viewers {
		t.Fatalf("%d of %d viewers got video", got, viewers)
	}
	n, q := histogramQuantiles(t, a, "streamd_sfu_forward_delay_seconds", 0.5, 0.99)
	t.Logf("RTSP→WHEP forward delay, %d viewers, %.0f packet writes: p50 %.1f µs, p99 %.1f µs", viewers, n, q[0]*1e6, q[1]*1e6)
}

// TestRTSPReadWHIPStream: a stream published over WHIP is read over RTSP
// (UDP transport this time), from the keyframe cache.
func TestRTSPReadWHIPStream(t *testing.T) {
	ffmpeg := testenv.FFmpeg(t)
	aus, err := rtctest.EncodeH264(ffmpeg, t.TempDir(), 640, 360, 30, 3, 30, "800k")
	if err != nil {
		t.Fatal(err)
	}
	a := startRTSPApp(t)
	key := createStream(t, a, "web")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	api, err := rtctest.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := rtctest.Publish(ctx, api, a.BaseURL()+"/whip/web", key, webrtc.MimeTypeH264)
	if err != nil {
		t.Fatalf("whip publish: %v", err)
	}
	defer pub.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		sendClip(ctx, pub, aus, 30)
	}()
	defer func() { cancel(); <-done }()
	waitFor(ctx, t, "live", func() bool { return a.SFU.Live("web") })
	time.Sleep(300 * time.Millisecond) // mid-GOP: the reader starts from the cache
	out, err := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin",
		"-rtsp_transport", "udp", "-i", "rtsp://"+a.RTSPAddr()+"/web",
		"-map", "0:v", "-frames:v", "10", "-f", "framecrc", "-").Output()
	if err != nil {
		t.Fatalf("ffmpeg read over RTSP/UDP: %v", err)
	}
	if n := strings.Count(string(out), "\n0,"); n < 9 {
		t.Fatalf("decoded %d frames:\n%s", n, out)
	}
}
