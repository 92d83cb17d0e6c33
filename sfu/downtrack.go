package sfu

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
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
	// The viewer's payload type per layer slot (layers may differ in codec).
	pts    [maxLayers]uint8
	ptOKs  [maxLayers]bool
	codecs [maxLayers]webrtc.RTPCodecCapability
	// layer is the slot the track gets now (-1: none yet), target the one
	// it should get (a switch happens at target's next keyframe).
	layer, target int
	// Outgoing seq = layer seq + seqOff; the numbering continues across
	// layer switches. switchSeq is the first outgoing seq of the current layer.
	seqOff, lastSeq, switchSeq uint16
	haveSeq                    bool
	// sinceSwitch counts packets since the switch, up to switchGuard: as
	// long as packets from before it may still arrive or be NACKed.
	sinceSwitch uint32
	// ranges map the viewer's recent sequence numbers back to layers, for
	// NACKs: from each range's start on, seq − off is a packet of slot
	// (−1: padding, nothing to resend). The newest is ranges[(nRanges-1)%4].
	ranges  [4]seqRange
	nRanges int
	// want is the layer rank asked for (0 lowest, or wantAuto/wantFollow);
	// autoRank is the bandwidth chooser's rank for wantAuto (-1: none).
	want, autoRank atomic.Int32
	// current is the slot being received, for readers without the lock.
	current atomic.Int32

	// Transport-wide congestion control: the header extension's id (0: not
	// negotiated) and the viewer's shared sequence and send recorder.
	tccID  uint8
	tcc    *transportCC
	tccBuf [2]byte

	// An in-process sink instead of a WebRTC writer (recording, HLS).
	sink  Sink
	codec webrtc.RTPCodecCapability
	pkt   rtp.Packet

	// rtx is this viewer's retransmission budget (its RTCP goroutine only);
	// rtxRate, when set, lowers the rate (packets/s) to what its bandwidth
	// estimate leaves room for.
	rtx     rtxBudget
	rtxRate atomic.Int64

	// sr counts what was sent, for the viewer's sender reports.
	sr srCounts
}

var errNoCodec = errors.New("no common codec with the viewer")

func newDownTrack(id, streamID string, kind webrtc.RTPCodecType) *downTrack {
	d := &downTrack{id: id, streamID: streamID, kind: kind, layer: -1}
	d.want.Store(wantFollow)
	d.autoRank.Store(-1)
	d.current.Store(-1)
	return d
}

// SentRecorder records the packets sent to a viewer for its bandwidth
// estimate (internal/bwe implements it; wired in egress).
type SentRecorder interface {
	Sent(seq uint16, size int, now time.Time)
}

// transportCC is what a viewer's tracks share for transport-wide
// congestion control: one sequence across its audio and video.
type transportCC struct {
	seq  atomic.Uint32
	sent atomic.Pointer[SentRecorder]
}

// useSlot takes the payload type and codec of a layer slot.
func (d *downTrack) useSlot(slot int) {
	d.pt, d.ptOK, d.codec = d.pts[slot], d.ptOKs[slot], d.codecs[slot]
}

// switchTo starts the track on a layer at a packet with layer sequence
// number layerSeq: its outgoing numbering continues from the last packet sent.
func (d *downTrack) switchTo(slot int, layerSeq uint16) {
	same := d.layer == slot
	d.layer, d.needKeyframe = slot, false
	d.useSlot(slot)
	if same && d.haveSeq {
		// Back on the same layer (a new source spliced in, a failed write):
		// the layer's own numbering is continuous, with room for late packets.
		return
	}
	if d.haveSeq {
		d.seqOff = d.lastSeq + 1 - layerSeq
	} else {
		d.seqOff = 0
	}
	d.switchSeq = layerSeq + d.seqOff
	d.sinceSwitch = 0
	// NACKs from before a switch are not answered: the other layer's
	// packets are no use once this keyframe is decoded, and resending
	// them to a viewer that was just stepped down for want of bandwidth
	// would flood it.
	d.nRanges = 0
	d.pushRange(d.switchSeq, d.seqOff, slot)
	d.current.Store(int32(slot))
}

type seqRange struct {
	start, off uint16
	slot       int
}

func (d *downTrack) pushRange(start, off uint16, slot int) {
	d.ranges[d.nRanges%len(d.ranges)] = seqRange{start, off, slot}
	d.nRanges++
}

// source maps one of the viewer's sequence numbers to the layer slot and
// layer sequence number of the packet it carried (ok false: padding, or
// older than the ranges kept).
func (d *downTrack) source(seq uint16) (slot int, layerSeq uint16, ok bool) {
	for i := range min(d.nRanges, len(d.ranges)) {
		r := d.ranges[(d.nRanges-1-i)%len(d.ranges)]
		// Long after the newest range began, numbers may have wrapped
		// around its start: it covers every recent number.
		if (i == 0 && d.sinceSwitch >= switchGuard) || int16(seq-r.start) >= 0 {
			return r.slot, seq - r.off, r.slot >= 0
		}
	}
	return 0, 0, false
}

// switchGuard: for this many packets after a layer switch, packets and
// NACKs numbered before the switch are refused (they belong to the other
// layer; later, the NACK cache no longer holds them anyway).
const switchGuard = 4096

func (d *downTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	params := ctx.CodecParameters()
	if len(params) == 0 {
		return webrtc.RTPCodecParameters{}, errNoCodec
	}
	d.bindMu.Lock()
	d.params = append([]webrtc.RTPCodecParameters(nil), params...)
	d.ssrc = uint32(ctx.SSRC())
	d.writer = ctx.WriteStream()
	if d.tcc != nil {
		for _, x := range ctx.HeaderExtensions() {
			if x.URI == sdp.TransportCCURI {
				d.tccID = uint8(x.ID)
			}
		}
	}
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

// selectCodec picks the viewer's payload type for the codec c of a layer
// slot. For H.264 it prefers packetization-mode=1 with the same profile.
func (d *downTrack) selectCodec(slot int, c webrtc.RTPCodecCapability) {
	d.pt, d.ptOK, d.codec = 0, false, c
	defer func() {
		d.pts[slot], d.ptOKs[slot], d.codecs[slot] = d.pt, d.ptOK, d.codec
		if d.layer >= 0 && d.layer != slot {
			d.useSlot(d.layer)
		}
	}()
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
func (d *downTrack) write(seq uint16, ts uint32, marker bool, payload []byte, now time.Time) error {
	d.hdr.Padding, d.hdr.PaddingSize = false, 0
	return d.send(seq, ts, marker, payload, now)
}

// writePadding sends a padding-only packet of paddingSize bytes (a
// bandwidth probe): the receiver counts it for congestion control and
// drops it before decoding.
func (d *downTrack) writePadding(seq uint16, ts uint32, now time.Time) error {
	d.hdr.Padding, d.hdr.PaddingSize = true, paddingSize
	err := d.send(seq, ts, false, nil, now)
	d.hdr.Padding, d.hdr.PaddingSize = false, 0
	return err
}

// paddingSize is the largest padding an RTP packet can carry.
const paddingSize = 255

func (d *downTrack) send(seq uint16, ts uint32, marker bool, payload []byte, now time.Time) error {
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
	if d.tccID != 0 && now.IsZero() {
		// Not for the bandwidth estimate (a keyframe-cache replay: a
		// burst at join that says nothing about the path).
		_ = d.hdr.DelExtension(d.tccID)
	} else if d.tccID != 0 {
		if rec := d.tcc.sent.Load(); rec != nil {
			n := uint16(d.tcc.seq.Add(1) - 1)
			d.tccBuf[0], d.tccBuf[1] = byte(n>>8), byte(n)
			// The header is reused: after the first packet this replaces
			// the extension's payload in place (no allocation).
			_ = d.hdr.SetExtension(d.tccID, d.tccBuf[:])
			(*rec).Sent(n, len(payload)+int(d.hdr.PaddingSize)+rtpOverhead, now)
		}
	}
	if _, err := d.writer.WriteRTP(&d.hdr, payload); err != nil {
		return err
	}
	d.sr.packets.Add(1)
	d.sr.octets.Add(uint32(len(payload)))
	return nil
}

// rtpOverhead is an RTP packet's bytes beyond its payload on the wire,
// roughly: header with the extension, SRTP tag, UDP and IP.
const rtpOverhead = 12 + 8 + 16 + 8 + 20

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
