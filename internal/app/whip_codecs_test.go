package app

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/streamd/streamd/internal/rtctest"
)

// TestWHIPAcceptsPublisherCodecs: offers with only one video codec — what
// OBS 30+ and the browsers send — are answered with that codec.
func TestWHIPAcceptsPublisherCodecs(t *testing.T) {
	a := startApp(t, nil)
	key := createStream(t, a, "codecs")
	cases := []struct{ mime, fmtp string }{
		{webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, // OBS (libdatachannel)
		{webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f"},
		{webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f"},
		{webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f"},
		{webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f"}, // Safari
		{webrtc.MimeTypeVP8, ""},
		{webrtc.MimeTypeVP9, "profile-id=0"},
		{webrtc.MimeTypeAV1, ""},
	}
	for _, c := range cases {
		m := &webrtc.MediaEngine{}
		_ = m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: c.mime, ClockRate: 90000, SDPFmtpLine: c.fmtp}, PayloadType: 100}, webrtc.RTPCodecTypeVideo)
		_ = m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, PayloadType: 111}, webrtc.RTPCodecTypeAudio)
		pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(rtctest.Loopback())).NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			t.Fatal(err)
		}
		video, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: c.mime, ClockRate: 90000, SDPFmtpLine: c.fmtp}, "v", "s")
		audio, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "a", "s")
		_, _ = pc.AddTrack(video)
		_, _ = pc.AddTrack(audio)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		session, err := rtctest.Exchange(ctx, pc, a.BaseURL()+"/whip/codecs", key)
		cancel()
		if err != nil {
			t.Fatalf("%s %s: %v", c.mime, c.fmtp, err)
		}
		ans := pc.RemoteDescription().SDP
		name := strings.TrimPrefix(c.mime, "video/")
		if !strings.Contains(ans, " "+name+"/90000") || strings.Contains(ans, "m=video 0 ") {
			t.Fatalf("%s %s: the answer refused the video:\n%s", c.mime, c.fmtp, ans)
		}
		_ = rtctest.Delete(session, key)
		_ = pc.Close()
	}
}
