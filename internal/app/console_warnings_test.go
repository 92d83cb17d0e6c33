package app

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/streamd/streamd/internal/browsertest"
)

// TestConsoleShowsWarnings: an RTSP push with AAC audio (which browsers
// cannot play) puts the stream's warning in the console's live header,
// and the console's own preview is not counted as a viewer.
func TestConsoleShowsWarnings(t *testing.T) {
	b := browsertest.Launch(t)
	a := startRTSPApp(t)
	key := createStream(t, a, "aacshow")
	console := b.Tab(t)
	viewport(t, console, 1024, 768, 1)
	signInTab(t, console, a.BaseURL()+"/console/aacshow")
	if shown := eval[bool](t, console, `document.getElementById('warnings').hidden`); !shown {
		t.Fatal("a warning shown before any source")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wait := ffmpegPublish(ctx, t, "rtsp://pub:"+key+"@"+a.RTSPAddr()+"/aacshow", "tcp", "aac", 12)
	defer func() { cancel(); _ = wait() }()
	waitJS(t, console, 15*time.Second, `window.streamdConsole.live === true && !document.getElementById('warnings').hidden`)
	if txt := eval[string](t, console, `document.getElementById('warnings').title`); !strings.Contains(txt, "libopus") {
		t.Fatalf("warning in the header: %q", txt)
	}
	// The console's preview plays the stream, yet the count stays 0.
	waitJS(t, console, 15*time.Second, `!!window.streamdConsole.preview && window.streamdConsole.preview.pc.connectionState === 'connected'`)
	if n := a.SFU.Subscribers("aacshow"); n != 1 {
		t.Fatalf("sfu sessions %d, want the preview's 1", n)
	}
	waitJS(t, console, 8*time.Second, `document.getElementById('viewers').textContent === '0'`)
	if v := getStream(t, a, "aacshow"); v.Viewers != 0 {
		t.Fatalf("API viewers %d with only the staff preview watching", v.Viewers)
	}
	shot(t, console, "console-warning.png")
}
