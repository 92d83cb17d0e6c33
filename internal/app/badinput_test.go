package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/streamd/streamd/internal/rtctest"
)

func rawPost(t *testing.T, url, ctype, token string, body []byte) (int, map[string]any, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return res.StatusCode, m, res.Header
}

// pionPC is a pion peer connection (pion's default codecs and
// interceptors, loopback only), closed at the end of the test, and its API.
func pionPC(t *testing.T) (*webrtc.API, *webrtc.PeerConnection) {
	t.Helper()
	api, err := rtctest.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return api, pc
}

// pionOffer makes a real offer SDP (never answered).
func pionOffer(t *testing.T) (string, *webrtc.PeerConnection) {
	t.Helper()
	_, pc := pionPC(t)
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv}); err != nil {
			t.Fatal(err)
		}
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	g := webrtc.GatheringCompletePromise(pc)
	_ = pc.SetLocalDescription(offer)
	<-g
	return pc.LocalDescription().SDP, pc
}

func TestBadInputWHIPWHEP(t *testing.T) {
	a := startApp(t, nil)
	key := createStream(t, a, "bad")
	offer, _ := pionOffer(t)
	cases := []struct {
		name, url, ctype, token string
		body                    []byte
		status                  int
		code                    string
	}{
		{"whip no key", "/whip/bad", "application/sdp", "", []byte(offer), 401, "unauthorized"},
		{"whip wrong key", "/whip/bad", "application/sdp", "nope", []byte(offer), 401, "unauthorized"},
		{"whip unknown stream", "/whip/nosuch", "application/sdp", key, []byte(offer), 404, "unknown_stream"},
		{"whip wrong content type", "/whip/bad", "text/plain", key, []byte(offer), 415, "unsupported_media_type"},
		{"whip malformed sdp", "/whip/bad", "application/sdp", key, []byte("v=0\r\nthis is not sdp\r\n"), 400, "bad_sdp"},
		{"whip not sdp", "/whip/bad", "application/sdp", key, []byte("hello"), 400, "bad_sdp"},
		{"whip empty", "/whip/bad", "application/sdp", key, nil, 400, "bad_sdp"},
		{"whip oversized", "/whip/bad", "application/sdp", key, []byte("v=0\r\n" + strings.Repeat("a=x\r\n", 20000)), 413, "sdp_too_large"},
		{"whep unknown stream", "/whep/nosuch", "application/sdp", "", []byte(offer), 404, "unknown_stream"},
		{"whep wrong content type", "/whep/bad", "application/json", "", []byte(offer), 415, "unsupported_media_type"},
		{"whep malformed sdp", "/whep/bad", "application/sdp", "", []byte("v=0\r\nm=garbage\r\n"), 400, "bad_sdp"},
		{"whep oversized", "/whep/bad", "application/sdp", "", bytes.Repeat([]byte("x"), 70000), 413, "sdp_too_large"},
	}
	for _, c := range cases {
		status, body, _ := rawPost(t, a.BaseURL()+c.url, c.ctype, c.token, c.body)
		if status != c.status || body["error"] != c.code || body["message"] == "" {
			t.Errorf("%s: got %d %v, want %d %q with a message", c.name, status, body, c.status, c.code)
		}
	}
	// Unknown sessions.
	for _, u := range []string{"/whip/bad/nosuch", "/whep/bad/nosuch"} {
		req, _ := http.NewRequest("DELETE", a.BaseURL()+u, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != 404 {
			t.Errorf("DELETE %s: %v %v", u, res.StatusCode, err)
		}
		res.Body.Close()
	}
	// Stream API: missing and wrong staff token, bad body.
	if code := api(t, "POST", a.BaseURL()+"/api/streams", "", map[string]any{"id": "x"}, nil); code != 401 {
		t.Errorf("create stream without token: %d", code)
	}
	if code := api(t, "POST", a.BaseURL()+"/api/streams", "wrong", map[string]any{"id": "x"}, nil); code != 401 {
		t.Errorf("create stream with a wrong token: %d", code)
	}
	if code := api(t, "POST", a.BaseURL()+"/api/streams", testStaff, map[string]any{"id": "no spaces/allowed"}, nil); code != 400 {
		t.Errorf("create stream with a bad id: %d", code)
	}
	if code := api(t, "POST", a.BaseURL()+"/api/streams", testStaff, map[string]any{"id": "bad"}, nil); code != 409 {
		t.Errorf("create a stream twice: %d", code)
	}
	if status, _, _ := rawPost(t, a.BaseURL()+"/api/streams", "application/json", testStaff, []byte("{not json")); status != 400 {
		t.Errorf("malformed JSON: %d", status)
	}
	// CORS preflight lists Authorization explicitly and exposes Location.
	req, _ := http.NewRequest("OPTIONS", a.BaseURL()+"/whip/bad", nil)
	req.Header.Set("Origin", "https://shop.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if !strings.Contains(res.Header.Get("Access-Control-Allow-Headers"), "Authorization") || !strings.Contains(res.Header.Get("Access-Control-Expose-Headers"), "Location") {
		t.Errorf("CORS preflight headers: %v", res.Header)
	}
	// The server still serves.
	if code := api(t, "GET", a.BaseURL()+"/healthz", "", nil, nil); code != 200 {
		t.Fatalf("healthz after bad input: %d", code)
	}
}

// TestPeerThatNeverConnects: sessions whose peer never completes ICE time
// out and leave no peer or goroutine behind.
func TestPeerThatNeverConnects(t *testing.T) {
	a := startApp(t, nil)
	a.WHIP.ConnectTimeout = time.Second
	a.WHEP.ConnectTimeout = time.Second
	key := createStream(t, a, "ghost")
	time.Sleep(200 * time.Millisecond)
	before := runtime.NumGoroutine()

	for i := 0; i < 3; i++ {
		offer, pc1 := pionOffer(t)
		_ = pc1.Close() // the peer goes away before ICE: the server is left waiting
		if status, b, _ := rawPost(t, a.BaseURL()+"/whip/ghost", "application/sdp", key, []byte(offer)); status != 201 {
			t.Fatalf("whip: %d %v", status, b)
		}
		offer2, pc2 := pionOffer(t)
		_ = pc2.Close()
		if status, b, _ := rawPost(t, a.BaseURL()+"/whep/ghost", "application/sdp", "", []byte(offer2)); status != 201 {
			t.Fatalf("whep: %d %v", status, b)
		}
	}
	if a.SFU.Subscribers("ghost") != 0 {
		t.Fatalf("unconnected viewers admitted")
	}
	if !a.SFU.Live("ghost") {
		t.Fatalf("the publisher session was not registered")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		if !a.SFU.Live("ghost") && a.SFU.Subscribers("ghost") == 0 && runtime.NumGoroutine() <= before+5 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("sessions not cleaned up: live=%v goroutines %d (before %d)", a.SFU.Live("ghost"), runtime.NumGoroutine(), before)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestDeleteStreamEndsSessions: deleting a stream closes its viewers and
// publisher; it can no longer be watched.
func TestDeleteStreamEndsSessions(t *testing.T) {
	a := startApp(t, nil)
	key := createStream(t, a, "gone")
	api0, err := rtctest.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	viewer, err := rtctest.Subscribe(ctx, api0, a.BaseURL()+"/whep/gone")
	if err != nil {
		t.Fatal(err)
	}
	defer viewer.PC.Close()
	pub, err := rtctest.Publish(ctx, api0, a.BaseURL()+"/whip/gone", key, webrtc.MimeTypeVP8)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.PC.Close()
	if code := api(t, "DELETE", a.BaseURL()+"/api/streams/gone", testStaff, nil, nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	deadline := time.Now().Add(5 * time.Second)
	for viewer.PC.ConnectionState() == webrtc.PeerConnectionStateConnected || pub.PC.ConnectionState() == webrtc.PeerConnectionStateConnected {
		if time.Now().After(deadline) {
			t.Fatalf("sessions of a deleted stream still up: viewer %s, publisher %s", viewer.PC.ConnectionState(), pub.PC.ConnectionState())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if a.SFU.Live("gone") || a.SFU.Subscribers("gone") != 0 {
		t.Fatal("sfu still holds the deleted stream")
	}
	offer, _ := pionOffer(t)
	if status, _, _ := rawPost(t, a.BaseURL()+"/whep/gone", "application/sdp", "", []byte(offer)); status != 404 {
		t.Fatalf("watching a deleted stream: %d", status)
	}
}
