package rtc

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/streamd/streamd/internal/rtctest"
)

func newTestNet(t *testing.T) *WebRTC {
	t.Helper()
	w, err := New(NetConfig{UDPAddr: "127.0.0.1:0", LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

// clientOffer makes an offer for sending video of mime: with pion's usual
// codecs, or (only) with a codec streamd does not take.
func clientOffer(t *testing.T, mime string) (*webrtc.PeerConnection, string) {
	t.Helper()
	api, err := rtctest.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	if mime == "video/MP4V-ES" {
		m := &webrtc.MediaEngine{}
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mime, ClockRate: 90000}, PayloadType: 100}, webrtc.RTPCodecTypeVideo); err != nil {
			t.Fatal(err)
		}
		api = webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(rtctest.Loopback()))
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	tr, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: mime, ClockRate: 90000}, "v", "s")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTrack(tr); err != nil {
		t.Fatal(err)
	}
	o, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	done := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(o); err != nil {
		t.Fatal(err)
	}
	<-done
	return pc, pc.LocalDescription().SDP
}

// A good offer is answered and connects; Close waits for pion's goroutines
// and the state handlers, so none are left behind.
func TestPeerAnswerConnectClose(t *testing.T) {
	w := newTestNet(t)
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	client, offer := clientOffer(t, webrtc.MimeTypeVP8)
	p, err := NewPeer(w.PublisherAPI())
	if err != nil {
		t.Fatal(err)
	}
	answer, err := p.Answer(ctx, offer, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(answer, "a=candidate") {
		t.Fatal("the answer carries no candidates")
	}
	if err := client.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitConnected(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Ended():
	default:
		t.Fatal("Ended not closed by Close")
	}
	_ = client.Close()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left (before %d)", runtime.NumGoroutine(), before)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Every unusable offer is the one ErrBadOffer, with a reason.
func TestPeerBadOffers(t *testing.T) {
	w := newTestNet(t)
	_, noCommon := clientOffer(t, "video/MP4V-ES")
	noMedia := "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
	cases := map[string]string{
		"not sdp":          "hello",
		"too large":        "v=0\r\n" + strings.Repeat("a=x\r\n", MaxSDP/5),
		"no media":         noMedia,
		"no common codec":  noCommon,
		"garbage after v0": "v=0\r\nm=video nonsense\r\n",
	}
	for name, offer := range cases {
		t.Run(name, func(t *testing.T) {
			p, err := NewPeer(w.PublisherAPI())
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := p.Answer(ctx, offer, nil); !errors.Is(err, ErrBadOffer) {
				t.Fatalf("got %v, want ErrBadOffer", err)
			}
		})
	}
}

// A peer that never connects reports it when the timeout passes.
func TestPeerWaitConnectedTimesOut(t *testing.T) {
	w := newTestNet(t)
	p, err := NewPeer(w.SubscriberAPI())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.WaitConnected(context.Background(), 100*time.Millisecond); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("got %v", err)
	}
}
