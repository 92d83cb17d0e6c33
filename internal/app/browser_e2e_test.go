package app

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/streamd/streamd/internal/browsertest"
)

type glassSample struct {
	Frame     uint32 `json:"frame"`
	LatencyMS int    `json:"latency_ms"`
	RTP       *int64 `json:"rtp"`
}

func percentile(v []int, p float64) int {
	if len(v) == 0 {
		return 0
	}
	s := append([]int(nil), v...)
	sort.Ints(s)
	i := int(p * float64(len(s)-1))
	return s[i]
}

// publishCanvas opens the publisher page in a tab and goes live with the
// test pattern.
func publishCanvas(t *testing.T, b *browsertest.Browser, base, stream, key, codec string) context.Context {
	t.Helper()
	return publishPage(t, b, base, stream, fmt.Sprintf(`{key: %q, source: 'canvas', codec: %q}`, key, codec))
}

// publishPage opens the publisher page in a tab and goes live with
// streamdPublish(opts), opts a JS object literal.
func publishPage(t *testing.T, b *browsertest.Browser, base, stream, opts string) context.Context {
	t.Helper()
	tab := b.Tab(t)
	if err := browsertest.Open(tab, base+"/publish/"+stream, "#form"); err != nil {
		t.Fatalf("open publisher: %v", err)
	}
	if _, err := browsertest.Eval[string](tab, 20*time.Second, "streamdPublish("+opts+")"); err != nil {
		t.Fatalf("publish %s: %v", opts, err)
	}
	return tab
}

// openPlayer opens /watch/{stream} in a tab with the glass probe installed
// (stream may carry a query: "s?quality=low").
func openPlayer(t *testing.T, b *browsertest.Browser, base, stream string) context.Context {
	t.Helper()
	tab := b.Tab(t)
	if err := browsertest.Open(tab, base+"/watch/"+stream, "#video"); err != nil {
		t.Fatalf("open player: %v", err)
	}
	if err := browsertest.WaitFor(tab, 10*time.Second, `!!window.streamdPlayer`); err != nil {
		t.Fatal(err)
	}
	if _, err := browsertest.Eval[bool](tab, 10*time.Second, browsertest.GlassProbeJS); err != nil {
		t.Fatalf("install probe: %v", err)
	}
	return tab
}

func TestBrowserGlassToGlass(t *testing.T) {
	b := browsertest.Launch(t)
	a := startApp(t, nil)
	for _, codec := range []string{"vp8", "h264"} {
		t.Run(codec, func(t *testing.T) {
			stream := "glass-" + codec
			key := createStream(t, a, stream)
			// The viewer arrives first: the stream is not live yet.
			player := openPlayer(t, b, a.BaseURL(), stream)
			pubTab := publishCanvas(t, b, a.BaseURL(), stream, key, codec)
			if codec == "h264" {
				mime, err := browsertest.Eval[string](pubTab, 5*time.Second, `(async () => { const s = await window.streamdPublisher.pc.getStats(); for (const r of s.values()) if (r.type === 'codec' && r.mimeType.startsWith('video/')) return r.mimeType; return ''; })()`)
				if err != nil || mime != "video/H264" {
					t.Fatalf("publisher codec %q (%v), want video/H264", mime, err)
				}
			}
			if err := browsertest.WaitFor(player, 15*time.Second, `window.__glass.length > 0 && window.streamdPlayer.state === 'live'`); err != nil {
				t.Fatalf("no decodable frame reached the player: %v", err)
			}
			time.Sleep(5 * time.Second)
			samples, err := browsertest.Eval[[]glassSample](player, 5*time.Second, `window.__glass`)
			if err != nil {
				t.Fatal(err)
			}
			if len(samples) < 60 {
				t.Fatalf("only %d frames decoded in 5 s", len(samples))
			}
			var lat []int
			back := 0
			for i, s := range samples {
				lat = append(lat, s.LatencyMS)
				if i > 0 && s.Frame < samples[i-1].Frame {
					back++
				}
			}
			if back > 0 {
				t.Fatalf("frame numbers went backwards %d times", back)
			}
			if adv := samples[len(samples)-1].Frame - samples[0].Frame; adv < 100 {
				t.Fatalf("frames advanced by only %d in ~5 s", adv)
			}
			p50, p95 := percentile(lat, 0.5), percentile(lat, 0.95)
			t.Logf("glass-to-glass %s over WHIP→sfu→WHEP: %d frames, p50 %d ms, p95 %d ms, max %d ms", codec, len(samples), p50, p95, percentile(lat, 1))
			if p95 >= 1000 || p50 < 0 {
				t.Fatalf("glass-to-glass p95 %d ms (p50 %d): want < 1000 ms", p95, p50)
			}
		})
	}
}
