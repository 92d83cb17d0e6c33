// The fan-out scenario's WHEP viewers, which measure each frame's delay
// (from its SEI), their join time and packet gaps without decoding.

package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/streamd/streamd/internal/rtctest"
)

type frameAcc struct {
	counter int64 // -1 until the SEI arrived
	sendNs  int64
	s0, s1  int32 // first (SEI) and last (marker) sequence numbers, -1 unknown
	count   int
	key     bool
	created int64
}

type frameRec struct {
	counter uint64 // the SEI's: the publisher's layer in the top byte, the frame number below
	delayUs int32
}

// layerOf and frameNo split a SEI frame counter: a simulcast publisher
// numbers each layer's frames apart and tags them with the layer (its index,
// smallest first); a single-layer publisher's frames are all layer 0.
func layerOf(counter uint64) int    { return int(counter >> 56) }
func frameNo(counter uint64) uint64 { return counter & (1<<56 - 1) }

// span is one layer's measuring window: the frame numbers from..to.
type span struct{ from, to uint64 }

// fanoutSub is a WHEP viewer that measures per frame without decoding.
type fanoutSub struct {
	pc       *webrtc.PeerConnection
	session  string
	postedNs int64
	want     int // the layer asked for (index into the publisher's layers; 0 for a single layer)

	mu      sync.Mutex
	frames  map[uint32]*frameAcc
	recs    []frameRec
	joinNs  int64 // POST → first complete keyframe; 0 until then
	lastSeq int32
	gaps    int // packets missing when seen (before any retransmission)
	packets int
	lastGC  int64
	gapsAt  int          // gaps at the window's start (mark)
	lastSPS []byte       // the last SPS parsed
	width   int          // its picture width (0: unparsable)
	widths  map[int]bool // picture widths of the SPSs seen since mark
	failed  atomic.Bool  // the peer connection failed after connecting
}

func newFanoutSub(ctx context.Context, api *webrtc.API, endpoint string, want int) (*fanoutSub, error) {
	s := &fanoutSub{frames: map[uint32]*frameAcc{}, lastSeq: -1, want: want, widths: map[int]bool{}}
	pc, err := rtctest.NewViewer(api, s.read)
	if err != nil {
		return nil, err
	}
	s.pc = pc
	s.postedNs = time.Now().UnixNano()
	if s.session, err = rtctest.Connect(ctx, pc, endpoint, ""); err != nil {
		return nil, err
	}
	// After Connect: WaitConnected replaces the state handler while it waits.
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateFailed {
			s.failed.Store(true)
		}
	})
	if pc.ConnectionState() == webrtc.PeerConnectionStateFailed {
		s.failed.Store(true)
	}
	return s, nil
}

// read drains a track into one reused buffer; only video is inspected.
func (s *fanoutSub) read(t *webrtc.TrackRemote) {
	buf := make([]byte, 1600)
	var h rtp.Header
	video := t.Kind() == webrtc.RTPCodecTypeVideo
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			return
		}
		if !video {
			continue
		}
		off, err := h.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		end := n
		if h.Padding && n > off {
			end -= int(buf[n-1])
		}
		if end < off {
			continue
		}
		s.onVideo(&h, buf[off:end], time.Now().UnixNano())
	}
}

func (s *fanoutSub) onVideo(h *rtp.Header, payload []byte, now int64) {
	if len(payload) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.packets++
	seq := int32(h.SequenceNumber)
	if s.lastSeq >= 0 {
		if d := int16(h.SequenceNumber - uint16(s.lastSeq)); d > 0 {
			s.gaps += int(d) - 1
			s.lastSeq = seq
		}
	} else {
		s.lastSeq = seq
	}
	fa := s.frames[h.Timestamp]
	if fa == nil {
		fa = &frameAcc{counter: -1, s0: -1, s1: -1, created: now}
		s.frames[h.Timestamp] = fa
	}
	fa.count++
	inspect := func(nal []byte) {
		switch nal[0] & 0x1f {
		case 5:
			fa.key = true
		case 7:
			fa.key = true
			s.sawSPS(nal)
		case 6:
			if c, t, ok := parseSEI(nal); ok {
				fa.counter, fa.sendNs, fa.s0 = int64(c), t, seq
			}
		}
	}
	switch t := payload[0] & 0x1f; {
	case t == 24: // STAP-A
		for p := payload[1:]; len(p) > 2; {
			sz := int(binary.BigEndian.Uint16(p))
			p = p[2:]
			if sz == 0 || sz > len(p) {
				break
			}
			inspect(p[:sz])
			p = p[sz:]
		}
	case t == 28: // FU-A
		if len(payload) > 1 && payload[1]&0x80 != 0 && payload[1]&0x1f == 5 {
			fa.key = true
		}
	case t >= 1 && t <= 23:
		inspect(payload)
	}
	if h.Marker {
		fa.s1 = seq
	}
	if fa.counter >= 0 && fa.s0 >= 0 && fa.s1 >= 0 && fa.count >= int(uint16(fa.s1-fa.s0))+1 {
		delete(s.frames, h.Timestamp)
		s.recs = append(s.recs, frameRec{counter: uint64(fa.counter), delayUs: int32((now - fa.sendNs) / 1000)})
		if s.joinNs == 0 && fa.key {
			s.joinNs = now - s.postedNs
		}
	}
	if now-s.lastGC > int64(time.Second) {
		s.lastGC = now
		for ts, f := range s.frames {
			if now-f.created > int64(3*time.Second) {
				delete(s.frames, ts)
			}
		}
	}
}

// sawSPS notes the picture width of an SPS (parsed when it changes).
func (s *fanoutSub) sawSPS(nal []byte) {
	if !bytes.Equal(nal, s.lastSPS) {
		s.lastSPS = append(s.lastSPS[:0], nal...)
		s.width = 0
		var sps h264.SPS
		if sps.Unmarshal(nal) == nil {
			s.width = sps.Width()
		}
	}
	s.widths[s.width] = true
}

// subWindow is what one viewer got of a measuring window.
type subWindow struct {
	delays        []float64   // ms, one per distinct frame
	got, expected int         // distinct frames; frames of the window of the layer it got most of
	layers        map[int]int // frames per publisher layer (from the SEI tag)
	widths        []int       // picture widths of the SPSs seen since mark
	gaps, packets int         // sequence gaps since mark; packets in all
	joinNs        int64       // join time (POST → first complete keyframe) before the window; 0: none
}

// onLayer: every frame of the window came from the layer asked for.
func (w subWindow) onLayer(want int) bool { return w.got > 0 && w.layers[want] == w.got }

// window gathers the frames of ws (one span per publisher layer). A viewer
// is expected to get every frame of one layer's window: the layer it got
// most frames of (the one it asked for when it got none).
func (s *fanoutSub) window(ws []span) subWindow {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := subWindow{layers: map[int]int{}, gaps: s.gaps - s.gapsAt, packets: s.packets}
	seen := map[uint64]bool{}
	for _, r := range s.recs {
		l, f := layerOf(r.counter), frameNo(r.counter)
		if l >= len(ws) || f < ws[l].from || f > ws[l].to || seen[r.counter] {
			continue
		}
		seen[r.counter] = true
		w.layers[l]++
		w.delays = append(w.delays, float64(r.delayUs)/1000)
	}
	top := min(s.want, len(ws)-1)
	for l, n := range w.layers {
		if n > w.layers[top] {
			top = l
		}
	}
	w.expected = int(ws[top].to - ws[top].from + 1)
	w.got = min(len(seen), w.expected)
	for px := range s.widths {
		w.widths = append(w.widths, px)
	}
	slices.Sort(w.widths)
	return w
}

// widthsText names the picture widths a viewer saw ("320", "320/1280";
// "none" without an SPS).
func (w subWindow) widthsText() string {
	if len(w.widths) == 0 {
		return "none"
	}
	parts := make([]string, len(w.widths))
	for i, px := range w.widths {
		parts[i] = strconv.Itoa(px)
	}
	return strings.Join(parts, "/")
}

// mark starts a window: drops frame records before it (keeps memory flat
// across steps) and restarts the gap count and the SPS widths seen.
func (s *fanoutSub) mark(ws []span) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.recs[:0]
	for _, r := range s.recs {
		if l := layerOf(r.counter); l < len(ws) && frameNo(r.counter) >= ws[l].from {
			kept = append(kept, r)
		}
	}
	s.recs = kept
	s.gapsAt = s.gaps
	clear(s.widths)
}

// joinTime is POST → first complete keyframe in ns, 0 until then.
func (s *fanoutSub) joinTime() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.joinNs
}

func (s *fanoutSub) close() {
	_ = rtctest.Delete(s.session, "")
	_ = s.pc.Close()
}
