package app

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/streamd/streamd/internal/rtctest"
	"github.com/streamd/streamd/internal/testenv"
)

// recvOffer makes a real recvonly WHEP offer (one SDP serves every request:
// each POST gets its own server-side session).
func recvOffer(t *testing.T) string {
	t.Helper()
	api, err := rtctest.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	pc, err := rtctest.NewViewer(api, func(*webrtc.TrackRemote) {})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return offer.SDP
}

// viewerCred is how a request presents a credential.
type viewerCred struct {
	how   string // "", "bearer", "query", "cookie"
	value string
}

// errCode reads the "error" of a JSON error body.
func errCode(b []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(b, &e)
	return e.Error
}

func withCred(req *http.Request, stream string, c viewerCred) {
	switch c.how {
	case "bearer":
		req.Header.Set("Authorization", "Bearer "+c.value)
	case "query":
		q := req.URL.Query()
		q.Set("t", c.value)
		req.URL.RawQuery = q.Encode()
	case "cookie":
		req.AddCookie(&http.Cookie{Name: "streamd_view_" + stream, Value: c.value})
	}
}

// send does req with the credential and returns the response and its body.
func send(t *testing.T, req *http.Request, stream string, c viewerCred) (*http.Response, []byte) {
	t.Helper()
	withCred(req, stream, c)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, b
}

// TestPrivateStreamAccess: a private stream's WHEP, overlay socket and
// public info answer only to the publish key, the staff token or a viewer
// link (as a bearer token, ?t= or the cookie the watch page sets); no
// credential is a 401, an expired or forged link a 403. A public stream
// needs nothing.
func TestPrivateStreamAccess(t *testing.T) {
	a := startApp(t, nil)
	base := a.BaseURL()
	var vip struct {
		PublishKey string `json:"publish_key"`
		Private    bool   `json:"private"`
	}
	if code := api(t, "POST", base+"/api/streams", testStaff, map[string]any{"id": "vip", "title": "VIP preview", "private": true}, &vip); code != 201 || !vip.Private {
		t.Fatalf("create private stream: %d %+v", code, vip)
	}
	openKey := createStream(t, a, "open")

	// Viewer links are staff-only and bounded.
	if code := api(t, "POST", base+"/api/streams/vip/links", "", map[string]any{"ttl_s": 600}, nil); code != 401 {
		t.Fatalf("link without staff token: %d, want 401", code)
	}
	if code := api(t, "POST", base+"/api/streams/vip/links", testStaff, map[string]any{"ttl_s": 10}, nil); code != 422 {
		t.Fatalf("link with ttl_s 10: %d, want 422", code)
	}
	if code := api(t, "POST", base+"/api/streams/nope/links", testStaff, map[string]any{"ttl_s": 600}, nil); code != 404 {
		t.Fatalf("link of unknown stream: %d, want 404", code)
	}
	var link struct {
		URL       string    `json:"url"`
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if code := api(t, "POST", base+"/api/streams/vip/links", testStaff, map[string]any{"ttl_s": 600}, &link); code != 201 {
		t.Fatalf("make link: %d", code)
	}
	if link.URL != base+"/watch/vip?t="+link.Token || link.Token == "" {
		t.Fatalf("link url %q (token %q)", link.URL, link.Token)
	}
	if d := time.Until(link.ExpiresAt); d < 590*time.Second || d > 601*time.Second {
		t.Fatalf("link expires in %v, want 600 s", d)
	}
	var otherLink struct {
		Token string `json:"token"`
	}
	api(t, "POST", base+"/api/streams/open/links", testStaff, nil, &otherLink)
	expired := a.Streams.SignLink("vip", time.Now().Add(-time.Second))
	sig := link.Token[len(link.Token)-4:]
	forged := link.Token[:len(link.Token)-4] + strings.Map(func(r rune) rune {
		if r == 'A' {
			return 'B'
		}
		return 'A'
	}, sig)

	// The watch page opened with the link keeps it in an HttpOnly cookie
	// (and sets none for a forged one).
	res, err := http.Get(link.URL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	var cookie *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == "streamd_view_vip" {
			cookie = c
		}
	}
	if res.StatusCode != 200 || cookie == nil || cookie.Value != link.Token || !cookie.HttpOnly || cookie.Path != "/" || cookie.Expires.IsZero() {
		t.Fatalf("watch page with link: %d, cookie %+v", res.StatusCode, cookie)
	}
	if res, err = http.Get(base + "/watch/vip?t=" + forged); err == nil {
		res.Body.Close()
		if len(res.Cookies()) != 0 || res.StatusCode != 200 {
			t.Fatalf("watch page with forged link: %d, cookies %v", res.StatusCode, res.Cookies())
		}
	}

	offer := recvOffer(t)
	// Each route returns the status and error code of one request.
	routes := map[string]func(stream string, c viewerCred) (int, string){
		"POST /whep": func(stream string, c viewerCred) (int, string) {
			req, _ := http.NewRequest("POST", base+"/whep/"+stream, strings.NewReader(offer))
			req.Header.Set("Content-Type", "application/sdp")
			res, b := send(t, req, stream, c)
			if res.StatusCode == 201 {
				// The session routes are bound to the session: its
				// location ends it with no viewer credential.
				loc, _ := res.Request.URL.Parse(res.Header.Get("Location"))
				del, _ := http.NewRequest("DELETE", loc.String(), nil)
				dres, err := http.DefaultClient.Do(del)
				if err != nil || dres.StatusCode != 200 {
					t.Fatalf("DELETE %s: %v %v", loc, err, dres)
				}
				dres.Body.Close()
			}
			return res.StatusCode, errCode(b)
		},
		"GET /ws": func(stream string, c viewerCred) (int, string) {
			req, _ := http.NewRequest("GET", "ws"+strings.TrimPrefix(base, "http")+"/ws/"+stream, nil)
			withCred(req, stream, c)
			ws, res, err := websocket.DefaultDialer.Dial(req.URL.String(), req.Header)
			if err != nil {
				if res == nil {
					t.Fatalf("ws dial: %v", err)
				}
				b, _ := io.ReadAll(res.Body)
				return res.StatusCode, errCode(b)
			}
			defer ws.Close()
			_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
			var m struct {
				Type string `json:"type"`
			}
			if err := ws.ReadJSON(&m); err != nil || m.Type != "snapshot" {
				t.Fatalf("ws %s: first message %q, %v", stream, m.Type, err)
			}
			return http.StatusSwitchingProtocols, ""
		},
		"GET /api/streams/{id}/public": func(stream string, c viewerCred) (int, string) {
			req, _ := http.NewRequest("GET", base+"/api/streams/"+stream+"/public", nil)
			res, b := send(t, req, stream, c)
			if res.StatusCode == 200 && !strings.Contains(string(b), `"title"`) {
				t.Fatalf("public info without a title: %s", b)
			}
			return res.StatusCode, errCode(b)
		},
	}
	ok := map[string]int{"POST /whep": 201, "GET /ws": 101, "GET /api/streams/{id}/public": 200}
	cases := []struct {
		name   string
		stream string
		cred   viewerCred
		status int // 0: the route's success
		code   string
	}{
		{"private, no credential", "vip", viewerCred{}, 401, "private_stream"},
		{"private, publish key", "vip", viewerCred{"bearer", vip.PublishKey}, 0, ""},
		{"private, staff token", "vip", viewerCred{"bearer", testStaff}, 0, ""},
		{"private, link as bearer", "vip", viewerCred{"bearer", link.Token}, 0, ""},
		{"private, link as ?t=", "vip", viewerCred{"query", link.Token}, 0, ""},
		{"private, link cookie of the watch page", "vip", viewerCred{"cookie", cookie.Value}, 0, ""},
		{"private, expired link", "vip", viewerCred{"query", expired}, 403, "link_expired"},
		{"private, forged link", "vip", viewerCred{"bearer", forged}, 403, "invalid_credential"},
		{"private, forged link cookie", "vip", viewerCred{"cookie", forged}, 403, "invalid_credential"},
		{"private, another stream's link", "vip", viewerCred{"query", otherLink.Token}, 403, "invalid_credential"},
		{"private, another stream's key", "vip", viewerCred{"bearer", openKey}, 403, "invalid_credential"},
		{"public, no credential", "open", viewerCred{}, 0, ""},
		{"public, junk credential", "open", viewerCred{"query", "junk"}, 0, ""},
		{"unknown stream", "nope", viewerCred{"bearer", testStaff}, 404, "unknown_stream"},
	}
	// LL-HLS is behind the same guard.
	if code := api(t, "GET", base+"/hls/vip/index.m3u8", "", nil, nil); code != 401 {
		t.Errorf("HLS of the private stream without credential: %d, want 401", code)
	}
	if code := api(t, "GET", base+"/hls/vip/index.m3u8?t="+expired, "", nil, nil); code != 403 {
		t.Errorf("HLS of the private stream with an expired link: %d, want 403", code)
	}
	if code := api(t, "GET", base+"/hls/vip/index.m3u8", vip.PublishKey, nil, nil); code == 401 || code == 403 {
		t.Errorf("HLS of the private stream with its key: %d", code)
	}
	for route, do := range routes {
		for _, c := range cases {
			want := c.status
			if want == 0 {
				want = ok[route]
			}
			status, code := do(c.stream, c.cred)
			if status != want || code != c.code {
				t.Errorf("%s, %s: %d %q, want %d %q", route, c.name, status, code, want, c.code)
			}
		}
	}
}

// TestPrivateStreamMediaWithLink: media of a private stream flows to a
// viewer holding a viewer link, while a viewer without one is refused.
func TestPrivateStreamMediaWithLink(t *testing.T) {
	ffmpeg := testenv.FFmpeg(t)
	aus, err := rtctest.EncodeH264(ffmpeg, t.TempDir(), 320, 240, 30, 2, 30, "300k")
	if err != nil {
		t.Fatal(err)
	}
	a := startApp(t, nil)
	var rec struct {
		PublishKey string `json:"publish_key"`
	}
	if code := api(t, "POST", a.BaseURL()+"/api/streams", testStaff, map[string]any{"id": "vip", "private": true}, &rec); code != 201 {
		t.Fatalf("create: %d", code)
	}
	var link struct {
		Token string `json:"token"`
	}
	api(t, "POST", a.BaseURL()+"/api/streams/vip/links", testStaff, nil, &link)
	rapi, err := rtctest.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := rtctest.Subscribe(ctx, rapi, a.BaseURL()+"/whep/vip"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("viewer without link: %v, want HTTP 401", err)
	}
	got := make(chan struct{}, 1)
	pc, err := rtctest.NewViewer(rapi, func(tr *webrtc.TrackRemote) {
		if tr.Kind() != webrtc.RTPCodecTypeVideo {
			return
		}
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			select {
			case got <- struct{}{}:
			default:
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	session, err := rtctest.Connect(ctx, pc, a.BaseURL()+"/whep/vip?t="+link.Token, "")
	if err != nil {
		t.Fatalf("viewer with link: %v", err)
	}
	defer func() { _ = rtctest.Delete(session, ""); _ = pc.Close() }()
	pub, err := rtctest.Publish(ctx, rapi, a.BaseURL()+"/whip/vip", rec.PublishKey, webrtc.MimeTypeH264)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	defer pub.Close()
	go sendClip(ctx, pub, aus, 30)
	select {
	case <-got:
	case <-ctx.Done():
		t.Fatal("no video reached the viewer holding the link")
	}
}
