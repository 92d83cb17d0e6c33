package app

import (
	"context"
	"testing"
	"time"

	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/streamd/streamd/internal/rtctest"
	"github.com/streamd/streamd/internal/testenv"
)

// sendClip sends access units at fps on the publisher's video track, plus
// Opus silence every 20 ms, until done or all units are sent.
func sendClip(ctx context.Context, p *rtctest.Publisher, aus [][]byte, fps int) {
	tick := time.NewTicker(time.Second / time.Duration(fps))
	defer tick.Stop()
	audio := time.NewTicker(20 * time.Millisecond)
	defer audio.Stop()
	for i := 0; i < len(aus); {
		select {
		case <-ctx.Done():
			return
		case <-audio.C:
			_ = p.Audio.WriteSample(media.Sample{Data: rtctest.OpusSilence, Duration: 20 * time.Millisecond})
		case <-tick.C:
			_ = p.Video.WriteSample(media.Sample{Data: aus[i], Duration: time.Second / time.Duration(fps)})
			i++
		}
	}
}

// frames groups video packets into access units by timestamp (marker ends one).
func frames(pkts []rtctest.Packet) (n int, firstIsKey bool) {
	var dep codecs.H264Packet
	var au []byte
	first := true
	for _, p := range rtctest.InOrder(pkts) {
		b, err := dep.Unmarshal(p.Payload)
		if err == nil {
			au = append(au, b...)
		}
		if p.Marker {
			if first {
				firstIsKey = rtctest.IsIDR(au) && hasSPS(au)
				first = false
			}
			n++
			au = au[:0]
		}
	}
	return n, firstIsKey
}

func hasSPS(au []byte) bool {
	for i := 0; i+3 < len(au); i++ {
		if au[i] == 0 && au[i+1] == 0 && au[i+2] == 1 && au[i+3]&0x1f == 7 {
			return true
		}
	}
	return false
}

func TestFanoutLateJoinAndReconnect(t *testing.T) {
	ffmpeg := testenv.FFmpeg(t)
	aus, err := rtctest.EncodeH264(ffmpeg, t.TempDir(), 640, 360, 30, 3, 30, "800k")
	if err != nil {
		t.Fatal(err)
	}
	if !rtctest.IsIDR(aus[0]) {
		t.Fatal("clip does not start with an IDR")
	}
	a := startApp(t, nil)
	key := createStream(t, a, "show")
	api, err := rtctest.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// 20 viewers join before the stream is live: accepted, video starts at
	// the first keyframe.
	const viewers = 20
	subs := subscribeViewers(ctx, t, api, a.BaseURL()+"/whep/show", viewers)
	time.Sleep(300 * time.Millisecond) // let every viewer be admitted

	pub, err := rtctest.Publish(ctx, api, a.BaseURL()+"/whip/show", key, webrtc.MimeTypeH264)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	sendClip(ctx, pub, aus[:60], 30)

	// Every viewer receives every frame, starting with SPS/PPS+IDR.
	for i, s := range subs {
		err := s.WaitVideo(ctx, func(p []rtctest.Packet) bool { n, _ := frames(p); return n >= 60 })
		n, key := frames(s.Video())
		if err != nil || n != 60 || !key {
			t.Fatalf("viewer %d: %d frames of 60 (first keyframe %v): %v", i, n, key, err)
		}
		if len(s.Audio()) == 0 {
			t.Fatalf("viewer %d: no audio", i)
		}
	}

	// A late joiner mid-GOP gets a picture from the keyframe cache, and the
	// publisher is not asked for a keyframe.
	go sendClip(ctx, pub, aus[60:75], 30) // frames 60..74: IDR at 60, then P frames
	time.Sleep(300 * time.Millisecond)
	plisBefore := pub.PLIs()
	late, err := rtctest.Subscribe(ctx, api, a.BaseURL()+"/whep/show")
	if err != nil {
		t.Fatalf("late subscribe: %v", err)
	}
	defer late.Close()
	if err := late.WaitVideo(ctx, func(p []rtctest.Packet) bool { n, _ := frames(p); return n >= 3 }); err != nil {
		t.Fatalf("late joiner got no video: %v", err)
	}
	if _, key := frames(late.Video()); !key {
		t.Fatal("late joiner's first frame is not SPS/PPS+IDR")
	}
	time.Sleep(400 * time.Millisecond)
	if got := pub.PLIs(); got != plisBefore {
		t.Fatalf("publisher got %d new PLIs for a cached keyframe", got-plisBefore)
	}

	// The publisher reconnects: viewers keep their sessions, SSRC, and a
	// continuous sequence/timestamp line, and video resumes.
	before := subs[0].Video()
	lastSeq, lastTS, ssrc := before[len(before)-1].SequenceNumber, before[len(before)-1].Timestamp, before[0].SSRC
	pub.Close()
	time.Sleep(200 * time.Millisecond)
	pub2, err := rtctest.Publish(ctx, api, a.BaseURL()+"/whip/show", key, webrtc.MimeTypeH264)
	if err != nil {
		t.Fatalf("republish: %v", err)
	}
	defer pub2.Close()
	sendClip(ctx, pub2, aus[:30], 30)
	for i, s := range subs {
		if err := s.WaitVideo(ctx, func(p []rtctest.Packet) bool { return len(p) > len(before) && p[len(p)-1].Timestamp != lastTS }); err != nil {
			t.Fatalf("viewer %d: no video after reconnect: %v", i, err)
		}
		if s.PC.ConnectionState() != webrtc.PeerConnectionStateConnected {
			t.Fatalf("viewer %d lost its session", i)
		}
	}
	after := subs[0].Video()[len(before):]
	if after[0].SSRC != ssrc {
		t.Fatalf("SSRC changed across the reconnect: %x → %x", ssrc, after[0].SSRC)
	}
	if d := after[0].SequenceNumber - lastSeq; d == 0 || d > 100 {
		t.Fatalf("sequence jumped by %d across the reconnect", d)
	}
	if d := int32(after[0].Timestamp - lastTS); d <= 0 {
		t.Fatalf("timestamp went back by %d across the reconnect", -d)
	}
}
