package sfu

import (
	"testing"
	"time"

	"github.com/pion/rtp"
)

// layered is a forwarder with three layers whose RTP clocks start at
// different offsets (as a simulcast encoder's do) and whose sizes grow
// with the slot: slot 0 sends 1 packet per frame, 1 sends 3, 2 sends 9.
type layered struct {
	f     *forwarder
	gens  [3]uint64
	seq   [3]uint16
	tsOff [3]uint32
	now   time.Time
	frame int
	keyAt [3]bool // next frame of the layer is a keyframe
}

func newLayered(t *testing.T) *layered {
	f, _ := testForwarder(t)
	l := &layered{f: f, now: time.Now(), tsOff: [3]uint32{1000, 7777777, 123456}, seq: [3]uint16{100, 30000, 65000}}
	for i := range 3 {
		l.gens[i] = f.attachLayer(i, h264)
		l.keyAt[i] = true
	}
	return l
}

// frames sends n frames on every layer (33 ms apart); layer i's frame k
// is a keyframe when keyAt[i] is set (then cleared) or every 60 frames.
func (l *layered) frames(n int) {
	for range n {
		l.frame++
		l.now = l.now.Add(33 * time.Millisecond)
		for i := range 3 {
			key := l.keyAt[i] || l.frame%60 == 0
			l.keyAt[i] = false
			parts := []int{1, 3, 9}[i]
			for p := range parts {
				payload := slice
				if key && p == 0 {
					payload = idr
				}
				l.seq[i]++
				ts := uint32(l.frame)*3000 + l.tsOff[i]
				// The small layers arrive a little earlier (faster encodes).
				at := l.now.Add(time.Duration(i) * 2 * time.Millisecond)
				l.f.writeLayer(i, l.gens[i], pkt(l.seq[i], ts, payload, p == parts-1), at)
			}
		}
	}
}

type seqTS struct {
	seq uint16
	ts  uint32
}

// tracking is a sinkWriter that keeps every packet.
type tracking struct {
	sinkWriter
	got []seqTS
}

func (w *tracking) WriteRTP(h *rtp.Header, p []byte) (int, error) {
	w.got = append(w.got, seqTS{h.SequenceNumber, h.Timestamp})
	return len(p), nil
}

func TestLayersPinnedSwitchAndOneTimeline(t *testing.T) {
	l := newLayered(t)
	low, high := &tracking{}, &tracking{}
	dl, dh := viewer(l.f, low), viewer(l.f, high)
	dl.want.Store(0)
	dh.want.Store(2)
	l.frames(90) // 3 s: windows rank the layers, keyframes every 2 s
	if len(l.f.snap.Load().slots) != 3 || l.f.ref != 2 {
		t.Fatalf("ranked %v, reference %d; want 3 layers and the largest (2) as reference", l.f.snap.Load().slots, l.f.ref)
	}
	if dl.layer != 0 || dh.layer != 2 {
		t.Fatalf("low viewer on %d, high viewer on %d", dl.layer, dh.layer)
	}
	// Same frame, same timestamp: every low frame's ts is a high frame's ts.
	highTS := map[uint32]bool{}
	for _, p := range high.got {
		highTS[p.ts] = true
	}
	off := 0
	for _, p := range low.got[len(low.got)/2:] {
		if !highTS[p.ts] {
			off++
		}
	}
	if off > 0 {
		t.Fatalf("%d low-layer frames have timestamps not on the high layer's timeline", off)
	}
	// Switch the low viewer to high: at the next high keyframe (asked for).
	before, switches := len(low.got), l.f.m.layerSwitches.get()
	dl.want.Store(2)
	l.f.retarget.Store(true)
	l.keyAt[2] = true
	l.frames(10)
	if dl.layer != 2 {
		t.Fatalf("after the switch the viewer is on %d", dl.layer)
	}
	if n := l.f.m.layerSwitches.get() - switches; n != 1 {
		t.Fatalf("%d switches counted", n)
	}
	for i := before; i < len(low.got); i++ {
		if d := low.got[i].seq - low.got[i-1].seq; d != 1 {
			t.Fatalf("seq jumped by %d across the switch", d)
		}
		if d := int32(low.got[i].ts - low.got[i-1].ts); d < 0 || d > 3000 {
			t.Fatalf("ts stepped by %d across the switch", d)
		}
	}
	// A NACK from before the switch is not answered (the old layer's
	// packets are no use now); one after it gets the packet that number
	// carried.
	n := len(low.got)
	l.f.retransmit(dl, []uint16{low.got[before-1].seq, low.got[n-1].seq})
	if len(low.got) != n+1 || low.got[n] != low.got[n-1] {
		t.Fatalf("retransmitted %v, want only %v", low.got[n:], low.got[n-1])
	}
	// Padding (a bandwidth probe) takes numbers; media after it continues
	// right after, and a NACK for a padding number resends nothing.
	n = len(low.got)
	if sent := l.f.pad(dl, 3); sent != 3 {
		t.Fatalf("padded %d, want 3", sent)
	}
	l.frames(1)
	if len(low.got) < n+4 || low.got[n+3].seq != low.got[n+2].seq+1 || low.got[n].seq != low.got[n-1].seq+1 {
		t.Fatalf("after padding: %v", low.got[n-1:])
	}
	m := len(low.got)
	l.f.retransmit(dl, []uint16{low.got[n+1].seq, low.got[n-1].seq})
	if len(low.got) != m+1 || low.got[m] != low.got[n-1] {
		t.Fatalf("NACK of padding and media resent %v, want only %v", low.got[m:], low.got[n-1])
	}
}

func TestLayerGoneMovesViewersDown(t *testing.T) {
	l := newLayered(t)
	w := &tracking{}
	d := viewer(l.f, w)
	d.want.Store(wantAuto) // no estimate: the reference (largest)
	l.frames(60)
	if d.layer != 2 {
		t.Fatalf("auto viewer without an estimate on %d, want the largest", d.layer)
	}
	// Layer 2 stops; after a window the viewer moves to layer 1 at its keyframe.
	for range 80 {
		l.frame++
		l.now = l.now.Add(33 * time.Millisecond)
		for i := range 2 {
			l.seq[i]++
			payload := slice
			if l.frame%30 == 0 {
				payload = idr
			}
			l.f.writeLayer(i, l.gens[i], pkt(l.seq[i], uint32(l.frame)*3000+l.tsOff[i], payload, true), l.now)
		}
	}
	if d.layer != 1 || l.f.ref != 1 {
		t.Fatalf("viewer on %d, reference %d after the large layer stopped; want 1", d.layer, l.f.ref)
	}
}

func TestPictureSize(t *testing.T) {
	// An SPS of 320x180 (x264 baseline), alone and in a STAP-A.
	sps := []byte{0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0x9f, 0x9f, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0xa4, 0x80}
	if px := pictureSize(codecH264, sps); px != 320*180 {
		t.Fatalf("SPS: %d pixels, want %d", px, 320*180)
	}
	stap := append([]byte{0x18, 0, byte(len(sps))}, sps...)
	stap = append(stap, 0, 4, 0x68, 0xce, 0x3c, 0x80)
	if px := pictureSize(codecH264, stap); px != 320*180 {
		t.Fatalf("STAP-A: %d pixels", px)
	}
	// A VP8 keyframe (descriptor with a 15-bit picture id) of 640x360.
	vp8 := []byte{0x90, 0x80, 0x81, 0x23, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01}
	if px := pictureSize(codecVP8, vp8); px != 640*360 {
		t.Fatalf("VP8: %d pixels, want %d", px, 640*360)
	}
	if pictureSize(codecH264, slice) != 0 || pictureSize(codecVP9, []byte{0x08}) != 0 {
		t.Fatal("a size from a packet that has none")
	}
}
