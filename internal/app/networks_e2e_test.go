package app

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	pionturn "github.com/pion/turn/v5"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/streamd/streamd/internal/rtctest"
	"github.com/streamd/streamd/internal/testenv"
)

// loopClip sends the clip again and again (with Opus silence) until ctx ends.
func loopClip(ctx context.Context, p *rtctest.Publisher, aus [][]byte, fps int) {
	for ctx.Err() == nil {
		sendClip(ctx, p, aus, fps)
	}
}

// TestViewersOnBadNetworks: with UDP, with TCP only (ICE over TCP, passive
// candidates on --webrtc-tcp) and relay-only through the embedded TURN
// server (credentials from the WHEP Link headers), a viewer gets frames
// from the first keyframe on; each session is counted under its transport.
func TestViewersOnBadNetworks(t *testing.T) {
	ffmpeg := testenv.FFmpeg(t)
	aus, err := rtctest.EncodeH264(ffmpeg, t.TempDir(), 320, 180, 30, 2, 30, "300k")
	if err != nil {
		t.Fatal(err)
	}
	a := startApp(t, func(c *Config) { c.WebRTCTCP = "127.0.0.1:0"; c.TURN = "127.0.0.1:0" })
	key := createStream(t, a, "net")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pubAPI, err := rtctest.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := rtctest.Publish(ctx, pubAPI, a.BaseURL()+"/whip/net", key, webrtc.MimeTypeH264)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	sendCtx, stopSend := context.WithCancel(ctx)
	defer stopSend()
	go loopClip(sendCtx, pub, aus, 30)
	waitFor(ctx, t, "live", func() bool { _, live := a.SFU.Stream("net").Codec(webrtc.RTPCodecTypeVideo); return live })
	endpoint := a.BaseURL() + "/whep/net"

	// The publisher is counted too (UDP).
	waitFor(ctx, t, "publisher counted", func() bool {
		return scrape(t, a, `streamd_webrtc_sessions{role="publisher",transport="udp"}`) == 1
	})

	tcpOnly := rtctest.Loopback()
	tcpOnly.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
	// pion (unlike browsers) waits 2 s before it accepts a relayed pair;
	// without that wait the join time is the TURN path's own.
	relay := rtctest.Loopback()
	relay.SetRelayAcceptanceMinWait(0)

	cases := []struct {
		name, transport string
		se              webrtc.SettingEngine
		turn            string // "": no TURN; else the Link transport used, relay-only
	}{
		{"udp", "udp", rtctest.Loopback(), ""},
		{"tcp", "tcp", tcpOnly, ""},
		{"turn-udp", "relay", relay, "udp"},
		{"turn-tcp", "relay", relay, "tcp"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			api, err := rtctest.NewAPIWith(tc.se)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			var cfg webrtc.Configuration
			if tc.turn != "" {
				servers, err := rtctest.ICEServers(ctx, endpoint)
				if err != nil {
					t.Fatal(err)
				}
				if len(servers) != 2 || !strings.HasPrefix(servers[0].URLs[0], "turn:127.0.0.1:") {
					t.Fatalf("ICE servers from the Link headers: %+v", servers)
				}
				for _, s := range servers {
					if strings.HasSuffix(s.URLs[0], "?transport="+tc.turn) {
						cfg.ICEServers = append(cfg.ICEServers, s)
					}
				}
				cfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
			}
			sub, err := rtctest.SubscribeConfig(ctx, api, cfg, endpoint)
			if err != nil {
				t.Fatalf("viewer over %s: %v", tc.transport, err)
			}
			defer sub.Close()
			if err := sub.WaitVideo(ctx, func(p []rtctest.Packet) bool { n, _ := frames(p); return n >= 1 }); err != nil {
				t.Fatalf("no frame over %s: %v", tc.transport, err)
			}
			t.Logf("join over %s: first frame after %v", tc.name, time.Since(start).Round(time.Millisecond))
			if err := sub.WaitVideo(ctx, func(p []rtctest.Packet) bool { n, _ := frames(p); return n >= 30 }); err != nil {
				t.Fatalf("fewer than 30 frames over %s: %v", tc.transport, err)
			}
			if _, key := frames(sub.Video()); !key {
				t.Fatal("the first frame is not a keyframe")
			}
			// Check what the viewer itself uses, not just what the server says.
			pair, err := sub.PC.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
			if err != nil || pair == nil {
				t.Fatalf("selected pair: %v", err)
			}
			switch tc.transport {
			case "tcp":
				if pair.Local.Protocol != webrtc.ICEProtocolTCP {
					t.Fatalf("viewer's pair is %s", pair.Local.Protocol)
				}
			case "relay":
				made := `streamd_turn_allocations_total{transport="` + tc.turn + `"}`
				if n := scrape(t, a, made); n != 1 {
					t.Fatalf("%s = %v, want 1", made, n)
				}
				if pair.Local.Typ != webrtc.ICECandidateTypeRelay {
					t.Fatalf("viewer's local candidate is %s, want relay", pair.Local.Typ)
				}
			}
			name := `streamd_webrtc_sessions{role="viewer",transport="` + tc.transport + `"}`
			waitFor(ctx, t, name, func() bool { return scrape(t, a, name) == 1 })
			sub.Close()
			waitFor(ctx, t, name+" back to 0", func() bool { return scrape(t, a, name) == 0 })
		})
	}
	if n := scrape(t, a, `streamd_turn_allocations`); n > 1 {
		t.Errorf("turn allocations %v", n)
	}
}

// TestWHEPAnswerCarriesTURNLinks: the 201 answer of WHIP and WHEP carries
// the TURN servers as RFC 9725 Link headers; without --turn there are none.
func TestWHEPAnswerCarriesTURNLinks(t *testing.T) {
	for _, turnOn := range []bool{true, false} {
		a := startApp(t, func(c *Config) {
			if turnOn {
				c.TURN = "127.0.0.1:0"
			}
		})
		createStream(t, a, "links")
		api, err := rtctest.NewAPI()
		if err != nil {
			t.Fatal(err)
		}
		pc, err := rtctest.NewViewer(api, func(*webrtc.TrackRemote) {})
		if err != nil {
			t.Fatal(err)
		}
		offer, _ := pc.CreateOffer(nil)
		_ = pc.SetLocalDescription(offer)
		res, err := http.Post(a.BaseURL()+"/whep/links", "application/sdp", strings.NewReader(pc.LocalDescription().SDP))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		_ = pc.Close()
		servers := rtctest.ParseLinks(res.Header.Values("Link"))
		if res.StatusCode != 201 {
			t.Fatalf("status %d", res.StatusCode)
		}
		if !turnOn {
			if len(servers) != 0 {
				t.Fatalf("TURN links without --turn: %v", servers)
			}
			continue
		}
		if len(servers) != 2 || servers[0].Username == "" || servers[0].Credential == nil || servers[0].Credential == "" {
			t.Fatalf("links %q → %+v", res.Header.Values("Link"), servers)
		}
		// The username carries an expiry about ten minutes out.
		exp := servers[0].Username[:strings.Index(servers[0].Username, ":")]
		if got := time.Until(time.Unix(parseInt(t, exp), 0)); got < 9*time.Minute || got > 11*time.Minute {
			t.Fatalf("credentials valid for %v", got)
		}
		if !strings.Contains(res.Header.Get("Access-Control-Expose-Headers"), "Link") {
			t.Fatal("Link is not exposed to browser scripts")
		}
	}
}

func parseInt(t *testing.T, s string) int64 {
	t.Helper()
	var n int64
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("not a number: %q", s)
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// TestCodecMismatchViewer: a viewer whose offer cannot decode the stream's
// video (only VP8 for an H.264 stream, only H.264 for a VP8 one) is told
// so with 422 codec_unsupported before any session exists.
func TestCodecMismatchViewer(t *testing.T) {
	a := startApp(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cases := []struct{ stream, pubMime, viewerMime, name string }{
		{"h264show", webrtc.MimeTypeH264, webrtc.MimeTypeVP8, "H.264"},
		{"vp8show", webrtc.MimeTypeVP8, webrtc.MimeTypeH264, "VP8"},
	}
	for _, tc := range cases {
		t.Run(tc.stream, func(t *testing.T) {
			key := createStream(t, a, tc.stream)
			pubAPI, err := rtctest.NewAPI()
			if err != nil {
				t.Fatal(err)
			}
			pub, err := rtctest.Publish(ctx, pubAPI, a.BaseURL()+"/whip/"+tc.stream, key, tc.pubMime)
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()
			// Some samples make the track (and its codec) known to the sfu;
			// their content does not matter here.
			waitFor(ctx, t, "codec known", func() bool {
				_ = pub.Video.WriteSample(media.Sample{Data: []byte{0, 0, 0, 1, 0x65, 0x88, 0x84, 0x00}, Duration: time.Second / 30})
				c, live := a.SFU.Stream(tc.stream).Codec(webrtc.RTPCodecTypeVideo)
				return live && strings.EqualFold(c.MimeType, tc.pubMime)
			})

			before := scrape(t, a, "streamd_sfu_subscribers")
			api := viewerAPI(t, tc.viewerMime)
			pc, err := rtctest.NewViewer(api, func(*webrtc.TrackRemote) {})
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			_, err = rtctest.Exchange(ctx, pc, a.BaseURL()+"/whep/"+tc.stream, "")
			se, ok := err.(*rtctest.StatusError)
			if !ok || se.Code != http.StatusUnprocessableEntity {
				t.Fatalf("want 422, got %v", err)
			}
			var body struct{ Error, Message, Codec string }
			if err := json.Unmarshal([]byte(se.Body), &body); err != nil {
				t.Fatal(err)
			}
			if body.Error != "codec_unsupported" || body.Codec != tc.name || !strings.HasPrefix(body.Message, "This stream is "+tc.name+" and this browser can't decode it — ") {
				t.Fatalf("error body %+v", body)
			}
			// No session was made: none counted, none connected later.
			time.Sleep(300 * time.Millisecond)
			if n := a.SFU.Subscribers(tc.stream); n != 0 {
				t.Fatalf("%d subscribers after the refusal", n)
			}
			if got := scrape(t, a, "streamd_sfu_subscribers"); got != before {
				t.Fatalf("streamd_sfu_subscribers %v → %v", before, got)
			}
			if n := len(a.SFU.WatchedStreams()); n != 0 {
				t.Fatalf("sessions left: %v", a.SFU.WatchedStreams())
			}

			// A viewer that can decode it still gets a session.
			okAPI := viewerAPI(t, tc.pubMime)
			sub, err := rtctest.Subscribe(ctx, okAPI, a.BaseURL()+"/whep/"+tc.stream)
			if err != nil {
				t.Fatalf("viewer with %s: %v", tc.pubMime, err)
			}
			sub.Close()
		})
	}
}

// viewerAPI is a pion viewer that can decode only one video codec (and Opus).
func viewerAPI(t *testing.T, mime string) *webrtc.API {
	t.Helper()
	m := &webrtc.MediaEngine{}
	fmtp := ""
	if mime == webrtc.MimeTypeH264 {
		fmtp = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mime, ClockRate: 90000, SDPFmtpLine: fmtp}, PayloadType: 100}, webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, PayloadType: 111}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(rtctest.Loopback()))
}

// TestClusterTURNCredentials: the nodes of a cluster share the signing key
// through Redis, so TURN credentials one node hands out (in its WHEP Link
// headers) open a relay on another node's TURN server.
func TestClusterTURNCredentials(t *testing.T) {
	testenv.Redis(t, 10) // flushed
	nodes := make([]*App, 2)
	for i := range nodes {
		port := freePort(t)
		nodes[i] = startApp(t, func(c *Config) {
			c.HTTP = fmt.Sprintf("127.0.0.1:%d", port)
			c.NodeURL = "http://" + c.HTTP
			c.Redis = testenv.RedisURL(10)
			c.TURN = "127.0.0.1:0"
		})
	}
	createStream(t, nodes[0], "shared")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	servers, err := rtctest.ICEServers(ctx, nodes[0].BaseURL()+"/whep/shared")
	if err != nil || len(servers) == 0 {
		t.Fatalf("ICE servers of node 1: %v %v", servers, err)
	}
	for i, n := range nodes {
		conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		c, err := pionturn.NewClient(&pionturn.ClientConfig{TURNServerAddr: n.TURNAddr(), STUNServerAddr: n.TURNAddr(),
			Username: servers[0].Username, Password: servers[0].Credential.(string), Realm: "streamd", Conn: conn})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Listen(); err != nil {
			t.Fatal(err)
		}
		relay, err := c.Allocate()
		if err != nil {
			t.Fatalf("node %d refused node 1's credentials: %v", i+1, err)
		}
		relay.Close()
		c.Close()
		conn.Close()
	}
}

// TestTURNOverTLSWithCertificate: with --tls-cert/--tls-key the Link headers
// add turns: on --turn-tls, named by the host the client used (the name the
// certificate is for), and a TURN client allocates over TLS there.
func TestTURNOverTLSWithCertificate(t *testing.T) {
	// The same certificate serves HTTPS (it names 127.0.0.1 too) and TURN.
	certFile, keyFile, pool := selfSigned(t, "localhost")
	a := startApp(t, func(c *Config) {
		c.TURN, c.TURNTLS, c.TLSCert, c.TLSKey = "127.0.0.1:0", "127.0.0.1:0", certFile, keyFile
	})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 5 * time.Second}
	create, _ := http.NewRequest(http.MethodPost, a.BaseURL()+"/api/streams", strings.NewReader(`{"id":"tls","title":"TLS"}`))
	create.Header.Set("Authorization", "Bearer "+testStaff)
	create.Header.Set("Content-Type", "application/json")
	if res, err := client.Do(create); err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("create stream over HTTPS: %v %v", res, err)
	} else {
		res.Body.Close()
	}
	req, _ := http.NewRequest(http.MethodOptions, a.BaseURL()+"/whep/tls", nil)
	req.Host = "localhost:" + strings.Split(a.HTTPAddr(), ":")[1]
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	servers := rtctest.ParseLinks(res.Header.Values("Link"))
	if len(servers) != 3 || !strings.HasPrefix(servers[2].URLs[0], "turns:localhost:") || !strings.HasSuffix(servers[2].URLs[0], "?transport=tcp") {
		t.Fatalf("links %q", res.Header.Values("Link"))
	}
	port := strings.TrimSuffix(strings.Split(servers[2].URLs[0], ":")[2], "?transport=tcp")
	tc, err := tls.Dial("tcp", "127.0.0.1:"+port, &tls.Config{ServerName: "localhost", RootCAs: pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS to the TURN server: %v", err)
	}
	defer tc.Close()
	c, err := pionturn.NewClient(&pionturn.ClientConfig{TURNServerAddr: tc.RemoteAddr().String(), STUNServerAddr: tc.RemoteAddr().String(),
		Username: servers[2].Username, Password: servers[2].Credential.(string), Realm: "streamd", Conn: pionturn.NewSTUNConn(tc)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	relay, err := c.Allocate()
	if err != nil {
		t.Fatalf("allocate over TLS: %v", err)
	}
	relay.Close()
}

// TestPublisherOverTCP: a publisher whose network blocks UDP goes live over
// ICE TCP, and a viewer gets its frames from the first keyframe on.
func TestPublisherOverTCP(t *testing.T) {
	ffmpeg := testenv.FFmpeg(t)
	aus, err := rtctest.EncodeH264(ffmpeg, t.TempDir(), 320, 180, 30, 2, 30, "300k")
	if err != nil {
		t.Fatal(err)
	}
	a := startApp(t, func(c *Config) { c.WebRTCTCP = "127.0.0.1:0" })
	key := createStream(t, a, "tcppub")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	se := rtctest.Loopback()
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
	pubAPI, err := rtctest.NewAPIWith(se)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := rtctest.Publish(ctx, pubAPI, a.BaseURL()+"/whip/tcppub", key, webrtc.MimeTypeH264)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	sendCtx, stopSend := context.WithCancel(ctx)
	defer stopSend()
	go loopClip(sendCtx, pub, aus, 30)
	waitFor(ctx, t, "publisher counted over tcp", func() bool {
		return scrape(t, a, `streamd_webrtc_sessions{role="publisher",transport="tcp"}`) == 1
	})
	api, err := rtctest.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	sub, err := rtctest.Subscribe(ctx, api, a.BaseURL()+"/whep/tcppub")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := sub.WaitVideo(ctx, func(p []rtctest.Packet) bool { n, _ := frames(p); return n >= 30 }); err != nil {
		t.Fatalf("fewer than 30 frames from a TCP publisher: %v", err)
	}
	if _, key := frames(sub.Video()); !key {
		t.Fatal("the first frame is not a keyframe")
	}
}
