package app

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/streamd/streamd/internal/rtctest"
	"github.com/streamd/streamd/internal/testenv"
)

// lastSPSWidth is the width in the newest SPS among a viewer's packets (0: none).
func lastSPSWidth(t *testing.T, pkts []rtctest.Packet) int {
	t.Helper()
	var dep codecs.H264Packet
	width := 0
	for _, p := range rtctest.InOrder(pkts) {
		b, err := dep.Unmarshal(p.Payload)
		if err != nil {
			continue
		}
		for i, nal := range bytes.Split(b, []byte{0, 0, 1}) {
			if i == 0 || len(nal) == 0 || nal[0]&0x1f != 7 {
				continue
			}
			var sps h264.SPS
			if sps.Unmarshal(nal) == nil {
				width = sps.Width()
			}
		}
	}
	return width
}

// TestSimulcastPublisherCarriesLargestLayer: a WHIP publisher sends three
// simulcast layers (rids l, m, h: 160, 320 and 640 pixels wide, the large
// one starting first); the stream carries the largest, not the last to
// start, and a viewer gets it from a keyframe. When the publisher
// stops sending the large layer (an uplink that no longer holds it), the
// stream moves to the next one.
func TestSimulcastPublisherCarriesLargestLayer(t *testing.T) {
	ffmpeg := testenv.FFmpeg(t)
	type enc struct {
		rid  string
		w, h int
		rate string
	}
	encs := []enc{{"l", 160, 96, "80k"}, {"m", 320, 180, "300k"}, {"h", 640, 360, "900k"}}
	dir := t.TempDir()
	clips := make([][][]byte, len(encs))
	for i, e := range encs {
		aus, err := rtctest.EncodeH264(ffmpeg, dir, e.w, e.h, 30, 2, 30, e.rate)
		if err != nil {
			t.Fatal(err)
		}
		clips[i] = aus
	}
	a := startApp(t, nil)
	key := createStream(t, a, "sim")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	api, pc := pionPC(t)
	var err error
	tracks := make([]*webrtc.TrackLocalStaticRTP, len(encs))
	var sender *webrtc.RTPSender
	for i, e := range encs {
		tracks[i], err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, "video", "sim", webrtc.WithRTPStreamID(e.rid))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			tr, err := pc.AddTransceiverFromTrack(tracks[0], webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
			if err != nil {
				t.Fatal(err)
			}
			sender = tr.Sender()
		} else if err := sender.AddEncoding(tracks[i]); err != nil {
			t.Fatal(err)
		}
	}
	go func() { // PLIs are answered by the clip's next keyframe anyway
		for {
			if _, _, err := sender.ReadRTCP(); err != nil {
				return
			}
		}
	}()
	if _, err := rtctest.Connect(ctx, pc, a.BaseURL()+"/whip/sim", key); err != nil {
		t.Fatal(err)
	}
	viewer, err := rtctest.Subscribe(ctx, api, a.BaseURL()+"/whep/sim")
	if err != nil {
		t.Fatal(err)
	}
	defer viewer.PC.Close()

	// A simulcast sender marks each packet with its mid and rid (as
	// browsers and OBS do; pion leaves it to the application).
	var midID, ridID uint8
	for _, x := range sender.GetParameters().HeaderExtensions {
		switch x.URI {
		case sdp.SDESMidURI:
			midID = uint8(x.ID)
		case sdp.SDESRTPStreamIDURI:
			ridID = uint8(x.ID)
		}
	}
	if midID == 0 || ridID == 0 {
		t.Fatal("mid/rid header extensions not negotiated")
	}
	packetizers := make([]rtp.Packetizer, len(encs))
	for i := range encs {
		packetizers[i] = rtp.NewPacketizer(1200, 0, 0, &codecs.H264Payloader{}, rtp.NewRandomSequencer(), 90000)
	}
	// send plays the first layers of encs for d, the large one starting first.
	send := func(d time.Duration, layers int) {
		tick := time.NewTicker(time.Second / 30)
		defer tick.Stop()
		for i, end := 0, time.Now().Add(d); time.Now().Before(end); i++ {
			for j := 0; j < layers; j++ {
				if i < 5*(len(encs)-1-j) {
					continue // the smaller layers start later: the last to start is not the one to carry
				}
				for _, pkt := range packetizers[j].Packetize(clips[j][i%len(clips[j])], 90000/30) {
					_ = pkt.Header.SetExtension(midID, []byte("0"))
					_ = pkt.Header.SetExtension(ridID, []byte(encs[j].rid))
					_ = tracks[j].WriteRTP(pkt)
				}
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
		}
	}
	send(4*time.Second, 3)
	if w := lastSPSWidth(t, viewer.Video()); w != 640 {
		t.Fatalf("the viewer's newest SPS is %d pixels wide, want the largest layer's 640", w)
	}
	if n, key := accessUnits(t, viewer.Video()); n < 30 || !key {
		t.Fatalf("viewer: %d access units, first is a keyframe: %v", n, key)
	}
	// The large layer stops: within a few windows the stream carries m.
	before := len(viewer.Video())
	send(5*time.Second, 2)
	if w := lastSPSWidth(t, viewer.Video()[before:]); w != 320 {
		t.Fatalf("after the large layer stopped the newest SPS is %d pixels wide, want 320", w)
	}
}
