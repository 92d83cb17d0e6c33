package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

const (
	videoRate   = 90000
	audioRate   = 48000
	videoTrack  = 1
	audioTrack  = 2
	maxFrameGap = 10 * videoRate // a longer step is a broken timeline, not a pause
)

// Unwrap extends 32-bit RTP timestamps to 64 bits (steps are taken as
// signed 32-bit differences).
type Unwrap struct {
	have bool
	last uint32
	ext  int64
}

// Next returns ts extended.
func (u *Unwrap) Next(ts uint32) int64 {
	if !u.have {
		u.have, u.last, u.ext = true, ts, int64(ts)
		return u.ext
	}
	u.ext += int64(int32(ts - u.last))
	u.last = ts
	return u.ext
}

type vsample struct {
	t   int64 // media time, 90 kHz, from the show's first frame
	dur int64
	key bool
	au  [][]byte
}

type asample struct {
	t   int64 // media time, 48 kHz
	dur int64
	p   []byte
}

// muxer turns one show's packets into fMP4 segments on the show's media
// timeline: t=0 is its first keyframe, and a video RTP timestamp ts (on the
// sfu's shared outgoing timeline, continuous across reconnects) is at
// (ts − first)/90000 s — which is how a card's media.rtp_ts finds its frame.
// Audio is placed by arrival time against the first video frame.
type muxer struct {
	s      *show
	segLog *os.File
	evLog  *os.File

	dec        *rtph264.Decoder
	vu, au     Unwrap
	vStarted   bool
	vFirstExt  int64
	vFirstArr  int64
	vLastExt   int64
	vLastArr   int64
	sps, pps   []byte
	initSPS    []byte
	initName   string
	initN      int
	spsChanged bool
	cur        []vsample
	pend       *vsample
	segN       int
	segStart   int64

	audioSeen bool
	audioInit bool
	aZeroSet  bool
	aZero     int64
	aDone     []asample
	aPend     *asample

	lastKeyReq time.Time
	segments   int
	segEnd     int64
}

func newMuxer(s *show) (*muxer, error) {
	mx := &muxer{s: s, dec: &rtph264.Decoder{PacketizationMode: 1}}
	if err := mx.dec.Init(); err != nil {
		return nil, fmt.Errorf("h264 decoder: %w", err)
	}
	var err error
	if mx.segLog, err = os.OpenFile(s.path("segments.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err != nil {
		return nil, fmt.Errorf("segment log: %w", err)
	}
	if mx.evLog, err = os.OpenFile(s.path("events.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err != nil {
		_ = mx.segLog.Close()
		return nil, fmt.Errorf("event log: %w", err)
	}
	return mx, nil
}

func (mx *muxer) close() {
	_ = mx.segLog.Close()
	_ = mx.evLog.Close()
}

func (mx *muxer) packet(p packet) {
	if p.video {
		if !strings.EqualFold(p.mime, webrtc.MimeTypeH264) {
			mx.s.warn(unsupportedWarning(p.mime))
			return
		}
		mx.video(p)
		return
	}
	if !strings.EqualFold(p.mime, webrtc.MimeTypeOpus) {
		mx.s.warn(unsupportedWarning(p.mime))
		return
	}
	mx.audio(p)
}

func (mx *muxer) video(p packet) {
	ext := mx.vu.Next(p.ts)
	au, err := mx.dec.Decode(&rtp.Packet{Header: rtp.Header{Timestamp: p.ts, SequenceNumber: p.seq, Marker: p.marker}, Payload: p.payload})
	if err != nil {
		if !errors.Is(err, rtph264.ErrMorePacketsNeeded) && !errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious) {
			mx.s.r.log.Debug("recording: h264 packet dropped", "err", err)
		}
		return
	}
	key := h264.IsRandomAccess(au)
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			if !bytes.Equal(n, mx.sps) {
				mx.sps = append([]byte(nil), n...)
				mx.spsChanged = mx.initSPS != nil
			}
		case h264.NALUTypePPS:
			mx.pps = append([]byte(nil), n...)
		}
	}
	if !mx.vStarted {
		if !key || mx.sps == nil || mx.pps == nil {
			return
		}
		mx.vStarted, mx.vFirstExt, mx.vFirstArr = true, ext, p.arrival
	}
	t := ext - mx.vFirstExt
	if mx.pend != nil && (t <= mx.pend.t || t-mx.pend.t > maxFrameGap && !key) {
		return // out of order, or a jump only a keyframe may resume from
	}
	mx.vLastExt, mx.vLastArr = ext, p.arrival
	if mx.pend != nil {
		mx.pend.dur = t - mx.pend.t
		mx.cur = append(mx.cur, *mx.pend)
		mx.pend = nil
	}
	if key && len(mx.cur) > 0 && (t-mx.segStart >= int64(mx.s.r.SegmentDuration.Seconds()*videoRate) || mx.spsChanged) {
		mx.flush(t)
	}
	cp := make([][]byte, len(au))
	for i, n := range au {
		cp[i] = append([]byte(nil), n...)
	}
	mx.pend = &vsample{t: t, key: key, au: cp}
}

func (mx *muxer) audio(p packet) {
	mx.audioSeen = true
	ext := mx.au.Next(p.ts)
	if !mx.vStarted || (mx.initName != "" && !mx.audioInit) {
		return
	}
	if !mx.aZeroSet {
		mx.aZero = ext - (p.arrival-mx.vFirstArr)*audioRate/int64(time.Second)
		mx.aZeroSet = true
	}
	t := ext - mx.aZero
	if t < 0 || (mx.aPend != nil && t <= mx.aPend.t) {
		return
	}
	if mx.aPend != nil {
		mx.aPend.dur = t - mx.aPend.t
		mx.aDone = append(mx.aDone, *mx.aPend)
	}
	mx.aPend = &asample{t: t, p: p.payload}
}

// tick asks for a keyframe when a segment has run past its length (or the
// recording has not started): WebRTC publishers send them only on request.
func (mx *muxer) tick() {
	due := !mx.vStarted || mx.vLastExt-mx.vFirstExt-mx.segStart >= int64(mx.s.r.SegmentDuration.Seconds()*videoRate)
	if due && time.Since(mx.lastKeyReq) > time.Second {
		mx.lastKeyReq = time.Now()
		mx.s.src.RequestKeyframe()
	}
}

func (mx *muxer) event(ev event) {
	t := 0.0
	if mx.vStarted {
		t = float64(mx.vLastExt-mx.vFirstExt)/videoRate + float64(ev.arrival-mx.vLastArr)/float64(time.Second)
		if ev.typ == "card" {
			var m struct {
				Media *struct {
					RTPTS *uint32 `json:"rtp_ts"`
				} `json:"media"`
			}
			if json.Unmarshal(ev.data, &m) == nil && m.Media != nil && m.Media.RTPTS != nil {
				ext := mx.vLastExt + int64(int32(*m.Media.RTPTS-uint32(mx.vLastExt)))
				t = float64(ext-mx.vFirstExt) / videoRate
			}
		}
	}
	if t < 0 {
		t = 0
	}
	if err := appendLine(mx.evLog, Event{T: t, Type: ev.typ, Data: marshalEvent(ev.data)}); err != nil {
		mx.s.r.log.Error("recording: event", "err", err)
	}
}

// flush writes the finished frames (and the audio before end) as one segment.
func (mx *muxer) flush(end int64) {
	if len(mx.cur) == 0 {
		return
	}
	if mx.initName == "" || mx.spsChanged {
		if err := mx.writeInit(); err != nil {
			mx.s.r.log.Error("recording: init segment", "err", err)
			mx.cur = mx.cur[:0]
			return
		}
	}
	part := fmp4.Part{SequenceNumber: uint32(mx.segN + 1)}
	vt := &fmp4.PartTrack{ID: videoTrack, BaseTime: uint64(mx.cur[0].t)}
	for _, f := range mx.cur {
		smp := &fmp4.Sample{Duration: uint32(f.dur), IsNonSyncSample: !f.key}
		if err := smp.FillH264(0, f.au); err != nil {
			continue
		}
		vt.Samples = append(vt.Samples, smp)
	}
	part.Tracks = append(part.Tracks, vt)
	if mx.audioInit {
		cut := end * audioRate / videoRate
		n := 0
		for n < len(mx.aDone) && mx.aDone[n].t < cut {
			n++
		}
		if n > 0 {
			at := &fmp4.PartTrack{ID: audioTrack, BaseTime: uint64(mx.aDone[0].t)}
			for _, a := range mx.aDone[:n] {
				at.Samples = append(at.Samples, &fmp4.Sample{Duration: uint32(a.dur), Payload: a.p})
			}
			part.Tracks = append(part.Tracks, at)
			mx.aDone = append(mx.aDone[:0], mx.aDone[n:]...)
		}
	}
	var buf seekablebuffer.Buffer
	if err := part.Marshal(&buf); err != nil {
		mx.s.r.log.Error("recording: segment", "err", err)
		mx.cur = mx.cur[:0]
		return
	}
	mx.segN++
	name := segName(mx.segN)
	start := mx.cur[0].t
	mx.cur = mx.cur[:0]
	mx.segStart = end
	if err := writeFileAtomic(mx.s.path(name), buf.Bytes()); err != nil {
		mx.s.r.log.Error("recording: segment", "err", err)
		return
	}
	pdt := mx.vFirstArr/int64(time.Millisecond) + start*1000/videoRate
	seg := Segment{N: mx.segN, File: name, Init: mx.initName, Start: float64(start) / videoRate, Dur: float64(end-start) / videoRate, Bytes: int64(len(buf.Bytes())), PDT: pdt}
	if err := appendLine(mx.segLog, seg); err != nil {
		mx.s.r.log.Error("recording: segment log", "err", err)
		return
	}
	mx.segments++
	mx.segEnd = end
	mx.s.r.m.segments.Inc()
	mx.s.r.m.bytes.Add(float64(len(buf.Bytes())))
}

func (mx *muxer) writeInit() error {
	if mx.initName == "" {
		// The tracks are fixed at the first init: audio is in if it has started.
		mx.audioInit = mx.audioSeen
	}
	init := fmp4.Init{Tracks: []*fmp4.InitTrack{{ID: videoTrack, TimeScale: videoRate, Codec: &mp4.CodecH264{SPS: mx.sps, PPS: mx.pps}}}}
	if mx.audioInit {
		init.Tracks = append(init.Tracks, &fmp4.InitTrack{ID: audioTrack, TimeScale: audioRate, Codec: &mp4.CodecOpus{ChannelCount: 2}})
	}
	var buf seekablebuffer.Buffer
	if err := init.Marshal(&buf); err != nil {
		return fmt.Errorf("marshal init: %w", err)
	}
	mx.initN++
	name := fmt.Sprintf("init-%d.mp4", mx.initN)
	if err := writeFileAtomic(mx.s.path(name), buf.Bytes()); err != nil {
		return err
	}
	mx.initName, mx.initSPS, mx.spsChanged = name, mx.sps, false
	return nil
}

// finish writes what is left and closes the show with the end of its media.
func (mx *muxer) finish() {
	defer mx.close()
	if mx.pend != nil {
		dur := int64(videoRate / 30)
		if n := len(mx.cur); n > 0 {
			dur = mx.cur[n-1].dur
		}
		mx.pend.dur = dur
		mx.cur = append(mx.cur, *mx.pend)
		mx.pend = nil
		end := mx.cur[len(mx.cur)-1].t + dur
		if mx.aPend != nil {
			mx.aPend.dur = audioRate / 50
			mx.aDone = append(mx.aDone, *mx.aPend)
			mx.aPend = nil
		}
		mx.flush(end)
	}
	if mx.segments == 0 {
		mx.s.removeEmpty()
		return
	}
	mx.s.closeShow(time.Unix(0, mx.vFirstArr).Add(time.Duration(mx.segEnd) * time.Second / videoRate))
}
