package record

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/streamd/streamd/sfu"
)

type testSource struct{}

func (testSource) RequestKeyframe() {}
func (testSource) Close() error     { return nil }

// newLive makes a real sfu stream with a live publication of one video track.
func newLive(t *testing.T, mime string) (*sfu.Stream, *sfu.TrackWriter) {
	t.Helper()
	s := &sfu.SFU{}
	if err := s.Initialize(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	st := s.Stream("shop")
	pub := st.Publish(testSource{})
	return st, pub.Track(webrtc.RTPCodecTypeVideo, webrtc.RTPCodecCapability{MimeType: mime, ClockRate: 90000})
}

func newRecorder(t *testing.T, keep time.Duration) *Recorder {
	t.Helper()
	r := &Recorder{Dir: t.TempDir(), ShowGap: 100 * time.Millisecond, Keep: keep}
	if err := r.Initialize(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// TestVP8IsWarnedAndNotKept: fMP4 replays take H.264; a VP8 show says so on
// the stream and, having recorded nothing, leaves no show behind.
func TestVP8IsWarnedAndNotKept(t *testing.T) {
	st, tw := newLive(t, webrtc.MimeTypeVP8)
	r := newRecorder(t, 0)
	r.Live("shop", st, true)
	// A VP8 keyframe (S bit, PID 0; P bit clear), then inter frames.
	for i := 0; i < 60; i++ {
		payload := []byte{0x10, 0x01, 0x9d, 0x01, 0x2a}
		if i == 0 {
			payload[1] = 0x00
		}
		tw.WriteRTP(&rtp.Packet{Header: rtp.Header{SequenceNumber: uint16(i), Timestamp: uint32(i * 3000), Marker: true}, Payload: payload}, time.Now())
		time.Sleep(2 * time.Millisecond)
	}
	deadline := time.Now().Add(5 * time.Second)
	var w []string
	for time.Now().Before(deadline) {
		if w = r.Warnings("shop"); len(w) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(w) != 1 || !strings.Contains(w[0], "VP8") || !strings.Contains(w[0], "H.264") {
		t.Fatalf("warnings %q, want one naming VP8 and H.264", w)
	}
	r.Live("shop", st, false)
	// The show leaves the open ones (Current) a moment before its muxer
	// has finished and removed it: wait for the removal itself.
	deadline = time.Now().Add(5 * time.Second)
	var shows []Show
	var err error
	for time.Now().Before(deadline) {
		if shows, err = r.Shows("shop"); err == nil && len(shows) == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil || len(shows) != 0 {
		t.Fatalf("shows %+v %v: an empty show must not stay", shows, err)
	}
}

// TestRetentionRemovesOldShows: a show that ended longer ago than Keep goes;
// a newer one stays.
func TestRetentionRemovesOldShows(t *testing.T) {
	r := newRecorder(t, 24*time.Hour)
	now := time.Now().UTC()
	for _, c := range []struct {
		id  string
		age time.Duration
	}{{"old", 48 * time.Hour}, {"new", time.Hour}} {
		dir := filepath.Join(r.Dir, "shop", c.id)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		end := now.Add(-c.age)
		if err := writeMeta(dir, Meta{ID: c.id, Stream: "shop", StartedAt: end.Add(-time.Hour), EndedAt: &end}); err != nil {
			t.Fatal(err)
		}
	}
	r.sweep(now)
	shows, _ := r.Shows("shop")
	if len(shows) != 1 || shows[0].ID != "new" {
		t.Fatalf("after the sweep: %+v", shows)
	}
}
