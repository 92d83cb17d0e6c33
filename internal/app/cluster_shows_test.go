package app

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/streamd/streamd/internal/rtctest"
	"github.com/streamd/streamd/internal/testenv"
)

func getBody(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// publishH264 is a pion WHIP publisher of H.264 on stream of a.
func publishH264(ctx context.Context, t *testing.T, a *App, stream, key string) *rtctest.Publisher {
	t.Helper()
	wapi, err := rtctest.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := rtctest.Publish(ctx, wapi, a.BaseURL()+"/whip/"+stream, key, webrtc.MimeTypeH264)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// TestClusterShows: a show recorded on node 1 is listed by node 2, its
// replay (playlist, events, segments) plays through node 2, and node 2
// deletes it on node 1 — behind a load balancer the console and the replay
// page may reach either node.
func TestClusterShows(t *testing.T) {
	ffmpeg := testenv.FFmpeg(t)
	testenv.Redis(t, 13) // flushed
	aus, err := rtctest.EncodeH264(ffmpeg, t.TempDir(), 320, 240, 30, 2, 30, "300k")
	if err != nil {
		t.Fatal(err)
	}
	node := func() *App {
		port := freePort(t)
		return startApp(t, func(c *Config) {
			c.HTTP = fmt.Sprintf("127.0.0.1:%d", port)
			c.NodeURL = fmt.Sprintf("http://127.0.0.1:%d", port)
			c.Redis = testenv.RedisURL(13)
			c.Record, c.RecordShowGap = true, time.Second
		})
	}
	n1, n2 := node(), node()
	key := createStream(t, n1, "hall")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pub := publishH264(ctx, t, n1, "hall", key)
	for range 3 { // 6 s: a few segments
		sendClip(ctx, pub, aus, 30)
	}
	pub.Close()
	var id string
	waitFor(ctx, t, "the show to end, listed by node 2", func() bool {
		s := listShows(t, n2.BaseURL(), "hall")
		if len(s) == 1 && s[0].EndedAt != nil {
			id = s[0].ID
			return true
		}
		return false
	})
	if s := listShows(t, n1.BaseURL(), "hall"); len(s) != 1 || s[0].ID != id {
		t.Fatalf("node 1 lists %+v, want the one show %s", s, id)
	}
	if n2.Recorder.Has("hall", id) || !n1.Recorder.Has("hall", id) {
		t.Fatal("the show's files should be on node 1 only")
	}
	base := "/replay/hall/" + id
	code1, pl1 := getBody(t, n1.BaseURL()+base+"/index.m3u8")
	code2, pl2 := getBody(t, n2.BaseURL()+base+"/index.m3u8")
	if code1 != 200 || code2 != 200 || pl1 != pl2 || !strings.Contains(pl2, "#EXT-X-ENDLIST") {
		t.Fatalf("playlist: node 1 %d, node 2 %d:\n%s", code1, code2, pl2)
	}
	if code, _ := getBody(t, n2.BaseURL()+base+"/events.json"); code != 200 {
		t.Fatalf("events through node 2: %d", code)
	}
	seg := ""
	for _, l := range strings.Split(pl2, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			seg = l
			break
		}
	}
	if code, b := getBody(t, n2.BaseURL()+base+"/"+seg); code != 200 || len(b) < 1000 {
		t.Fatalf("segment %q through node 2: %d, %d bytes", seg, code, len(b))
	}
	if code, _ := getBody(t, n2.BaseURL()+"/replay/hall/no-such-show/index.m3u8"); code != 404 {
		t.Fatalf("unknown show through node 2: %d", code)
	}
	if code := api(t, "DELETE", n2.BaseURL()+"/api/streams/hall/shows/"+id, testStaff, nil, nil); code != 204 {
		t.Fatalf("delete through node 2: %d", code)
	}
	if n1.Recorder.Has("hall", id) {
		t.Fatal("node 1 still keeps the deleted show")
	}
	if s := listShows(t, n2.BaseURL(), "hall"); len(s) != 0 {
		t.Fatalf("after delete node 2 lists %+v", s)
	}
}

// TestClusterLLHLS: LL-HLS asked of a node that is not the stream's origin
// starts a relay pull there (as a WHEP viewer would) and plays; the muxer
// keeps the pull going.
func TestClusterLLHLS(t *testing.T) {
	aus, n1, n2 := startClusterPair(t)
	key := createStream(t, n1, "hall")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pub := publishH264(ctx, t, n1, "hall", key)
	defer pub.Close()
	sending, stop := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sending)
		for {
			select {
			case <-stop:
				return
			default:
			}
			sendClip(ctx, pub, aus, 30)
		}
	}()
	defer func() { close(stop); <-sending }()
	waitFor(ctx, t, "live on node 1", func() bool { return n1.SFU.Live("hall") })
	code, pl := getBody(t, n2.BaseURL()+"/hls/hall/index.m3u8")
	if code != 200 || !strings.Contains(pl, "#EXTM3U") {
		t.Fatalf("LL-HLS on node 2: %d\n%s", code, pl)
	}
	if !n2.cluster.relay.Pulling("hall") {
		t.Fatal("node 2 serves LL-HLS without pulling the stream")
	}
	if got := n2.SFU.WatchedStreams(); len(got) != 1 || got[0] != "hall" {
		t.Fatalf("node 2 watches %v: the muxer should keep the pull", got)
	}
}
