package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/streamd/streamd/sfu"
)

// This file turns the media of an RTSP session (a publisher's ANNOUNCE or a
// pulled camera's DESCRIBE) into sfu tracks. It is shared by the RTSP server
// and the pull manager.

// webrtcPayloadMax bounds the H.264 payloads re-packetized for WebRTC.
const webrtcPayloadMax = 1200

// Fix-it texts shown in logs and in the stream's warnings.
const (
	fixOpus    = "publish Opus instead (ffmpeg: -c:a libopus)"
	fixBFrames = "encode without B-frames (ffmpeg: -bf 0 or -tune zerolatency; OBS: the zerolatency tune or a baseline profile)"
)

var errNoUsableTrack = errors.New("no track WebRTC viewers can play")

// rtspMedia is the media of one RTSP session on its way to the sfu. Packet
// callbacks of one track come from one goroutine (gortsplib's reader), so a
// track's state needs no lock; warnings are read by the API and are locked.
type rtspMedia struct {
	stream string
	log    *slog.Logger
	tracks []*rtspTrack
	// onPacket is called for every packet handed to the sfu (may be nil).
	onPacket func()

	mu       sync.Mutex
	warnings []string
	pub      *sfu.Publication
}

// rtspTrack is one media/format of the session that the sfu takes.
type rtspTrack struct {
	m     *rtspMedia
	medi  *description.Media
	forma format.Format
	kind  webrtc.RTPCodecType
	// codec is the sfu codec; for H.264 it is completed from the SPS.
	codec webrtc.RTPCodecCapability
	tw    *sfu.TrackWriter
	h264  *h264Repacker
	order tsOrder
}

// planRTSPMedia picks, from a session description, the first video and the
// first audio format the sfu can forward, and says why the others are not
// taken. It fails when nothing is left to forward.
func planRTSPMedia(stream string, desc *description.Session, log *slog.Logger) (*rtspMedia, error) {
	m := &rtspMedia{stream: stream, log: log}
	var haveVideo, haveAudio bool
	for _, medi := range desc.Medias {
		if medi.IsBackChannel {
			continue
		}
		for _, f := range medi.Formats {
			kind, codec, reason := sfuCodec(f)
			if reason != "" {
				m.warn(reason, "codec", f.Codec())
				continue
			}
			if (kind == webrtc.RTPCodecTypeVideo && haveVideo) || (kind == webrtc.RTPCodecTypeAudio && haveAudio) {
				m.warn(fmt.Sprintf("extra %s track (%s) ignored: only one video and one audio track are forwarded", kind, f.Codec()), "codec", f.Codec())
				continue
			}
			t := &rtspTrack{m: m, medi: medi, forma: f, kind: kind, codec: codec}
			if h, ok := f.(*format.H264); ok {
				rp, err := newH264Repacker(h)
				if err != nil {
					m.warn("H.264 track refused: "+err.Error(), "codec", f.Codec())
					continue
				}
				t.h264 = rp
			}
			if kind == webrtc.RTPCodecTypeVideo {
				haveVideo = true
			} else {
				haveAudio = true
			}
			m.tracks = append(m.tracks, t)
			break // one format per media
		}
	}
	if len(m.tracks) == 0 {
		return m, fmt.Errorf("%w (%s)", errNoUsableTrack, m.warningText())
	}
	return m, nil
}

// sfuCodec maps an RTSP format to the sfu codec it is forwarded as, or says
// why it cannot be.
func sfuCodec(f format.Format) (webrtc.RTPCodecType, webrtc.RTPCodecCapability, string) {
	video, audio := webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio
	switch f := f.(type) {
	case *format.H264:
		// The profile is filled in from the SPS before the track is added.
		return video, webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000}, ""
	case *format.H265:
		return video, webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH265, ClockRate: 90000}, ""
	case *format.VP8:
		return video, webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, ""
	case *format.VP9:
		return video, webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000, SDPFmtpLine: "profile-id=0"}, ""
	case *format.AV1:
		return video, webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeAV1, ClockRate: 90000}, ""
	case *format.Opus:
		return audio, webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}, ""
	case *format.G711:
		if f.SampleRate != 8000 || f.ChannelCount != 1 {
			return audio, webrtc.RTPCodecCapability{}, fmt.Sprintf("audio track refused: G.711 at %d Hz with %d channels cannot be sent to WebRTC viewers (only 8 kHz mono); %s", f.SampleRate, f.ChannelCount, fixOpus)
		}
		mime := webrtc.MimeTypePCMA
		if f.MULaw {
			mime = webrtc.MimeTypePCMU
		}
		return audio, webrtc.RTPCodecCapability{MimeType: mime, ClockRate: 8000, Channels: 1}, ""
	case *format.MPEG4Audio, *format.MPEG4AudioLATM:
		return audio, webrtc.RTPCodecCapability{}, "audio track refused: AAC cannot be sent to WebRTC viewers; " + fixOpus
	}
	if isAudioFormat(f) {
		return audio, webrtc.RTPCodecCapability{}, fmt.Sprintf("audio track refused: %s cannot be sent to WebRTC viewers; %s", f.Codec(), fixOpus)
	}
	return video, webrtc.RTPCodecCapability{}, fmt.Sprintf("track refused: %s cannot be sent to WebRTC viewers; publish H.264 (ffmpeg: -c:v libx264 -tune zerolatency), VP8, VP9, AV1 or H.265", f.Codec())
}

func isAudioFormat(f format.Format) bool {
	switch f.(type) {
	case *format.G722, *format.G726, *format.LPCM, *format.MPEG1Audio, *format.AC3, *format.Speex, *format.Vorbis:
		return true
	}
	return false
}

// warn records a warning for the stream's status and logs it once.
func (m *rtspMedia) warn(msg string, attrs ...any) {
	m.mu.Lock()
	for _, w := range m.warnings {
		if w == msg {
			m.mu.Unlock()
			return
		}
	}
	m.warnings = append(m.warnings, msg)
	m.mu.Unlock()
	m.log.Warn("rtsp: "+msg, append([]any{"stream", m.stream}, attrs...)...)
}

// Warnings returns a copy of the warnings so far.
func (m *rtspMedia) Warnings() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.warnings...)
}

func (m *rtspMedia) warningText() string {
	ws := m.Warnings()
	if len(ws) == 0 {
		return "the session has no media"
	}
	return fmt.Sprint(ws)
}

// medias lists the medias of the planned tracks (what to SETUP when pulling).
func (m *rtspMedia) medias() []*description.Media {
	out := make([]*description.Media, 0, len(m.tracks))
	for _, t := range m.tracks {
		out = append(out, t.medi)
	}
	return out
}

// attach starts feeding pub. Pass-through tracks are added at once; an
// H.264 track is added at its first access unit with known parameter sets,
// so that its profile is right.
func (m *rtspMedia) attach(pub *sfu.Publication) {
	m.mu.Lock()
	m.pub = pub
	m.mu.Unlock()
	for _, t := range m.tracks {
		if t.h264 == nil {
			t.tw = pub.Track(t.kind, t.codec)
		}
		m.log.Info("rtsp track", "stream", m.stream, "kind", t.kind.String(), "codec", t.forma.Codec())
	}
}

func (m *rtspMedia) publication() *sfu.Publication {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pub
}

// handle takes one RTP packet of the track (from gortsplib's reader).
func (t *rtspTrack) handle(pkt *rtp.Packet) {
	if t.h264 == nil {
		if t.kind == webrtc.RTPCodecTypeVideo && t.order.backwards(pkt.Timestamp) {
			t.m.warn("B-frames detected (video timestamps go backwards): WebRTC players show them out of order; "+fixBFrames, "codec", t.forma.Codec())
		}
		if t.tw != nil {
			t.write(pkt)
		}
		return
	}
	t.h264.push(pkt, func(out *rtp.Packet, sps []byte) {
		if t.tw == nil {
			pub := t.m.publication()
			if pub == nil {
				return
			}
			t.codec.SDPFmtpLine = h264Fmtp(sps)
			t.tw = pub.Track(t.kind, t.codec)
		}
		// Each packet of the unit enters the sfu now: like a WHIP packet
		// read from its socket, it has waited for the ones before it.
		t.write(out)
	}, func() {
		t.m.warn("B-frames detected (H.264 presentation order differs from decode order): WebRTC players show them out of order; "+fixBFrames, "codec", "H264")
	})
}

// write hands one packet to the sfu.
func (t *rtspTrack) write(pkt *rtp.Packet) {
	t.tw.WriteRTP(pkt, time.Now())
	if t.m.onPacket != nil {
		t.m.onPacket()
	}
}

// tsOrder detects presentation timestamps that go backwards between
// frames, which is what B-frames look like in decode order. Two steps back
// are needed, so a single odd packet does not raise a warning; backwards
// reports it once.
type tsOrder struct {
	have  bool
	last  uint32
	backs int
}

func (o *tsOrder) backwards(ts uint32) bool {
	if !o.have {
		o.have, o.last = true, ts
		return false
	}
	if ts == o.last {
		return false
	}
	back := int32(ts-o.last) < 0
	if back {
		o.backs++
	}
	o.last = ts
	return back && o.backs == 2
}

// h264Fmtp is the WebRTC fmtp line for an SPS (profile-level-id from its
// profile, constraint and level bytes).
func h264Fmtp(sps []byte) string {
	pl := "42e01f"
	if len(sps) >= 4 {
		pl = fmt.Sprintf("%02x%02x%02x", sps[1], sps[2], sps[3])
	}
	return "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=" + pl
}

// h264Repacker turns RTSP H.264 into what WebRTC decoders want: whole
// access units re-packetized with payloads of at most 1200 bytes, the SPS
// and PPS sent before every IDR (cameras often send them only in the SDP),
// and no access unit delimiters.
type h264Repacker struct {
	dec      *rtph264.Decoder
	enc      *rtph264.Encoder
	sps, pps []byte

	havePrev   bool
	prevTS     uint32
	prevMarker bool
	order      tsOrder
}

func newH264Repacker(f *format.H264) (*h264Repacker, error) {
	dec, err := f.CreateDecoder()
	if err != nil {
		return nil, err
	}
	enc := &rtph264.Encoder{PayloadType: 96, PayloadMaxSize: webrtcPayloadMax, PacketizationMode: 1}
	if err := enc.Init(); err != nil {
		return nil, err
	}
	r := &h264Repacker{dec: dec, enc: enc}
	sps, pps := f.SafeParams()
	r.sps, r.pps = bytes.Clone(sps), bytes.Clone(pps)
	return r, nil
}

// push decodes one packet; for each complete access unit it calls emit
// with the new packets (and the SPS in use), and bframes the first time
// B-frames are seen.
func (r *h264Repacker) push(pkt *rtp.Packet, emit func(*rtp.Packet, []byte), bframes func()) {
	// The decoder ends an access unit at the marker bit, or (cameras that
	// do not set it) at the first packet of the next timestamp: then the
	// unit it returns is the previous one.
	auTS := pkt.Timestamp
	if r.havePrev && pkt.Timestamp != r.prevTS && !r.prevMarker {
		auTS = r.prevTS
	}
	r.havePrev, r.prevTS, r.prevMarker = true, pkt.Timestamp, pkt.Marker
	au, err := r.dec.Decode(pkt)
	if err != nil {
		return // more packets needed, or a broken unit (lost packets): wait for the next
	}
	r.accessUnit(au, auTS, emit, bframes)
}

func (r *h264Repacker) accessUnit(au [][]byte, ts uint32, emit func(*rtp.Packet, []byte), bframes func()) {
	out := make([][]byte, 0, len(au)+2)
	idr := false
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeAccessUnitDelimiter, h264.NALUTypeFillerData:
			continue
		case h264.NALUTypeSPS:
			r.sps = bytes.Clone(n)
			continue
		case h264.NALUTypePPS:
			r.pps = bytes.Clone(n)
			continue
		case h264.NALUTypeIDR:
			idr = true
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return
	}
	if r.order.backwards(ts) { // true once
		bframes()
	}
	if idr {
		if r.sps == nil || r.pps == nil {
			return // undecodable until the parameter sets are known
		}
		out = append([][]byte{r.sps, r.pps}, out...)
	} else if r.sps == nil {
		return
	}
	pkts, err := r.enc.Encode(out)
	if err != nil {
		return
	}
	for _, p := range pkts {
		p.Timestamp = ts
		emit(p, r.sps)
	}
}
