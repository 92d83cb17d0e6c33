package rtctest

import (
	"bytes"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
)

// TestFrameAssembler: frames come out whole and in order whatever the
// arrival order within the wait; a packet that never comes costs its
// frame and every frame after it up to the next keyframe.
func TestFrameAssembler(t *testing.T) {
	idr := bytes.Join([][]byte{{}, {0x67, 0x42, 0xc0, 0x1f}, {0x68, 0xce, 0x3c, 0x80}, append([]byte{0x65}, make([]byte, 3000)...)}, []byte{0, 0, 0, 1})
	p := append([]byte{0, 0, 0, 1, 0x41}, make([]byte, 2000)...)
	pz := rtp.NewPacketizer(1200, 96, 1, &codecs.H264Payloader{}, rtp.NewFixedSequencer(65530), 90000)
	// Frames: IDR P P IDR P, sequence numbers wrapping through 0.
	var frames [][]*rtp.Packet
	for _, au := range [][]byte{idr, p, p, idr, p} {
		frames = append(frames, pz.Packetize(au, 3000))
	}
	t0 := time.Now()
	var shown [][]byte
	a := newFrameAssembler(nackWait, func(au []byte) { shown = append(shown, au) })
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

	// Frame 0 in order; frame 1 with its first two packets swapped.
	for _, pk := range frames[0] {
		a.push(pk, at(0))
	}
	f1 := frames[1]
	a.push(f1[1], at(10))
	a.push(f1[0], at(20))
	for _, pk := range f1[2:] {
		a.push(pk, at(20))
	}
	if len(shown) != 2 || !IsIDR(shown[0]) || IsIDR(shown[1]) || a.lost != 0 {
		t.Fatalf("in order and swapped: %d frames shown, lost %d", len(shown), a.lost)
	}
	// Frame 2 loses its first packet: nothing more until the keyframe.
	for _, pk := range frames[2][1:] {
		a.push(pk, at(40))
	}
	for _, pk := range frames[3] {
		a.push(pk, at(100))
	}
	if len(shown) != 2 {
		t.Fatalf("frames shown past a hole before the wait ran out: %d", len(shown))
	}
	a.flush(at(40).Add(nackWait))
	for _, pk := range frames[4] {
		a.push(pk, at(400))
	}
	a.push(frames[2][0], at(410)) // too late: given up on
	if len(shown) != 4 || !IsIDR(shown[2]) || a.lost != 1 || a.dropped != 1 {
		t.Fatalf("after a lost packet: %d frames shown (want 4), lost %d (want 1), dropped %d (want 1)", len(shown), a.lost, a.dropped)
	}
	if want := 4 + 2000 + 1; len(shown[3]) != want {
		t.Fatalf("last frame is %d bytes, want %d", len(shown[3]), want)
	}
}
