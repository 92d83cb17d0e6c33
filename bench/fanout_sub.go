// The fan-out scenario's WHEP viewers, which measure each frame's delay
// (from its SEI), their join time and packet gaps without decoding.

package main

import (
	"context"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

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
	counter uint64
	delayUs int32
}

// fanoutSub is a WHEP viewer that measures per frame without decoding.
type fanoutSub struct {
	pc       *webrtc.PeerConnection
	session  string
	postedNs int64

	mu      sync.Mutex
	frames  map[uint32]*frameAcc
	recs    []frameRec
	joinNs  int64 // POST → first complete keyframe; 0 until then
	lastSeq int32
	gaps    int // packets missing when seen (before any retransmission)
	packets int
	lastGC  int64
	failed  atomic.Bool // the peer connection failed after connecting
}

func newFanoutSub(ctx context.Context, api *webrtc.API, endpoint string) (*fanoutSub, error) {
	s := &fanoutSub{frames: map[uint32]*frameAcc{}, lastSeq: -1}
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
		case 5, 7:
			fa.key = true
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

// window returns the frames with counter in [c0, c1] and resets nothing.
func (s *fanoutSub) window(c0, c1 uint64) (recs []frameRec, gaps, packets int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.recs {
		if r.counter >= c0 && r.counter <= c1 {
			recs = append(recs, r)
		}
	}
	return recs, s.gaps, s.packets
}

// trim drops frame records before c0 (keeps memory flat across steps).
func (s *fanoutSub) trim(c0 uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.recs[:0]
	for _, r := range s.recs {
		if r.counter >= c0 {
			kept = append(kept, r)
		}
	}
	s.recs = kept
}

func (s *fanoutSub) gapCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gaps
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
