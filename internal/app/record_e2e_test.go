package app

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamd/streamd/internal/testenv"
)

type showView struct {
	ID        string     `json:"id"`
	Stream    string     `json:"stream"`
	StartedAt time.Time  `json:"started_at"`
	EndedAt   *time.Time `json:"ended_at"`
	Duration  float64    `json:"duration_s"`
	Bytes     int64      `json:"bytes"`
	Cards     int        `json:"cards"`
	ReplayURL string     `json:"replay_url"`
}

func listShows(t *testing.T, base, stream string) []showView {
	t.Helper()
	var shows []showView
	if code := api(t, "GET", base+"/api/streams/"+stream+"/shows", testStaff, nil, &shows); code != 200 {
		t.Fatalf("GET shows: %d", code)
	}
	return shows
}

// probeDuration is ffprobe's duration of an HLS playlist (or file), in seconds.
func probeDuration(t *testing.T, url string) float64 {
	t.Helper()
	out, err := exec.Command(testenv.FFprobe(t), "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", url).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v: %s", url, err, out)
	}
	d, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		t.Fatalf("ffprobe duration %q: %v", out, err)
	}
	return d
}

func probeStreams(t *testing.T, url string) string {
	t.Helper()
	out, err := exec.Command(testenv.FFprobe(t), "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", url).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v: %s", url, err, out)
	}
	// The HLS demuxer lists each stream twice (in its program too).
	var names []string
	seen := map[string]bool{}
	for _, f := range strings.Fields(string(out)) {
		if !seen[f] {
			seen[f] = true
			names = append(names, f)
		}
	}
	return strings.Join(names, ",")
}

// TestRecordShowRTSP: ffmpeg publishes H.264 + Opus, drops and reconnects
// within the show gap (one show, one timeline), a card is pushed; the show is
// listed with its size, card count and replay URL; ffprobe reads the replay
// playlist (H.264 and Opus) and its duration matches the show's; segments
// are immutable and served in byte ranges; the show can be deleted.
func TestRecordShowRTSP(t *testing.T) {
	a := startApp(t, func(c *Config) { c.RTSP = "127.0.0.1:0"; c.Record = true; c.RecordShowGap = 6 * time.Second })
	key := createStream(t, a, "rec")
	if code := api(t, "POST", a.BaseURL()+"/api/products", testStaff, map[string]any{"id": "mug", "title": "Mug", "price": map[string]any{"amount": 1500, "currency": "eur"}, "stock": 5}, nil); code != 201 {
		t.Fatalf("create product: %d", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	url := "rtsp://pub:" + key + "@" + a.RTSPAddr() + "/rec"
	wait := ffmpegPublish(ctx, t, url, "tcp", "libopus", 5)
	waitFor(ctx, t, "live", func() bool { return a.SFU.Live("rec") })
	time.Sleep(2 * time.Second)
	if code := api(t, "POST", a.BaseURL()+"/api/streams/rec/cards", testStaff, map[string]any{"action": "show", "product_id": "mug"}, nil); code != 201 {
		t.Fatalf("push card: %d", code)
	}
	if err := wait(); err != nil {
		t.Fatalf("ffmpeg: %v", err)
	}
	waitFor(ctx, t, "off the air", func() bool { return !a.SFU.Live("rec") })
	time.Sleep(time.Second)
	// Back within the gap: the same show goes on.
	wait = ffmpegPublish(ctx, t, url, "tcp", "libopus", 4)
	if err := wait(); err != nil {
		t.Fatalf("ffmpeg: %v", err)
	}
	if s := listShows(t, a.BaseURL(), "rec"); len(s) != 1 || s[0].EndedAt != nil {
		t.Fatalf("during the gap want one open show, got %+v", s)
	}
	var shows []showView
	waitFor(ctx, t, "the show to end", func() bool {
		shows = listShows(t, a.BaseURL(), "rec")
		return len(shows) == 1 && shows[0].EndedAt != nil
	})
	s := shows[0]
	wall := s.EndedAt.Sub(s.StartedAt).Seconds()
	t.Logf("show %s: %.2f s of media, %.2f s on the wall clock, %d bytes, %d cards", s.ID, s.Duration, wall, s.Bytes, s.Cards)
	if s.Stream != "rec" || s.Bytes < 50_000 || s.Cards != 1 || s.ReplayURL != "/replay/rec/"+s.ID {
		t.Fatalf("show %+v", s)
	}
	if s.Duration < 9 || s.Duration > 16 {
		t.Fatalf("show duration %.2f s, want about 10 s (5 s + a gap of 1 s and the reconnect + 4 s)", s.Duration)
	}

	m3u8 := a.BaseURL() + s.ReplayURL + "/index.m3u8"
	res, err := http.Get(m3u8)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	pl := string(body)
	if res.StatusCode != 200 || !strings.Contains(pl, "#EXT-X-PROGRAM-DATE-TIME:") || !strings.Contains(pl, "#EXT-X-ENDLIST") || !strings.Contains(pl, "#EXT-X-PLAYLIST-TYPE:VOD") {
		t.Fatalf("playlist %d:\n%s", res.StatusCode, pl)
	}
	if codecs := probeStreams(t, m3u8); codecs != "h264,opus" {
		t.Fatalf("replay streams %q, want h264,opus", codecs)
	}
	d := probeDuration(t, m3u8)
	t.Logf("ffprobe: replay %.3f s; show %.3f s (wall clock)", d, wall)
	if diff := d - wall; diff < -1 || diff > 1 {
		t.Fatalf("replay lasts %.3f s, the show %.3f s", d, wall)
	}

	req, _ := http.NewRequest("GET", a.BaseURL()+s.ReplayURL+"/000001.m4s", nil)
	req.Header.Set("Range", "bytes=0-99")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 206 || len(part) != 100 || !strings.Contains(res.Header.Get("Cache-Control"), "immutable") || res.Header.Get("Accept-Ranges") != "bytes" {
		t.Fatalf("segment range: %d, %d bytes, headers %v", res.StatusCode, len(part), res.Header)
	}

	if code := api(t, "DELETE", a.BaseURL()+"/api/streams/rec/shows/"+s.ID, "", nil, nil); code != 401 {
		t.Fatalf("delete without staff token: %d", code)
	}
	if code := api(t, "DELETE", a.BaseURL()+"/api/streams/rec/shows/"+s.ID, testStaff, nil, nil); code != 204 {
		t.Fatalf("delete show: %d", code)
	}
	if left := listShows(t, a.BaseURL(), "rec"); len(left) != 0 {
		t.Fatalf("after delete: %+v", left)
	}
	if res, err := http.Get(m3u8); err != nil || res.StatusCode != 404 {
		t.Fatalf("deleted show's playlist: %v %v", res.StatusCode, err)
	}
}

// TestRecordSurvivesSIGKILL kills streamd mid-show: after a restart the show
// is closed with its real end (the end of the last segment written, within a
// segment of the kill), and everything recorded decodes without an error.
func TestRecordSurvivesSIGKILL(t *testing.T) {
	ffmpeg := testenv.FFmpeg(t)
	rtspPort := freePort(t)
	bs := newBinaryServer(t, "--rtsp", "127.0.0.1:"+strconv.Itoa(rtspPort))
	srv := bs.start()
	var out struct {
		PublishKey string `json:"publish_key"`
	}
	if code := api(t, "POST", bs.base+"/api/streams", testStaff, map[string]any{"id": "crash", "title": "Crash"}, &out); code != 201 {
		t.Fatalf("create stream: %d", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_ = ffmpegPublish(ctx, t, fmt.Sprintf("rtsp://pub:%s@127.0.0.1:%d/crash", out.PublishKey, rtspPort), "tcp", "libopus", 30)
	waitFor(ctx, t, "a show with 3 segments", func() bool {
		s := listShows(t, bs.base, "crash")
		return len(s) == 1 && s[0].Duration >= 5
	})
	time.Sleep(1500 * time.Millisecond) // mid-segment
	if err := srv.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_, _ = srv.Process.Wait()
	killed := time.Now()

	bs.start()
	shows := listShows(t, bs.base, "crash")
	if len(shows) != 1 || shows[0].EndedAt == nil {
		t.Fatalf("after restart want one closed show, got %+v", shows)
	}
	s := shows[0]
	lag := killed.Sub(*s.EndedAt)
	t.Logf("killed at %s, show closed at %s (%.2f s earlier: the unfinished segment), %.2f s recorded",
		killed.Format("15:04:05.000"), s.EndedAt.Format("15:04:05.000"), lag.Seconds(), s.Duration)
	if lag < 0 || lag > 4*time.Second {
		t.Fatalf("show ended %s before the kill", lag)
	}
	m3u8 := bs.base + s.ReplayURL + "/index.m3u8"
	cmd := exec.Command(ffmpeg, "-v", "error", "-i", m3u8, "-f", "null", "-")
	if msg, err := cmd.CombinedOutput(); err != nil || len(strings.TrimSpace(string(msg))) > 0 {
		t.Fatalf("decoding the recording: %v: %s", err, msg)
	}
	wall := s.EndedAt.Sub(s.StartedAt).Seconds()
	if d := probeDuration(t, m3u8); d < wall-1 || d > wall+1 {
		t.Fatalf("replay lasts %.2f s, the show %.2f s", d, wall)
	}
}
