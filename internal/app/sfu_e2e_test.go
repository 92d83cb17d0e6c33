package app

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
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

// Viewers get RTCP sender reports (made by the sfu, not by pion's report
// interceptor) for audio and video, about once a second, whose NTP↔RTP
// mapping matches the packets they receive and whose counts match what
// was sent: what a browser needs for lip sync.
func TestViewerSenderReports(t *testing.T) {
	ffmpeg := testenv.FFmpeg(t)
	aus, err := rtctest.EncodeH264(ffmpeg, t.TempDir(), 320, 180, 30, 5, 30, "300k")
	if err != nil {
		t.Fatal(err)
	}
	a := startApp(t, nil)
	key := createStream(t, a, "sr")
	api, err := rtctest.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pub, err := rtctest.Publish(ctx, api, a.BaseURL()+"/whip/sr", key, webrtc.MimeTypeH264)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	defer pub.Close()
	go sendClip(ctx, pub, aus, 30)
	sub, err := rtctest.Subscribe(ctx, api, a.BaseURL()+"/whep/sr")
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer sub.Close()

	type report struct {
		rtcp.SenderReport
		at time.Time
	}
	var mu sync.Mutex
	var srs []report
	for _, r := range sub.PC.GetReceivers() {
		go func() {
			for {
				pkts, _, err := r.ReadRTCP()
				if err != nil {
					return
				}
				now := time.Now()
				for _, p := range pkts {
					if sr, ok := p.(*rtcp.SenderReport); ok {
						mu.Lock()
						srs = append(srs, report{*sr, now})
						mu.Unlock()
					}
				}
			}
		}()
	}
	time.Sleep(4 * time.Second)
	mu.Lock()
	got := append([]report(nil), srs...)
	mu.Unlock()

	video, audio := sub.Video(), sub.Audio()
	if len(video) == 0 || len(audio) == 0 {
		t.Fatalf("viewer got %d video and %d audio packets", len(video), len(audio))
	}
	for _, tr := range []struct {
		name string
		pkts []rtctest.Packet
		rate float64
	}{{"video", video, 90000}, {"audio", audio, 48000}} {
		ssrc := tr.pkts[0].SSRC
		n := 0
		for _, sr := range got {
			if sr.SSRC != ssrc {
				continue
			}
			n++
			// The newest packet received before the report, and how many.
			var last *rtctest.Packet
			count := 0
			for i := range tr.pkts {
				if tr.pkts[i].Arrival.After(sr.at) {
					break
				}
				last, count = &tr.pkts[i], count+1
			}
			if last == nil {
				continue // a report before the first packet arrived here
			}
			want := float64(last.Timestamp) + sr.at.Sub(last.Arrival).Seconds()*tr.rate
			if off := float64(int32(sr.RTPTime-uint32(int64(want)))) / tr.rate; off > 0.1 || off < -0.1 {
				t.Errorf("%s report at %s: RTP time %d is %.0f ms off the packets' clock", tr.name, sr.at.Format("15:04:05.000"), sr.RTPTime, off*1000)
			}
			secs, frac := sr.NTPTime>>32, sr.NTPTime&0xffffffff
			ntp := time.Unix(int64(secs)-2208988800, int64(frac*1e9>>32))
			if d := sr.at.Sub(ntp); d > 100*time.Millisecond || d < -100*time.Millisecond {
				t.Errorf("%s report: NTP time %s, received at %s", tr.name, ntp.Format("15:04:05.000"), sr.at.Format("15:04:05.000"))
			}
			if slack := 40; int(sr.PacketCount) < count-slack || int(sr.PacketCount) > count+slack || sr.OctetCount == 0 {
				t.Errorf("%s report: %d packets, %d octets sent; %d packets received by then", tr.name, sr.PacketCount, sr.OctetCount, count)
			}
		}
		if n < 2 {
			t.Errorf("%s: %d sender reports in 4 s, want one a second", tr.name, n)
		}
	}
}
