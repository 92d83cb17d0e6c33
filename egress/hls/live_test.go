package hls

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/webrtc/v4"

	"github.com/streamd/streamd/internal/rtctest"
	"github.com/streamd/streamd/internal/testenv"
	"github.com/streamd/streamd/sfu"
)

// clipSource is a live stream made of an ffmpeg H.264 clip, sent as RTP in
// real time (looping) to whoever subscribes, until pause or stop.
type clipSource struct {
	aus [][][]byte

	mu     sync.Mutex
	sink   sfu.Sink
	paused bool
	stop   chan struct{}
	done   chan struct{}
}

func newClipSource(t *testing.T) *clipSource {
	t.Helper()
	// 15-frame GOPs at 30 fps: a segment can be cut every 0.5 s.
	raw, err := rtctest.EncodeH264(testenv.FFmpeg(t), t.TempDir(), 320, 180, 30, 4, 15, "300k")
	if err != nil {
		t.Fatal(err)
	}
	c := &clipSource{stop: make(chan struct{}), done: make(chan struct{})}
	for _, b := range raw {
		var au h264.AnnexB
		if err := au.Unmarshal(b); err != nil {
			t.Fatal(err)
		}
		c.aus = append(c.aus, au)
	}
	go c.run()
	t.Cleanup(func() { close(c.stop); <-c.done })
	return c
}

func (c *clipSource) AddSink(s sfu.Sink) func() {
	c.mu.Lock()
	c.sink = s
	c.mu.Unlock()
	return func() { c.mu.Lock(); c.sink = nil; c.mu.Unlock() }
}

func (c *clipSource) RequestKeyframe() {}

func (c *clipSource) LiveSource(string) (Source, bool) { return c, true }

func (c *clipSource) pause() { c.mu.Lock(); c.paused = true; c.mu.Unlock() }

func (c *clipSource) run() {
	defer close(c.done)
	enc := &rtph264.Encoder{PayloadType: 96, PayloadMaxSize: 1200, PacketizationMode: 1}
	_ = enc.Init()
	codec := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000}
	tick := time.NewTicker(time.Second / 30)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		}
		pkts, err := enc.Encode(c.aus[i%len(c.aus)])
		if err != nil {
			continue
		}
		c.mu.Lock()
		sink, paused := c.sink, c.paused
		c.mu.Unlock()
		if sink == nil || paused {
			continue
		}
		for _, p := range pkts {
			p.Timestamp = uint32(i * 3000)
			sink.WriteRTP(webrtc.RTPCodecTypeVideo, codec, p)
		}
	}
}

func startLive(t *testing.T) (*Live, *clipSource, string) {
	t.Helper()
	src := newClipSource(t)
	l := &Live{Media: src, SegmentMin: 500 * time.Millisecond}
	l.Initialize()
	mux := http.NewServeMux()
	l.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(l.Close)
	return l, src, srv.URL + "/hls/s1/"
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// mediaPlaylist waits for the stream's content and returns its media
// playlist.
func mediaPlaylist(t *testing.T, base string) *playlist.Media {
	t.Helper()
	if code, b := get(t, base+"index.m3u8"); code != http.StatusOK {
		t.Fatalf("index.m3u8: %d %s", code, b)
	}
	code, b := get(t, base+leadingPlaylist)
	pl, err := playlist.Unmarshal(b)
	if code != http.StatusOK || err != nil {
		t.Fatalf("media playlist: %d %v\n%s", code, err, b)
	}
	return pl.(*playlist.Media)
}

// TestLiveCloseWhileBlocking: a blocking playlist request (_HLS_msn) waits
// for a segment that will never come (the source went quiet), then the stream
// closes. The request must end at once with 404 — never reach gohlslib's
// parked wait, whose wake-up on Muxer.Close is a data race in gohlslib
// v2.1.4 (the race detector fails this test without the gate).
func TestLiveCloseWhileBlocking(t *testing.T) {
	l, src, base := startLive(t)
	mediaPlaylist(t, base)
	src.pause()
	time.Sleep(300 * time.Millisecond) // let the queue drain: the muxer's state is now frozen
	pl := mediaPlaylist(t, base)
	next := pl.MediaSequence + len(pl.Segments)

	type result struct {
		code int
		at   time.Time
	}
	res := make(chan result, 2)
	for _, q := range []string{fmt.Sprintf("_HLS_msn=%d&_HLS_part=0", next+1), fmt.Sprintf("_HLS_msn=%d&_HLS_part=%d", next, len(pl.Parts)+3)} {
		go func() {
			resp, err := http.Get(base + leadingPlaylist + "?" + q)
			if err != nil {
				res <- result{code: -1, at: time.Now()}
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			res <- result{code: resp.StatusCode, at: time.Now()}
		}()
	}
	time.Sleep(500 * time.Millisecond) // both requests are waiting now
	select {
	case r := <-res:
		t.Fatalf("blocking request answered %d before its part existed", r.code)
	default:
	}
	closed := time.Now()
	l.Close()
	for range 2 {
		select {
		case r := <-res:
			if r.code != http.StatusNotFound {
				t.Fatalf("blocking request across close: %d, want 404", r.code)
			}
			if d := r.at.Sub(closed); d > 2*time.Second {
				t.Fatalf("blocking request ended %v after close", d)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("blocking request still waiting 5 s after close")
		}
	}
}

// TestLiveBlockingReload: LL-HLS blocking reloads keep working through the
// gate: a request for the next part returns as soon as that part exists
// (parts are ~200 ms) and its playlist lists it; one for the hinted part's
// file returns that part; a request too far ahead is refused at once.
func TestLiveBlockingReload(t *testing.T) {
	_, _, base := startLive(t)
	pl := mediaPlaylist(t, base)
	next := pl.MediaSequence + len(pl.Segments)
	want := len(pl.Parts) // the part after the last listed one

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s%s?_HLS_msn=%d&_HLS_part=%d", base, leadingPlaylist, next, want), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("blocking reload: %d %s", resp.StatusCode, b)
	}
	if took > 1500*time.Millisecond {
		t.Fatalf("blocking reload took %v for a ~200 ms part", took)
	}
	got, err := playlist.Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	m := got.(*playlist.Media)
	st := parseState(&httptest.ResponseRecorder{Code: http.StatusOK, Body: bytes.NewBuffer(b)})
	if st.blocking(uint64(next), uint64(want), true) != vReady {
		t.Fatalf("playlist for msn %d part %d lacks it:\n%s", next, want, b)
	}
	if strings.Contains(string(b), "_HLS_msn") {
		t.Fatalf("URIs carry _HLS_ parameters:\n%s", b)
	}
	t.Logf("blocking reload for the next part answered in %v", took)

	// The preload hint names a part in progress: its request waits for it.
	hint := m.PreloadHint.URI
	code, part := get(t, base+hint)
	if code != http.StatusOK || len(part) == 0 {
		t.Fatalf("preload hint part %s: %d, %d bytes", hint, code, len(part))
	}

	if code, body := get(t, fmt.Sprintf("%s%s?_HLS_msn=%d", base, leadingPlaylist, m.MediaSequence+len(m.Segments)+5)); code != http.StatusBadRequest {
		t.Fatalf("msn far ahead: %d %s", code, body)
	}
	if code, _ := get(t, base+leadingPlaylist+"?_HLS_part=1"); code != http.StatusBadRequest {
		t.Fatalf("part without msn: %d", code)
	}
}
