package sfu

import (
	"github.com/pion/webrtc/v4"
)

// AddTap attaches a non-WebRTC reader (e.g. an RTSP client) to one kind of
// the stream's outgoing media. w receives every forwarded packet — on the
// shared outgoing timeline, with the payload type the tap's codecs list
// gives for the source codec — synchronously from the fan-out, so it must
// not block (queue and drop instead). A video tap joins like a viewer: from
// the keyframe cache, or at the next keyframe. The returned func detaches it.
func (st *Stream) AddTap(kind webrtc.RTPCodecType, w webrtc.TrackLocalWriter, codecs []webrtc.RTPCodecParameters, ssrc uint32) (remove func()) {
	d := newDownTrack("tap", "streamd-"+st.id, kind)
	d.params = append([]webrtc.RTPCodecParameters(nil), codecs...)
	d.ssrc = ssrc
	d.writer = w
	f := st.forwarder(kind)
	f.add(d) // at the next packet: the reader's session is playing by then
	return func() { f.remove(d) }
}

// Codec reports the codec of the stream's current source of that kind.
func (st *Stream) Codec(kind webrtc.RTPCodecType) (webrtc.RTPCodecCapability, bool) {
	return st.forwarder(kind).current()
}
