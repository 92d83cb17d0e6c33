package app

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/streamd/streamd/internal/browsertest"
)

// TestPublishPageTracksSession: the host's /publish page says so when its
// session ends on the server — taken over by another source, or ended
// (DELETE) — and offers to go live again, instead of showing "Live".
func TestPublishPageTracksSession(t *testing.T) {
	b := browsertest.Launch(t)
	a := startApp(t, nil)
	key := createStream(t, a, "host")
	first := publishCanvas(t, b, a.BaseURL(), "host", key, "vp8")
	waitJS(t, first, 5*time.Second, `window.streamdPublishState.state === 'live'`)

	second := publishCanvas(t, b, a.BaseURL(), "host", key, "vp8") // e.g. OBS or an RTSP push
	waitJS(t, first, 10*time.Second, `window.streamdPublishState.state === 'takeover'`)
	if txt := eval[string](t, first, `document.getElementById('status').textContent`); !strings.Contains(txt, "another source took over") {
		t.Fatalf("status after a takeover: %q", txt)
	}
	if ok := eval[bool](t, first, `!document.getElementById('go').disabled && document.getElementById('go').textContent === 'Go live again' && document.getElementById('stop').hidden`); !ok {
		t.Fatal("the page does not offer to go live again")
	}

	// The server ends the second session (as a restart or DELETE would).
	loc := eval[string](t, second, `window.streamdPublisher.location`)
	req, _ := http.NewRequest("DELETE", loc, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("DELETE %s: %v %v", loc, res, err)
	}
	res.Body.Close()
	waitJS(t, second, 10*time.Second, `window.streamdPublishState.state === 'ended' && document.getElementById('status').textContent.includes('Go live again')`)
}
