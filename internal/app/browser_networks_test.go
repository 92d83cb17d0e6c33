package app

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/streamd/streamd/internal/browsertest"
	"github.com/streamd/streamd/internal/rtctest"
)

// TestBrowserRelayOnlyPlays: Chromium publishes from /publish and a
// Chromium viewer limited to relayed candidates plays through the embedded
// TURN server, with the ICE servers its page read from the Link headers.
func TestBrowserRelayOnlyPlays(t *testing.T) {
	b := browsertest.Launch(t)
	a := startApp(t, func(c *Config) { c.TURN = "127.0.0.1:0" })
	key := createStream(t, a, "relay")
	publishCanvas(t, b, a.BaseURL(), "relay", key, "h264")

	tab := b.Tab(t)
	if err := browsertest.Open(tab, a.BaseURL()+"/publish/relay", "#form"); err != nil {
		t.Fatal(err)
	}
	// The page's own module: Link parsing, then a relay-only WHEP session.
	js := fmt.Sprintf(`(async () => {
		const m = await import('/static/webrtc.js');
		const v = document.createElement('video'); v.muted = true; v.autoplay = true; document.body.appendChild(v);
		window.frames_ = 0;
		const s = await m.whepPlay(%q, { iceTransportPolicy: 'relay', onStream: (ms) => { v.srcObject = ms; } });
		window.relaySession = s;
		const tick = () => { window.frames_++; v.requestVideoFrameCallback(tick); };
		v.requestVideoFrameCallback(tick);
		return s.pc.getConfiguration().iceServers.length;
	})()`, a.BaseURL()+"/whep/relay")
	n, err := browsertest.Eval[int](tab, 20*time.Second, js)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("the page configured %d ICE servers from the Link headers, want 2", n)
	}
	if err := browsertest.WaitFor(tab, 20*time.Second, `window.frames_ >= 30`); err != nil {
		t.Fatal(err)
	}
	typ, err := browsertest.Eval[string](tab, 10*time.Second, `(async () => {
		const st = await window.relaySession.pc.getStats();
		let pair = null;
		st.forEach((r) => { if (r.type === 'transport' && r.selectedCandidatePairId) pair = st.get(r.selectedCandidatePairId); });
		return pair ? st.get(pair.localCandidateId).candidateType : 'none';
	})()`)
	if err != nil {
		t.Fatal(err)
	}
	if typ != "relay" {
		t.Fatalf("Chromium's selected local candidate is %q, want relay", typ)
	}
	if n := scrape(t, a, `streamd_webrtc_sessions{role="viewer",transport="relay"}`); n != 1 {
		t.Fatalf("relay viewers %v, want 1", n)
	}
}

// TestBrowserCodecUnsupportedNotice: the player page of a stream in a codec
// Chromium cannot decode here over WebRTC (H.265) says so in words instead
// of waiting for the host forever, falls back to LL-HLS, and no viewer
// session is left behind.
func TestBrowserCodecUnsupportedNotice(t *testing.T) {
	b := browsertest.Launch(t)
	a := startApp(t, nil)
	key := createStream(t, a, "hevc")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	api, err := rtctest.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := rtctest.Publish(ctx, api, a.BaseURL()+"/whip/hevc", key, webrtc.MimeTypeH265)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	waitFor(ctx, t, "H.265 live", func() bool {
		_ = pub.Video.WriteSample(media.Sample{Data: []byte{0, 0, 0, 1, 0x26, 0x01, 0xaf}, Duration: time.Second / 30})
		c, live := a.SFU.Stream("hevc").Codec(webrtc.RTPCodecTypeVideo)
		return live && strings.EqualFold(c.MimeType, webrtc.MimeTypeH265)
	})
	tab := b.Tab(t)
	if err := browsertest.Open(tab, a.BaseURL()+"/watch/hevc", "#video"); err != nil {
		t.Fatal(err)
	}
	if err := browsertest.WaitFor(tab, 15*time.Second, `!!document.getElementById('notice')`); err != nil {
		t.Fatal(err)
	}
	text, err := browsertest.Eval[string](tab, 5*time.Second, `document.getElementById('notice').textContent + ' | ' + streamdPlayer.hlsReason`)
	if err != nil {
		t.Fatal(err)
	}
	// The message, and the player went on to try LL-HLS.
	if !strings.HasPrefix(text, "This stream is H.265 and this browser can't decode it — ") || !strings.HasSuffix(text, "| codec") {
		t.Fatalf("player shows %q", text)
	}
	// No WebRTC session is left behind (the LL-HLS muxer the player's
	// fallback may have started is an sfu sink, not a session).
	if n, w := a.SFU.Subscribers("hevc"), a.WHEP.Sessions(); n != 0 || w != 0 {
		t.Fatalf("sessions left behind: %d subscribers, %d WHEP sessions", n, w)
	}
}
