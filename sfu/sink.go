package sfu

import (
	"sync"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// A Sink receives a stream's media in-process on the shared outgoing
// timeline (the same seq/ts viewers get) — recording and HLS.
type Sink interface {
	// WriteRTP is called on the forwarding path for every packet of the
	// stream's track of this kind; it must not block and must not keep pkt
	// or its payload after it returns.
	WriteRTP(kind webrtc.RTPCodecType, codec webrtc.RTPCodecCapability, pkt *rtp.Packet)
}

// AddSink attaches s; video starts at a keyframe (the GOP cache is replayed
// first, as for a joining viewer). remove detaches it.
func (st *Stream) AddSink(s Sink) (remove func()) {
	v := newDownTrack("sink", "streamd-"+st.id, webrtc.RTPCodecTypeVideo)
	a := newDownTrack("sink", "streamd-"+st.id, webrtc.RTPCodecTypeAudio)
	v.sink, a.sink = s, s
	v.ssrc, a.ssrc = st.sinkSSRC[1], st.sinkSSRC[0]
	st.video.join(v)
	st.audio.join(a)
	st.sinks.Add(1)
	var once sync.Once
	return func() {
		once.Do(func() {
			st.video.subs.remove(v)
			st.audio.subs.remove(a)
			st.sinks.Add(-1)
		})
	}
}

// RequestKeyframe asks the publisher for a keyframe (merged with viewers'
// requests: at most one per PLIInterval). Recording asks for one when a
// segment has run long, since WebRTC encoders send keyframes only on demand.
func (st *Stream) RequestKeyframe() { st.requestKeyframe(st.video.refSlot()) }
