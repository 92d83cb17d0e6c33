package sfu

import (
	"errors"
	"strings"
	"sync"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// downTrack is one subscriber's outgoing track. It is a webrtc.TrackLocal of
// our own rather than a TrackLocalStatic so that it can bind to every codec
// the viewer negotiated: when a publisher is replaced by one using another
// codec, the viewer's decoder just sees a new payload type, no renegotiation.
type downTrack struct {
	id, streamID string
	kind         webrtc.RTPCodecType

	bindMu sync.Mutex
	params []webrtc.RTPCodecParameters
	ssrc   uint32
	writer webrtc.TrackLocalWriter

	// Owned by the forwarder (under its write lock; during a parallel
	// pass by the one worker that writes to this track).
	pt           uint8
	ptOK         bool
	needKeyframe bool
	hdr          rtp.Header

	// An in-process sink instead of a WebRTC writer (recording, HLS).
	sink  Sink
	codec webrtc.RTPCodecCapability
	pkt   rtp.Packet

	// rtx is this viewer's retransmission budget (its RTCP goroutine only).
	rtx rtxBudget
}

var errNoCodec = errors.New("no common codec with the viewer")

func newDownTrack(id, streamID string, kind webrtc.RTPCodecType) *downTrack {
	return &downTrack{id: id, streamID: streamID, kind: kind}
}

func (d *downTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	params := ctx.CodecParameters()
	if len(params) == 0 {
		return webrtc.RTPCodecParameters{}, errNoCodec
	}
	d.bindMu.Lock()
	d.params = append([]webrtc.RTPCodecParameters(nil), params...)
	d.ssrc = uint32(ctx.SSRC())
	d.writer = ctx.WriteStream()
	d.bindMu.Unlock()
	return params[0], nil
}

func (d *downTrack) Unbind(webrtc.TrackLocalContext) error { return nil }

func (d *downTrack) ID() string                { return d.id }
func (d *downTrack) RID() string               { return "" }
func (d *downTrack) StreamID() string          { return d.streamID }
func (d *downTrack) Kind() webrtc.RTPCodecType { return d.kind }
func (d *downTrack) negotiated() []webrtc.RTPCodecParameters {
	d.bindMu.Lock()
	defer d.bindMu.Unlock()
	return d.params
}

// selectCodec picks the viewer's payload type for the source codec c. For
// H.264 it prefers packetization-mode=1 with the same profile.
func (d *downTrack) selectCodec(c webrtc.RTPCodecCapability) {
	d.ptOK = false
	d.codec = c
	if d.sink != nil {
		d.pt, d.ptOK = sinkPayloadType(c), true
		return
	}
	best := -1
	for _, p := range d.negotiated() {
		if !strings.EqualFold(p.MimeType, c.MimeType) {
			continue
		}
		score := 1
		if strings.EqualFold(c.MimeType, webrtc.MimeTypeH264) {
			if !strings.Contains(p.SDPFmtpLine, "packetization-mode=1") {
				continue
			}
			if profile(p.SDPFmtpLine) == profile(c.SDPFmtpLine) {
				score = 2
			}
		}
		if score > best {
			best = score
			d.pt = uint8(p.PayloadType)
			d.ptOK = true
		}
	}
}

// profile returns the profile_idc part of an H.264 profile-level-id.
func profile(fmtp string) string {
	for _, kv := range strings.Split(fmtp, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if strings.EqualFold(k, "profile-level-id") && len(v) >= 2 {
			return strings.ToLower(v[:2])
		}
	}
	return ""
}

// write sends one packet with this viewer's SSRC and payload type. The
// header lives in the downTrack so the hot path allocates nothing.
func (d *downTrack) write(seq uint16, ts uint32, marker bool, payload []byte) error {
	d.hdr.Version = 2
	d.hdr.PayloadType = d.pt
	d.hdr.SequenceNumber = seq
	d.hdr.Timestamp = ts
	d.hdr.Marker = marker
	d.hdr.SSRC = d.ssrc
	if d.sink != nil {
		d.pkt.Header = d.hdr
		d.pkt.Payload = payload
		d.sink.WriteRTP(d.kind, d.codec, &d.pkt)
		d.pkt.Payload = nil
		return nil
	}
	_, err := d.writer.WriteRTP(&d.hdr, payload)
	return err
}

// sinkPayloadType is the payload type sinks see: the one streamd offers
// for the codec (sinks go by the codec they are given, not by it).
func sinkPayloadType(c webrtc.RTPCodecCapability) uint8 {
	switch strings.ToLower(c.MimeType) {
	case "audio/opus":
		return 111
	case "audio/pcmu":
		return 0
	case "audio/pcma":
		return 8
	}
	return 96
}
