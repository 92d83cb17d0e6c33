package sfu

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

type sinkFunc func(kind webrtc.RTPCodecType, codec webrtc.RTPCodecCapability, pkt *rtp.Packet)

func (f sinkFunc) WriteRTP(kind webrtc.RTPCodecType, codec webrtc.RTPCodecCapability, pkt *rtp.Packet) {
	f(kind, codec, pkt)
}

type nopSource struct{}

func (nopSource) RequestKeyframe() {}
func (nopSource) Close() error     { return nil }

type got struct {
	kind    webrtc.RTPCodecType
	mime    string
	seq     uint16
	ts      uint32
	payload byte
}

// A sink joins like a viewer — from the keyframe cache, then live — on the
// same timeline viewers get, and gets nothing once removed.
func TestSinkOnSharedTimeline(t *testing.T) {
	s := &SFU{}
	if err := s.Initialize(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st := s.Stream("shop")
	pub := st.Publish(nopSource{})
	video := pub.Track(webrtc.RTPCodecTypeVideo, h264)
	audio := pub.Track(webrtc.RTPCodecTypeAudio, webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2})
	w := &sinkWriter{}
	viewer(st.video, w)
	now := time.Now()
	video.WriteRTP(pkt(10, 1000, slice, true), now) // before a keyframe: nobody gets it
	video.WriteRTP(pkt(11, 4000, idr, true), now)
	video.WriteRTP(pkt(12, 7000, slice, true), now)

	var mu sync.Mutex
	var rec []got
	remove := st.AddSink(sinkFunc(func(kind webrtc.RTPCodecType, c webrtc.RTPCodecCapability, p *rtp.Packet) {
		mu.Lock()
		rec = append(rec, got{kind, c.MimeType, p.SequenceNumber, p.Timestamp, p.Payload[0]})
		mu.Unlock()
	}))
	video.WriteRTP(pkt(13, 10000, slice, true), now)
	audio.WriteRTP(pkt(500, 960, []byte{0xfc}, true), now)
	want := []got{
		{webrtc.RTPCodecTypeVideo, webrtc.MimeTypeH264, 11, 4000, idr[0]}, // the cached GOP first
		{webrtc.RTPCodecTypeVideo, webrtc.MimeTypeH264, 12, 7000, slice[0]},
		{webrtc.RTPCodecTypeVideo, webrtc.MimeTypeH264, 13, 10000, slice[0]},
		{webrtc.RTPCodecTypeAudio, webrtc.MimeTypeOpus, 500, 960, 0xfc},
	}
	if !slices.Equal(rec, want) {
		t.Fatalf("sink got %+v\nwant %+v", rec, want)
	}
	if w.lastSeq != 13 || w.lastTS != 10000 {
		t.Fatalf("the viewer is on another timeline: seq %d ts %d", w.lastSeq, w.lastTS)
	}
	if s.Subscribers("shop") != 1 {
		t.Fatalf("a sink counted as a viewer: %d", s.Subscribers("shop"))
	}
	remove()
	video.WriteRTP(pkt(14, 13000, slice, true), now)
	if len(rec) != len(want) {
		t.Fatal("a removed sink still gets packets")
	}
}

// Spread over workers, every viewer still gets every packet, in order.
func TestParallelFanoutKeepsEachViewersOrder(t *testing.T) {
	f, _ := testForwarderWorkers(t, 3)
	gen := f.attach(h264)
	var recs []*orderWriter
	for range 23 {
		w := &orderWriter{}
		recs = append(recs, w)
		viewer(f, w)
	}
	now := time.Now()
	f.write(gen, pkt(0, 0, idr, true), now)
	for i := 1; i < 500; i++ {
		f.write(gen, pkt(uint16(i), uint32(i/8)*3000, slice, i%8 == 7), now)
	}
	for v, w := range recs {
		if len(w.seqs) != 500 {
			t.Fatalf("viewer %d got %d packets, want 500", v, len(w.seqs))
		}
		for i, s := range w.seqs {
			if s != uint16(i) {
				t.Fatalf("viewer %d: packet %d has seq %d", v, i, s)
			}
		}
	}
}

type orderWriter struct{ seqs []uint16 }

func (w *orderWriter) WriteRTP(h *rtp.Header, p []byte) (int, error) {
	w.seqs = append(w.seqs, h.SequenceNumber)
	return len(p), nil
}
func (w *orderWriter) Write(b []byte) (int, error) { return len(b), nil }

// A viewer that starts while the publisher is between packets gets the
// cached GOP at once, without waiting for the next packet.
func TestViewerStartsFromCacheAtOnce(t *testing.T) {
	s := &SFU{}
	if err := s.Initialize(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st := s.Stream("shop")
	video := st.Publish(nopSource{}).Track(webrtc.RTPCodecTypeVideo, h264)
	now := time.Now()
	video.WriteRTP(pkt(1, 1000, idr, true), now)
	video.WriteRTP(pkt(2, 4000, slice, true), now)
	v, err := st.NewViewer(true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := &orderWriter{}
	d := v.video
	d.params = []webrtc.RTPCodecParameters{{RTPCodecCapability: h264, PayloadType: 102}}
	d.writer = w
	v.Start()
	if !slices.Equal(w.seqs, []uint16{1, 2}) {
		t.Fatalf("a starting viewer got %v, want the cached GOP [1 2] at once", w.seqs)
	}
	v.Close()
	if s.Subscribers("shop") != 0 {
		t.Fatal("a closed viewer is still counted")
	}
}
