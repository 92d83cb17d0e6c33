package sfu

// TEMPORARY: replaced by the media-core sink (same signature) when the
// media-core rework lands; until then a Sink rides on the tap mechanism, so
// the forwarder itself is untouched.

import (
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Sink receives a stream's media in-process on the shared outgoing timeline
// (the same SSRC/seq/ts viewers get) — recording and HLS.
type Sink interface {
	// WriteRTP is called on the forwarding path for every packet of the
	// stream's track of this kind; it must not block and must not keep pkt
	// or its payload after it returns.
	WriteRTP(kind webrtc.RTPCodecType, codec webrtc.RTPCodecCapability, pkt *rtp.Packet)
}

// sinkCodecs are the codecs a sink is offered, one payload type each: the
// tap picks the one matching the source and the adapter maps it back.
var sinkCodecs = []webrtc.RTPCodecCapability{
	{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: "packetization-mode=1"},
	{MimeType: webrtc.MimeTypeH265, ClockRate: 90000},
	{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
	{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000},
	{MimeType: webrtc.MimeTypeAV1, ClockRate: 90000},
	{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2},
	{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000, Channels: 1},
	{MimeType: webrtc.MimeTypePCMA, ClockRate: 8000, Channels: 1},
}

// sinkAdapter adapts a Sink to the tap's TrackLocalWriter.
type sinkAdapter struct {
	kind webrtc.RTPCodecType
	s    Sink
	pkt  rtp.Packet // reused: the forwarder calls one writer from one goroutine
}

func (w *sinkAdapter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	i := int(h.PayloadType) - 96
	if i < 0 || i >= len(sinkCodecs) {
		return 0, nil
	}
	w.pkt.Header = *h
	w.pkt.Payload = payload
	w.s.WriteRTP(w.kind, sinkCodecs[i], &w.pkt)
	return len(payload), nil
}

func (w *sinkAdapter) Write(b []byte) (int, error) { return len(b), nil }

// AddSink attaches s; video starts at a keyframe (the GOP cache is replayed
// first, as for a joining viewer). remove detaches it.
func (st *Stream) AddSink(s Sink) (remove func()) {
	var params []webrtc.RTPCodecParameters
	for i, c := range sinkCodecs {
		params = append(params, webrtc.RTPCodecParameters{RTPCodecCapability: c, PayloadType: webrtc.PayloadType(96 + i)})
	}
	rv := st.AddTap(webrtc.RTPCodecTypeVideo, &sinkAdapter{kind: webrtc.RTPCodecTypeVideo, s: s}, params, 1)
	ra := st.AddTap(webrtc.RTPCodecTypeAudio, &sinkAdapter{kind: webrtc.RTPCodecTypeAudio, s: s}, params, 2)
	return func() { rv(); ra() }
}

// RequestKeyframe asks the publisher for a keyframe (merged with viewers'
// requests: at most one per PLIInterval). Recording asks for one when a
// segment has run long, since WebRTC encoders send keyframes only on demand.
func (st *Stream) RequestKeyframe() { st.requestKeyframe() }
