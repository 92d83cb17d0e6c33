package app

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/streamd/streamd/internal/browsertest"
)

// TestBrowserLLHLS: while Chromium publishes, the player with ?hls=1 plays
// /hls/{stream}/index.m3u8 through hls.js; glass-to-glass is measured, and
// cards are revealed on the frame they were pushed on (±1 displayed frame),
// mapped from the frames' PTS.
func TestBrowserLLHLS(t *testing.T) {
	b := browsertest.Launch(t)
	a := startApp(t, nil)
	key := createStream(t, a, "ll")
	if code := api(t, "POST", a.BaseURL()+"/api/products", testStaff, map[string]any{"id": "bag", "title": "Leather bag", "price": map[string]any{"amount": 4900, "currency": "eur"}, "stock": 10}, nil); code != 201 {
		t.Fatalf("create product: %d", code)
	}
	if res, err := http.Get(a.BaseURL() + "/hls/ll/index.m3u8"); err != nil || res.StatusCode != 404 {
		t.Fatalf("HLS of a stream not live: %v %v", res.StatusCode, err)
	}
	pub := publishCanvas(t, b, a.BaseURL(), "ll", key, "h264")

	res, err := http.Get(a.BaseURL() + "/hls/ll/index.m3u8")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("multivariant playlist: %v %v", res.StatusCode, err)
	}
	res.Body.Close()
	t.Logf("index.m3u8 Cache-Control: %q", res.Header.Get("Cache-Control"))

	player := b.Tab(t)
	if err := browsertest.Open(player, a.BaseURL()+"/watch/ll?hls=1", "#video"); err != nil {
		t.Fatal(err)
	}
	if err := browsertest.WaitFor(player, 10*time.Second, `!!window.streamdPlayer`); err != nil {
		t.Fatal(err)
	}
	if _, err := browsertest.Eval[bool](player, 10*time.Second, browsertest.GlassProbeJS); err != nil {
		t.Fatal(err)
	}
	if err := browsertest.WaitFor(player, 30*time.Second, `window.__glass.filter(s => s.rtp !== null).length > 30 && window.streamdPlayer.mode === 'hls'`); err != nil {
		n, _ := browsertest.Eval[int](player, time.Second, `window.__glass.length`)
		t.Fatalf("no HLS frames with a timestamp (%d decoded): %v", n, err)
	}
	time.Sleep(8 * time.Second)
	samples, err := browsertest.Eval[[]glassSample](player, 5*time.Second, `window.__glass.slice(-240)`)
	if err != nil || len(samples) < 60 {
		t.Fatalf("%d frames: %v", len(samples), err)
	}
	var lat []int
	for _, s := range samples {
		lat = append(lat, s.LatencyMS)
	}
	p50, p95 := percentile(lat, 0.5), percentile(lat, 0.95)
	t.Logf("glass-to-glass over LL-HLS (hls.js, 200 ms parts): %d frames, p50 %d ms, p95 %d ms", len(samples), p50, p95)
	if p50 <= 0 || p95 > 10000 {
		t.Fatalf("LL-HLS glass-to-glass p50 %d ms, p95 %d ms", p50, p95)
	}

	// Where WebRTC cannot connect, the player falls back to LL-HLS by itself.
	noRTC := b.Tab(t)
	if err := chromedp.Do(noRTC, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: `window.RTCPeerConnection = undefined;`})
		return err
	})); err != nil {
		t.Fatal(err)
	}
	if err := browsertest.Open(noRTC, a.BaseURL()+"/watch/ll", "#video"); err != nil {
		t.Fatal(err)
	}
	if err := browsertest.WaitFor(noRTC, 20*time.Second, `window.streamdPlayer && window.streamdPlayer.mode === 'hls' && window.streamdPlayer.hlsReason === 'no_webrtc' && window.streamdPlayer.state === 'live'`); err != nil {
		t.Fatalf("no fallback to HLS without WebRTC: %v", err)
	}

	for round, action := range []string{"show", "hide", "show"} {
		fpub, err := browsertest.Eval[int](pub, 5*time.Second, `window.streamdPattern.frame`)
		if err != nil {
			t.Fatal(err)
		}
		var push struct {
			Seq uint64 `json:"seq"`
		}
		if code := api(t, "POST", a.BaseURL()+"/api/streams/ll/cards", testStaff, map[string]any{"action": action, "product_id": "bag"}, &push); code != 201 {
			t.Fatalf("push card: %d", code)
		}
		fafter, _ := browsertest.Eval[int](pub, 5*time.Second, `window.streamdPattern.frame`)
		if err := browsertest.WaitFor(player, 15*time.Second, fmt.Sprintf(`window.streamdPlayer.reveals.some(r => r.seq === %d)`, push.Seq)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		revs, err := browsertest.Eval[[]reveal](player, 5*time.Second, fmt.Sprintf(`window.streamdPlayer.reveals.filter(r => r.seq === %d)`, push.Seq))
		if err != nil || len(revs) != 1 || revs[0].FrameRTP == nil {
			t.Fatalf("round %d: reveal %+v %v (not on a frame with a timestamp)", round, revs, err)
		}
		samples, _ := browsertest.Eval[[]glassSample](player, 5*time.Second, `window.__glass.slice(-400)`)
		shown, ok := frameOf(samples, *revs[0].FrameRTP)
		if !ok {
			t.Fatalf("no decoded frame with rtp %d", *revs[0].FrameRTP)
		}
		diff := 0
		switch {
		case int(shown) < fpub:
			diff = -distinctBetween(samples, shown, uint32(fpub))
		case int(shown) > fafter:
			diff = distinctBetween(samples, uint32(fafter), shown)
		}
		t.Logf("HLS %s: pushed at frames %d..%d, revealed on frame %d (error %+d frames; stamp %d, frame rtp %d)", action, fpub, fafter, shown, diff, *revs[0].RTPTS, *revs[0].FrameRTP)
		if diff < -1 || diff > 1 {
			t.Fatalf("HLS card %s revealed on frame %d, pushed at %d..%d", action, shown, fpub, fafter)
		}
	}
}

// distinctBetween counts the distinct pictures displayed in (lo, hi]: the
// canvas capture may encode one drawing twice, and that is one picture.
func distinctBetween(samples []glassSample, lo, hi uint32) int {
	seen := map[uint32]bool{}
	for _, s := range samples {
		if s.Frame > lo && s.Frame <= hi {
			seen[s.Frame] = true
		}
	}
	return len(seen)
}
