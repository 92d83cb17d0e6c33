package app

import (
	"strconv"
	"testing"
	"time"

	"github.com/streamd/streamd/internal/browsertest"
)

// TestBrowserPublisherTakeover: a second browser publisher takes the stream
// over; the player keeps its session and shows the new publisher's frames.
func TestBrowserPublisherTakeover(t *testing.T) {
	b := browsertest.Launch(t)
	a := startApp(t, nil)
	key := createStream(t, a, "takeover")
	player := openPlayer(t, b, a.BaseURL(), "takeover")
	first := publishCanvas(t, b, a.BaseURL(), "takeover", key, "vp8")
	if err := browsertest.WaitFor(player, 15*time.Second, `window.__glass.length > 30`); err != nil {
		t.Fatal(err)
	}
	pcBefore, _ := browsertest.Eval[string](player, 5*time.Second, `window.streamdPlayer.session.location`)
	n, _ := browsertest.Eval[int](player, 5*time.Second, `window.__glass.length`)
	last, _ := browsertest.Eval[int](player, 5*time.Second, `window.__glass[window.__glass.length-1].frame`)
	if last < 40 {
		t.Fatalf("the first publisher only reached frame %d", last)
	}
	// A new tab publishes: its pattern restarts at frame 1, so low frame
	// numbers after the switch prove the new publisher's video is playing.
	publishCanvas(t, b, a.BaseURL(), "takeover", key, "vp8")
	_ = first
	// Frame numbers that go back below the old publisher's last frame can
	// only come from the new publisher's pattern.
	js := `window.__glass.slice(` + strconv.Itoa(n) + `).some(s => s.frame < ` + strconv.Itoa(last/2) + `)`
	if err := browsertest.WaitFor(player, 15*time.Second, js); err != nil {
		t.Fatalf("the player did not show the new publisher: %v", err)
	}
	pcAfter, _ := browsertest.Eval[string](player, 5*time.Second, `window.streamdPlayer.session.location`)
	if pcAfter != pcBefore {
		t.Fatalf("the player had to start a new session (%s → %s)", pcBefore, pcAfter)
	}
}
