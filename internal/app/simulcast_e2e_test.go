package app

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtp/codecs"

	"github.com/streamd/streamd/internal/rtctest"
	"github.com/streamd/streamd/internal/testenv"
)

// lastSPSWidth is the width in the newest SPS among a viewer's packets (0: none).
func lastSPSWidth(t *testing.T, pkts []rtctest.Packet) int {
	t.Helper()
	var dep codecs.H264Packet
	width := 0
	for _, p := range rtctest.InOrder(pkts) {
		b, err := dep.Unmarshal(p.Payload)
		if err != nil {
			continue
		}
		for i, nal := range bytes.Split(b, []byte{0, 0, 1}) {
			if i == 0 || len(nal) == 0 || nal[0]&0x1f != 7 {
				continue
			}
			var sps h264.SPS
			if sps.Unmarshal(nal) == nil {
				width = sps.Width()
			}
		}
	}
	return width
}

// simulcastLayers are the test publisher's three layers.
var simulcastLayers = []rtctest.Layer{{RID: "l", Width: 160, Height: 96, Rate: "80k"}, {RID: "m", Width: 320, Height: 180, Rate: "300k"}, {RID: "h", Width: 640, Height: 360, Rate: "900k"}}

// startSimulcast runs an app with a stream "sim" and a simulcast publisher
// sending the three layers (in the background, until the test ends).
func startSimulcast(t *testing.T) (*App, *rtctest.SimulcastPublisher, context.Context) {
	t.Helper()
	a := startApp(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return a, publishSimulcast(t, ctx, a, "sim", simulcastLayers, 2, 30), ctx
}

// publishSimulcast creates stream on a and publishes layers to it (clips of
// seconds, a keyframe every gop frames) from a pion simulcast publisher,
// looping until ctx ends or the test does.
func publishSimulcast(t *testing.T, ctx context.Context, a *App, stream string, layers []rtctest.Layer, seconds, gop int) *rtctest.SimulcastPublisher {
	t.Helper()
	ffmpeg := testenv.FFmpeg(t)
	clips, err := rtctest.EncodeLayers(ffmpeg, t.TempDir(), layers, seconds, gop)
	if err != nil {
		t.Fatal(err)
	}
	key := createStream(t, a, stream)
	api, err := rtctest.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := rtctest.PublishSimulcast(ctx, api, a.BaseURL()+"/whip/"+stream, key, layers, clips)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); pub.Run(ctx, time.Hour) }()
	t.Cleanup(func() { cancel(); <-done; pub.Close() })
	return pub
}

// subscribeLayer joins a pion viewer with ?layer=q.
func subscribeLayer(t *testing.T, ctx context.Context, a *App, q string) *rtctest.Subscriber {
	t.Helper()
	api, err := rtctest.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	v, err := rtctest.Subscribe(ctx, api, a.BaseURL()+"/whep/sim?layer="+q)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.PC.Close() })
	return v
}

// waitWidth waits until the viewer's newest SPS (among packets from index
// from on) is w pixels wide.
func waitWidth(t *testing.T, ctx context.Context, v *rtctest.Subscriber, from, w int) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := v.WaitVideo(c, func(p []rtctest.Packet) bool { return len(p) > from && lastSPSWidth(t, p[from:]) == w })
	if err != nil {
		got := 0
		if p := v.Video(); len(p) > from {
			got = lastSPSWidth(t, p[from:])
		}
		t.Fatalf("viewer's newest SPS is %d pixels wide, want %d", got, w)
	}
}

// frameTimestamps is the set of RTP timestamps of a viewer's frames.
func frameTimestamps(pkts []rtctest.Packet) map[uint32]bool {
	out := map[uint32]bool{}
	for _, p := range pkts {
		out[p.Timestamp] = true
	}
	return out
}

// TestSimulcastLayerPerViewer: a WHIP publisher sends three simulcast
// layers (160, 320 and 640 pixels wide); viewers pinned at join to low,
// medium and high each get their layer, whole (no sequence gaps, every
// access unit complete, starting at a keyframe), and all of them on one
// timeline: the same frame carries the same RTP timestamp on every layer.
// (Auto viewers follow their bandwidth estimate: TestSimulcastViewerOnSlowLink.)
func TestSimulcastLayerPerViewer(t *testing.T) {
	a, pub, ctx := startSimulcast(t)
	widths := map[string]int{"low": 160, "medium": 320, "high": 640}
	viewers := map[string]*rtctest.Subscriber{}
	for _, q := range []string{"low", "medium", "high"} {
		viewers[q] = subscribeLayer(t, ctx, a, q)
	}
	for q, v := range viewers {
		waitWidth(t, ctx, v, 0, widths[q])
	}
	time.Sleep(2 * time.Second)
	for q, v := range viewers {
		pkts := v.Video()
		if n, key := accessUnits(t, pkts); n < 30 || !key {
			t.Fatalf("%s viewer: %d access units, first is a keyframe: %v", q, n, key)
		}
		if w := lastSPSWidth(t, pkts); w != widths[q] {
			t.Fatalf("%s viewer: SPS %d wide, want %d", q, w, widths[q])
		}
		in := rtctest.InOrder(pkts)
		for i := 1; i < len(in); i++ {
			if d := in[i].SequenceNumber - in[i-1].SequenceNumber; d != 1 {
				t.Fatalf("%s viewer: sequence gap of %d at %d", q, d, in[i].SequenceNumber)
			}
		}
	}
	// One timeline: the frames each viewer got in its last second carry
	// timestamps the high viewer got too. (Until the layers' sender
	// reports arrive, about a second in, a layer is aligned by arrival
	// time, which a loaded machine can put a frame off.)
	for _, q := range []string{"low", "medium"} {
		pkts := viewers[q].Video()
		high := frameTimestamps(viewers["high"].Video())
		last := pkts[len(pkts)-1].Arrival
		var recent []rtctest.Packet
		for _, p := range pkts {
			if at := last.Sub(p.Arrival); at > 100*time.Millisecond && at < 1100*time.Millisecond {
				recent = append(recent, p)
			}
		}
		missing, n := 0, 0
		for ts := range frameTimestamps(recent) {
			n++
			if !high[ts] {
				missing++
			}
		}
		if n < 20 || missing > 0 {
			t.Fatalf("%s viewer: %d of %d frame timestamps of its last second are not on the high layer's timeline", q, missing, n)
		}
	}
	if pub.Frames() < 60 {
		t.Fatalf("publisher sent %d frames", pub.Frames())
	}
}

// postLayer sets a WHEP session's layer.
func postLayer(t *testing.T, session, layer string) map[string]any {
	t.Helper()
	var out map[string]any
	if code := api(t, http.MethodPost, session+"/layer", "", map[string]string{"layer": layer}, &out); code != http.StatusOK {
		t.Fatalf("POST %s/layer %s: %d %v", session, layer, code, out)
	}
	return out
}

// TestSimulcastLayerSwitch: one viewer goes high → low → high through
// POST <session>/layer. Its sequence numbers stay continuous and its
// timestamps move forward on the one timeline across both switches; every
// switch lands on a keyframe of the new layer, asked of that layer alone.
func TestSimulcastLayerSwitch(t *testing.T) {
	a, pub, ctx := startSimulcast(t)
	v := subscribeLayer(t, ctx, a, "high")
	waitWidth(t, ctx, v, 0, 640)
	// Until the layers' sender reports arrive (pion sends one a second),
	// they are aligned by arrival time, which a loaded machine can put a
	// frame off; the timeline is judged once they are in.
	time.Sleep(1500 * time.Millisecond)
	var bad map[string]any
	if code := api(t, http.MethodPost, v.Session+"/layer", "", map[string]string{"layer": "huge"}, &bad); code != http.StatusUnprocessableEntity {
		t.Fatalf("bad layer: %d %v", code, bad)
	}
	lowPLIs := pub.PLIs(0)
	mark := len(v.Video())
	st := postLayer(t, v.Session, "low")
	if st["layer"] != "low" {
		t.Fatalf("layer state after POST: %v", st)
	}
	waitWidth(t, ctx, v, mark, 160)
	if pub.PLIs(0) == lowPLIs {
		t.Fatal("no keyframe was asked of the low layer")
	}
	time.Sleep(time.Second)
	var got map[string]any
	api(t, http.MethodGet, v.Session+"/layer", "", nil, &got)
	if got["current"] != "low" || len(got["layers"].([]any)) != 3 {
		t.Fatalf("GET layer: %v", got)
	}
	mark = len(v.Video())
	postLayer(t, v.Session, "high")
	waitWidth(t, ctx, v, mark, 640)
	time.Sleep(time.Second)

	in := rtctest.InOrder(v.Video())
	var dep codecs.H264Packet
	prevWidth, widths := 0, []int{}
	for i, p := range in {
		if i > 0 {
			if d := p.SequenceNumber - in[i-1].SequenceNumber; d != 1 {
				t.Fatalf("sequence gap of %d at %d (packet %d)", d, p.SequenceNumber, i)
			}
			if d := int32(p.Timestamp - in[i-1].Timestamp); d < 0 || d > 90000/5 {
				t.Fatalf("timestamp step %d at packet %d: not one forward timeline", d, i)
			}
		}
		b, err := dep.Unmarshal(p.Payload)
		if err != nil || len(b) == 0 {
			continue
		}
		if w := lastSPSWidth(t, []rtctest.Packet{p}); w != 0 {
			if prevWidth == 0 {
				widths = append(widths, w)
			}
			if prevWidth != 0 && w != prevWidth {
				widths = append(widths, w)
				// A switch starts the new layer at its keyframe: this SPS
				// opens the frame (the previous packet ended one).
				if !in[i-1].Marker {
					t.Fatalf("switch to %d px mid-frame at packet %d", w, i)
				}
			}
			prevWidth = w
		}
	}
	// (Until the layers are first ranked, a viewer gets the first layer.)
	if n := len(widths); n < 3 || widths[n-3] != 640 || widths[n-2] != 160 || widths[n-1] != 640 {
		t.Fatalf("widths over time %v, want them to end 640, 160, 640", widths)
	}
}

// TestSimulcastLayerStops: when the publisher stops sending its large
// layer (an uplink that no longer holds it), its viewers move to the next
// one down (the largest left), and come back when it returns.
func TestSimulcastLayerStops(t *testing.T) {
	a, pub, ctx := startSimulcast(t)
	v := subscribeLayer(t, ctx, a, "high")
	waitWidth(t, ctx, v, 0, 640)
	mark := len(v.Video())
	pub.SetActive(2, false)
	defer func() {
		if t.Failed() {
			t.Logf("viewer: %d packets after the large layer stopped; publisher PLIs l/m/h %d/%d/%d", len(v.Video())-mark, pub.PLIs(0), pub.PLIs(1), pub.PLIs(2))
			logMetrics(t, a, "streamd_sfu_layer", "streamd_sfu_dropped", "streamd_sfu_pli")
		}
	}()
	waitWidth(t, ctx, v, mark, 320)
	mark = len(v.Video())
	pub.SetActive(2, true)
	waitWidth(t, ctx, v, mark, 640)
}
