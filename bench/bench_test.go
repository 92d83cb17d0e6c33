package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"

	"github.com/streamd/streamd/internal/testenv"
)

// The smoke runs check the bench itself with tiny sizes: they fail when it
// loses frames or overlay events, or when a flash sale oversells. Speed
// targets are reported by `make bench`, never asserted here.

var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

// streamdBin builds ./cmd/streamd once for the package's tests.
func streamdBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "streamd-bench-test-")
		if err != nil {
			buildErr = err
			return
		}
		buildDir = dir
		buildBin, buildErr = buildStreamd(dir)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func tinyOptions(t *testing.T, scenario string) Options {
	o := defaultOptions()
	o.Scenarios = []string{scenario}
	o.Out = t.TempDir()
	o.Cache = filepath.Join(o.Out, "cache")
	o.Streamd = streamdBin(t)
	o.ProgressOut = io.Discard
	o.Subscribers, o.Duration = []int{2, 3}, 2*time.Second
	o.Width, o.Height, o.Bitrate = 640, 360, "800k"
	o.Viewers, o.OverlayDuration, o.CardInterval = []int{5, 20}, time.Second, 200*time.Millisecond
	o.Stock, o.Buyers, o.Conns, o.Redis = 5, 50, 16, ""
	o.ChatViewers, o.Chatters, o.ReactRate, o.ChatDuration = 30, 4, 10, 3*time.Second
	o.Codecs, o.GlassDuration, o.Cards = []string{"vp8"}, 3*time.Second, 2
	return o
}

func run(t *testing.T, o Options) []Row {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	rows, err := Run(ctx, o)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if len(rows) == 0 {
		t.Fatal("no rows")
	}
	for _, r := range rows {
		b, _ := json.Marshal(r)
		t.Logf("%s", b)
	}
	// The results folder holds JSON lines and a Markdown table.
	jl, err := os.ReadFile(filepath.Join(o.Out, "results.jsonl"))
	if err != nil || strings.Count(string(jl), "\n") != len(rows) {
		t.Fatalf("results.jsonl: %v (%d lines for %d rows)", err, strings.Count(string(jl), "\n"), len(rows))
	}
	if md, err := os.ReadFile(filepath.Join(o.Out, "results.md")); err != nil || !strings.Contains(string(md), "### "+rows[0].Scenario) {
		t.Fatalf("results.md: %v", err)
	}
	return rows
}

func want(t *testing.T, r Row, col string, ok func(float64) bool, what string) {
	t.Helper()
	if v := r.Get(col); math.IsNaN(v) || !ok(v) {
		t.Errorf("%s row %v: %s = %v, want %s", r.Scenario, r.Cols[0].Val, col, v, what)
	}
}

// wantFanout checks what every fanout step must show: no frame lost or
// connection failed, at least perSub frames per subscriber, sane delays and
// join times, and the server's /metrics read.
func wantFanout(t *testing.T, r Row, perSub float64, what string) {
	t.Helper()
	want(t, r, "frame_loss_pct", zero, "0 (no frame lost)")
	want(t, r, "failed", zero, "0")
	want(t, r, "frames", func(v float64) bool { return v >= r.Get("N")*perSub }, what)
	want(t, r, "delay_p50_ms", positive, "> 0")
	want(t, r, "delay_max_ms", func(v float64) bool { return v < 2000 }, "< 2 s")
	want(t, r, "join_p50_ms", positive, "> 0")
	want(t, r, "in_pkt_s", positive, "> 0 (from /metrics)")
}

func zero(v float64) bool     { return v == 0 }
func positive(v float64) bool { return v > 0 }

func TestFanoutSmoke(t *testing.T) {
	testenv.FFmpeg(t)
	o := tinyOptions(t, "fanout")
	rows := run(t, o)
	if _, err := os.Stat(filepath.Join(o.Out, "fanout.svg")); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("%d rows, want one per step", len(rows))
	}
	for _, r := range rows {
		wantFanout(t, r, 30, "≥ 30 per subscriber in 2 s")
		want(t, r, "server_rss_MB", positive, "> 0 (from /proc)")
		if got := r.Str("joined"); got != "2/2" && got != "1/1" {
			t.Errorf("joined %s: every new subscriber must get a keyframe", got)
		}
	}
}

// With -simulcast: a row for all viewers, then one per layer asked for;
// each layer's viewers got that layer (SEI tag and SPS width), whole.
func TestFanoutSimulcastSmoke(t *testing.T) {
	testenv.FFmpeg(t)
	o := tinyOptions(t, "fanout-simulcast")
	o.Subscribers, o.Duration = []int{3, 6}, 2*time.Second
	rows := run(t, o)
	if len(rows) != 8 {
		t.Fatalf("%d rows, want 4 per step", len(rows))
	}
	for _, f := range []string{"fanout-simulcast.svg", "fanout-simulcast-cpu.svg", "fanout-simulcast-loss.svg"} {
		if _, err := os.Stat(filepath.Join(o.Out, f)); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range rows {
		k := r.Get("viewers")
		if r.Str("layer") == "all" {
			wantFanout(t, r, 30, "≥ 30 per subscriber in 2 s")
		} else {
			want(t, r, "frame_loss_pct", zero, "0 (no frame lost)")
			want(t, r, "frames", func(v float64) bool { return v >= k*30 }, "≥ 30 per subscriber in 2 s")
			want(t, r, "delay_p50_ms", positive, "> 0")
			want(t, r, "join_p50_ms", positive, "> 0")
		}
		want(t, r, "srv_layer_viewers", func(v float64) bool { return v == k }, "the viewers of the row (from /metrics)")
		if got, w := r.Str("on_layer"), fmt.Sprintf("%v/%v", k, k); got != w {
			t.Errorf("%s: on_layer %s, want %s", r.Str("layer"), got, w)
		}
		if r.Str("layer") == "all" {
			want(t, r, "server_rss_MB", positive, "> 0 (from /proc)")
			continue
		}
		if got, w := r.Str("got_px"), fmt.Sprintf("%s (%v)", r.Str("layer_px"), k); got != w {
			t.Errorf("%s: got_px %q, want %q", r.Str("layer"), got, w)
		}
	}
}

// The same with the clip published over RTSP (ANNOUNCE/RECORD, TCP).
func TestFanoutRTSPSmoke(t *testing.T) {
	testenv.FFmpeg(t)
	o := tinyOptions(t, "fanout")
	o.Ingest = "rtsp"
	o.Subscribers, o.Duration = []int{2}, 3*time.Second
	rows := run(t, o)
	if len(rows) != 1 {
		t.Fatalf("%d rows, want 1", len(rows))
	}
	r := rows[0]
	if got := r.Str("ingest"); got != "rtsp" {
		t.Errorf("ingest column %q, want rtsp", got)
	}
	if got := r.Str("pub_state"); got != "recording" {
		t.Errorf("publisher %s, want recording", got)
	}
	wantFanout(t, r, 60, "≥ 60 per subscriber in 3 s")
	want(t, r, "pub_write_errs", zero, "0")
	if got := r.Str("joined"); got != "2/2" {
		t.Errorf("joined %s: every subscriber must get a keyframe", got)
	}
}

func TestOverlaySmoke(t *testing.T) {
	o := tinyOptions(t, "overlay")
	rows := run(t, o)
	for _, r := range rows {
		want(t, r, "pushes", func(v float64) bool { return v == 5 }, "5")
		want(t, r, "lost", zero, "0")
		want(t, r, "seq_gaps", zero, "0")
		want(t, r, "closed", zero, "0")
		want(t, r, "push_p50_ms", positive, "> 0")
	}
	if r := rows[len(rows)-1]; r.Get("M") != 20 {
		t.Fatalf("last step has %v viewers, want 20", r.Get("M"))
	}
	if _, err := os.Stat(filepath.Join(o.Out, "overlay.svg")); err != nil {
		t.Fatal(err)
	}
}

func TestChatSmoke(t *testing.T) {
	rows := run(t, tinyOptions(t, "chat"))
	r := rows[0]
	want(t, r, "sent", func(v float64) bool { return v == 12 }, "12")
	want(t, r, "refused", zero, "0")
	want(t, r, "missing", zero, "0")
	want(t, r, "duplicates", zero, "0")
	want(t, r, "seq_gaps", zero, "0")
	want(t, r, "closed", zero, "0")
	want(t, r, "p99_ms", positive, "> 0")
	want(t, r, "reactions_msgs_per_viewer_s", func(v float64) bool { return v > 0 && v <= 13.0/3 }, "in (0, 13/3]") // one per 250 ms over 3 s
}

func TestCheckoutSmoke(t *testing.T) {
	o := tinyOptions(t, "checkout")
	if testenv.InCI() || redisUp() {
		testenv.Redis(t, 12) // flushed; fails under CI when missing
		o.Redis = testenv.RedisURL(12)
	} else {
		t.Log("redis not available: embedded store only")
	}
	rows := run(t, o)
	if o.Redis != "" && len(rows) != 2 {
		t.Fatalf("%d rows, want embedded and redis", len(rows))
	}
	for _, r := range rows {
		want(t, r, "orders", func(v float64) bool { return v == 5 }, "= stock (5)")
		want(t, r, "oversold", zero, "0")
		want(t, r, "available_after", zero, "0")
		want(t, r, "sold_out", func(v float64) bool { return v == 45 }, "45")
		want(t, r, "errors", zero, "0")
	}
}

func redisUp() bool {
	c, err := net.DialTimeout("tcp", testenv.RedisAddr(), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func TestGlassSmoke(t *testing.T) {
	o := tinyOptions(t, "glass")
	o.Chromium = testenv.Chromium(t)
	rows := run(t, o)
	r := rows[0]
	want(t, r, "frames", func(v float64) bool { return v >= 20 }, "≥ 20 decoded in 3 s")
	want(t, r, "frames_backwards", zero, "0")
	want(t, r, "glass_p50_ms", func(v float64) bool { return v > 0 && v < 1000 }, "in (0, 1000)")
	want(t, r, "cards", func(v float64) bool { return v == 2 }, "2")
	want(t, r, "sync_err_max_frames", func(v float64) bool { return v < 30 }, "< 30 frames")
}

// ── units ──

func TestSEIRoundTrip(t *testing.T) {
	now := time.Now().UnixNano()
	sei := seiNAL(123456789, now)
	for i := 0; i+2 < len(sei); i++ {
		if sei[i] == 0 && sei[i+1] == 0 && sei[i+2] <= 3 {
			t.Fatalf("SEI needs emulation prevention at %d", i)
		}
	}
	c, ts, ok := parseSEI(sei)
	if !ok || c != 123456789 || ts != now {
		t.Fatalf("parse: %v %d %d", ok, c, ts)
	}
	au := []byte{0, 0, 0, 1, 9, 0xf0, 0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 1, 0x65, 0x88, 0x84}
	out := withSEI(au, sei)
	i := strings.Index(string(out), string(append([]byte{0, 0, 0, 1}, sei...)))
	j := strings.Index(string(out), string([]byte{0, 0, 1, 0x65}))
	if i < 0 || j < i || len(out) != len(au)+len(sei)+4 {
		t.Fatalf("SEI not inserted before the slice: %x", out)
	}
}

func TestPercentileAndReport(t *testing.T) {
	s := sortedCopy([]float64{5, 1, 4, 2, 3})
	if percentile(s, 0.5) != 3 || percentile(s, 1) != 5 || percentile(s, 0) != 1 || !math.IsNaN(percentile(nil, 0.5)) {
		t.Fatalf("percentiles of %v wrong", s)
	}
	r := Row{Scenario: "x"}
	r.add("N", 3)
	r.add("v", 1.5)
	r.add("na", -1.0)
	b, _ := json.Marshal(r)
	if string(b) != `{"scenario":"x","N":3,"v":1.5,"na":-1}` {
		t.Fatalf("json %s", b)
	}
	if md := Markdown([]Row{r}); !strings.Contains(md, "| 3 | 1.50 | n/a |") {
		t.Fatalf("markdown %s", md)
	}
	var back Row
	if err := json.Unmarshal(b, &back); err != nil || back.Scenario != "x" || back.Get("v") != 1.5 || len(back.Cols) != 3 || back.Cols[2].Name != "na" {
		t.Fatalf("round trip: %v %+v", err, back)
	}
}

// The subscriber counts a frame only when every packet from its SEI to its
// marker arrived, so a lost packet shows up as a lost frame.
func TestSubscriberDetectsLoss(t *testing.T) {
	s := &fanoutSub{frames: map[uint32]*frameAcc{}, lastSeq: -1, widths: map[int]bool{}}
	now := time.Now().UnixNano()
	seq := uint16(65530) // across the wrap
	send := func(ts uint32, payload []byte, marker, drop bool) {
		h := rtp.Header{SequenceNumber: seq, Timestamp: ts, Marker: marker}
		seq++
		if !drop {
			s.onVideo(&h, payload, now+int64(time.Millisecond))
		}
	}
	slice := []byte{0x41, 0x9a, 0x22}
	for c := uint64(0); c < 4; c++ {
		ts := uint32(c * 3000)
		send(ts, seiNAL(c, now), false, false)
		send(ts, slice, false, c == 2) // frame 2 loses a packet
		send(ts, slice, true, false)
	}
	w := s.window([]span{{0, 3}})
	if w.got != 3 || w.expected != 4 || w.gaps != 1 || w.packets != 11 {
		t.Fatalf("got %d of %d frames, %d gaps, %d packets; want 3 of 4, 1, 11", w.got, w.expected, w.gaps, w.packets)
	}
	for _, r := range s.recs {
		if r.counter == 2 {
			t.Fatal("frame 2 lost a packet but was counted")
		}
	}
	for _, d := range w.delays {
		if d != 1 {
			t.Fatalf("delay %v ms, want 1", d)
		}
	}
}

// The simulcast publisher's interceptor puts a SEI packet before the first
// slice packet of each frame (after a keyframe's SPS/PPS packet), tagged
// with the layer of the packet's rid, and renumbers the rest so that the
// stream stays gapless; a viewer then scores its window against the layer
// it got, and says which widths its SPSs carried.
func TestSimulcastStamper(t *testing.T) {
	layers, err := simulcastLayers(1280, 720, "2.5M")
	if err != nil || layers[0].Width != 320 || layers[0].Height != 180 || layers[0].Rate != "200k" || layers[1].Rate != "900k" || layers[2].Rate != "2500k" {
		t.Fatalf("layers %v %v", layers, err)
	}
	st := newSEIStamper(layers)
	var sent []rtp.Packet
	w := st.BindLocalStream(&interceptor.StreamInfo{MimeType: "video/H264",
		RTPHeaderExtensions: []interceptor.RTPHeaderExtension{{URI: sdp.SDESRTPStreamIDURI, ID: 3}}},
		interceptor.RTPWriterFunc(func(h *rtp.Header, p []byte, _ interceptor.Attributes) (int, error) {
			sent = append(sent, rtp.Packet{Header: *h, Payload: slices.Clone(p)})
			return len(p), nil
		}))
	// 640x360 SPS (as x264 writes it), PPS, IDR in two FU-A fragments; then a P frame.
	sps := []byte{0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2e, 0x48}
	stap := append([]byte{0x78, 0, byte(len(sps))}, sps...)
	stap = append(stap, 0, 4, 0x68, 0xce, 0x3c, 0x80)
	seq := uint16(65534)
	write := func(ts uint32, p []byte, marker bool) {
		h := rtp.Header{SequenceNumber: seq, Timestamp: ts, Marker: marker}
		_ = h.SetExtension(3, []byte("m"))
		seq++
		if _, err := w.Write(&h, p, nil); err != nil {
			t.Fatal(err)
		}
	}
	write(0, stap, false)
	write(0, []byte{0x7c, 0x85, 1}, false)
	write(0, []byte{0x7c, 0x45, 2}, true)
	write(3000, []byte{0x41, 0x9a}, true)
	if len(sent) != 6 {
		t.Fatalf("%d packets sent, want 6 (4 + 2 SEI)", len(sent))
	}
	for i, p := range sent {
		if p.SequenceNumber != uint16(65534+i) {
			t.Fatalf("packet %d has sequence number %d: not renumbered without gaps", i, p.SequenceNumber)
		}
		if string(p.GetExtension(3)) != "m" {
			t.Fatalf("packet %d lost its rid", i)
		}
	}
	for _, i := range []int{1, 4} {
		c, _, ok := parseSEI(sent[i].Payload)
		if !ok || layerOf(c) != 1 || frameNo(c) != uint64(i/4) || sent[i].Marker {
			t.Fatalf("packet %d: %x is not the medium layer's SEI for frame %d", i, sent[i].Payload, i/4)
		}
	}
	// A viewer that asked for high (2) but got medium frames: scored on
	// medium's window, not on layer, and its SPS said 640.
	s := &fanoutSub{frames: map[uint32]*frameAcc{}, lastSeq: -1, want: 2, widths: map[int]bool{}}
	for _, p := range sent {
		s.onVideo(&p.Header, p.Payload, time.Now().UnixNano())
	}
	win := s.window([]span{{0, 9}, {0, 1}, {0, 9}})
	if win.got != 2 || win.expected != 2 || win.onLayer(2) || !win.onLayer(1) || win.widthsText() != "640" {
		t.Fatalf("window: got %d of %d, layers %v, widths %q", win.got, win.expected, win.layers, win.widthsText())
	}
	if u := layerURL("http://h/whep/s?x=1", "low"); u != "http://h/whep/s?layer=low&x=1" {
		t.Fatalf("layer URL %s", u)
	}
}

// A step where every frame was lost has no delay: the chart leaves it out
// (a gap, named in the legend) instead of drawing 0 ms, and CPU and loss
// get charts of their own.
func TestChartsShowMissingAsMissing(t *testing.T) {
	var rows []Row
	for _, n := range []int{50, 150, 300} {
		r := Row{Scenario: "fanout"}
		r.add("N", n)
		r.add("server", "streamd")
		d := 5.0
		if n == 300 {
			d = percentile(nil, 0.99) // every frame lost
		}
		r.add("delay_p50_ms", d)
		r.add("delay_p99_ms", d)
		r.add("join_p50_ms", 90.0)
		r.add("server_cpu_ms_per_sub_s", 3.0)
		r.add("frame_loss_pct", map[bool]float64{true: 100, false: 0}[n == 300])
		rows = append(rows, r)
	}
	dir := t.TempDir()
	if err := writeResults(dir, rows); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "fanout.svg"))
	if err != nil {
		t.Fatal(err)
	}
	svg := string(b)
	if !strings.Contains(svg, "delay_p99_ms (missing at N=300)") {
		t.Fatalf("the lost step is not marked missing:\n%s", svg)
	}
	if strings.Count(svg, "<circle") != 2+2+3 {
		t.Fatalf("want 7 points (delays at N=50,150; joins at all three), got %d", strings.Count(svg, "<circle"))
	}
	if strings.Contains(svg, "server_cpu") {
		t.Fatal("CPU is drawn on the millisecond chart")
	}
	for _, f := range []string{"fanout-cpu.svg", "fanout-loss.svg"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
}
