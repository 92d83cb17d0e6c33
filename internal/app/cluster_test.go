package app

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/streamd/streamd/internal/rtctest"
	"github.com/streamd/streamd/internal/testenv"
)

// startClusterNode runs a node of a cluster whose nodes share Redis DB db;
// its node URL is its own HTTP address.
func startClusterNode(t *testing.T, db int) *App {
	t.Helper()
	port := freePort(t)
	return startApp(t, func(c *Config) {
		c.HTTP = fmt.Sprintf("127.0.0.1:%d", port)
		c.NodeURL = fmt.Sprintf("http://127.0.0.1:%d", port)
		c.Redis = testenv.RedisURL(db)
	})
}

// startClusterPair starts two nodes on a flushed Redis DB 10 and encodes a
// 2 s clip for them.
func startClusterPair(t *testing.T) (aus [][]byte, n1, n2 *App) {
	t.Helper()
	ffmpeg := testenv.FFmpeg(t)
	testenv.Redis(t, 10) // flushed
	aus, err := rtctest.EncodeH264(ffmpeg, t.TempDir(), 320, 240, 30, 2, 30, "300k")
	if err != nil {
		t.Fatal(err)
	}
	return aus, startClusterNode(t, 10), startClusterNode(t, 10)
}

// TestClusterRelay: two nodes share Redis; a stream published on node 1 is
// watched by three viewers on node 2, which pulls it from node 1 once.
func TestClusterRelay(t *testing.T) {
	aus, n1, n2 := startClusterPair(t)
	key := createStream(t, n1, "hall")
	api, err := rtctest.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	var viewers []*rtctest.Subscriber
	for i := 0; i < 3; i++ {
		v, err := rtctest.Subscribe(ctx, api, n2.BaseURL()+"/whep/hall") // known through Redis
		if err != nil {
			t.Fatalf("viewer on node 2: %v", err)
		}
		defer v.Close()
		viewers = append(viewers, v)
	}
	pub, err := rtctest.Publish(ctx, api, n1.BaseURL()+"/whip/hall", key, webrtc.MimeTypeH264)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	go sendClip(ctx, pub, aus, 30)
	for i, v := range viewers {
		if err := v.WaitVideo(ctx, func(p []rtctest.Packet) bool { n, _ := frames(p); return n >= 20 }); err != nil {
			t.Fatalf("viewer %d on node 2 got no video from node 1: %v", i, err)
		}
		if _, key := frames(v.Video()); !key {
			t.Fatalf("viewer %d did not start on a keyframe", i)
		}
	}
	if got := n1.SFU.Subscribers("hall"); got != 1 {
		t.Fatalf("origin serves %d sessions, want 1 pull for all of node 2", got)
	}
	if !n2.cluster.relay.Pulling("hall") {
		t.Fatal("node 2 is not pulling")
	}
}

// TestClusterRelayPrivate: a private stream published on node 1 is watched
// on node 2 with a viewer link made on node 1 (the nodes share the signing
// key); node 2's pull from node 1 carries its own credential.
func TestClusterRelayPrivate(t *testing.T) {
	aus, n1, n2 := startClusterPair(t)
	var rec struct {
		PublishKey string `json:"publish_key"`
	}
	if code := api(t, "POST", n1.BaseURL()+"/api/streams", testStaff, map[string]any{"id": "vip", "private": true}, &rec); code != 201 {
		t.Fatalf("create: %d", code)
	}
	var link struct {
		Token string `json:"token"`
	}
	if code := api(t, "POST", n1.BaseURL()+"/api/streams/vip/links", testStaff, nil, &link); code != 201 {
		t.Fatalf("link: %d", code)
	}
	rapi, err := rtctest.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	pub, err := rtctest.Publish(ctx, rapi, n1.BaseURL()+"/whip/vip", rec.PublishKey, webrtc.MimeTypeH264)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	go sendClip(ctx, pub, aus, 30)
	if _, err := rtctest.Subscribe(ctx, rapi, n2.BaseURL()+"/whep/vip"); err == nil {
		t.Fatal("node 2 served a private stream without a credential")
	}
	v, err := rtctest.Subscribe(ctx, rapi, n2.BaseURL()+"/whep/vip?t="+link.Token)
	if err != nil {
		t.Fatalf("viewer with node 1's link on node 2: %v", err)
	}
	defer v.Close()
	if err := v.WaitVideo(ctx, func(p []rtctest.Packet) bool { n, _ := frames(p); return n >= 10 }); err != nil {
		t.Fatalf("no video through node 2's pull of the private stream: %v", err)
	}
	if !n2.cluster.relay.Pulling("vip") {
		t.Fatal("node 2 is not pulling")
	}
}
