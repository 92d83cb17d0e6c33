package ingest

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"github.com/streamd/streamd/egress"
)

var (
	testSPS = []byte{0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60}
	testPPS = []byte{0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0}
	testAUD = []byte{0x09, 0xf0}
)

func slice(typ byte, size int) []byte {
	b := bytes.Repeat([]byte{0xab}, size)
	b[0] = typ
	return b
}

// rtspPackets packetizes access units the way a camera might (large
// payloads), one timestamp per unit.
func rtspPackets(t *testing.T, aus [][][]byte, tss []uint32) []*rtp.Packet {
	t.Helper()
	enc := &rtph264.Encoder{PayloadType: 96, PayloadMaxSize: 1450, PacketizationMode: 1}
	if err := enc.Init(); err != nil {
		t.Fatal(err)
	}
	var out []*rtp.Packet
	for i, au := range aus {
		pkts, err := enc.Encode(au)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pkts {
			p.Timestamp = tss[i]
		}
		out = append(out, pkts...)
	}
	return out
}

type emitted struct {
	pkts []*rtp.Packet
}

func (e *emitted) emit(p *rtp.Packet, _ []byte) {
	cp := *p
	cp.Payload = bytes.Clone(p.Payload)
	e.pkts = append(e.pkts, &cp)
}

// units depacketizes what the repacker emitted into NAL type lists per unit.
func (e *emitted) units(t *testing.T) (types [][]byte, tss []uint32) {
	t.Helper()
	var dep codecs.H264Packet
	var au []byte
	for _, p := range e.pkts {
		if len(p.Payload) > webrtcPayloadMax {
			t.Fatalf("payload of %d bytes", len(p.Payload))
		}
		b, err := dep.Unmarshal(p.Payload)
		if err != nil {
			t.Fatal(err)
		}
		au = append(au, b...)
		if p.Marker {
			var ty []byte
			for i, n := range bytes.Split(au, []byte{0, 0, 1}) {
				if i > 0 && len(n) > 0 {
					ty = append(ty, n[0]&0x1f)
				}
			}
			types = append(types, ty)
			tss = append(tss, p.Timestamp)
			au = nil
		}
	}
	return types, tss
}

func TestH264RepackerForWebRTC(t *testing.T) {
	// The SDP carries the parameter sets; in band they only precede the
	// first IDR. Units carry AUDs; the second IDR comes without SPS/PPS.
	r, err := newH264Repacker(&format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: testSPS, PPS: testPPS})
	if err != nil {
		t.Fatal(err)
	}
	aus := [][][]byte{
		{testAUD, testSPS, testPPS, slice(0x65, 9000)},
		{testAUD, slice(0x41, 3000)},
		{testAUD, slice(0x41, 800)},
		{testAUD, slice(0x65, 5000)},
	}
	tss := []uint32{1000, 4000, 7000, 10000}
	var e emitted
	bframes := 0
	for _, p := range rtspPackets(t, aus, tss) {
		r.push(p, e.emit, func() { bframes++ })
	}
	types, gotTS := e.units(t)
	want := [][]byte{{7, 8, 5}, {1}, {1}, {7, 8, 5}}
	if len(types) != len(want) {
		t.Fatalf("got %d units %v, want %d", len(types), types, len(want))
	}
	for i := range want {
		if !bytes.Equal(types[i], want[i]) || gotTS[i] != tss[i] {
			t.Fatalf("unit %d: types %v ts %d, want %v ts %d", i, types[i], gotTS[i], want[i], tss[i])
		}
	}
	if bframes != 0 {
		t.Fatal("B-frames reported for a stream without them")
	}
	if got := h264Fmtp(r.sps); !strings.Contains(got, "profile-level-id=64001f") || !strings.Contains(got, "packetization-mode=1") {
		t.Fatalf("fmtp %q", got)
	}
}

func TestH264RepackerNoMarker(t *testing.T) {
	// Some cameras never set the marker bit: units end at the next timestamp.
	r, err := newH264Repacker(&format.H264{PayloadTyp: 96, PacketizationMode: 1})
	if err != nil {
		t.Fatal(err)
	}
	pkts := rtspPackets(t, [][][]byte{{testSPS, testPPS, slice(0x65, 4000)}, {slice(0x41, 500)}, {slice(0x41, 500)}}, []uint32{100, 200, 300})
	for _, p := range pkts {
		p.Marker = false
	}
	var e emitted
	for _, p := range pkts {
		r.push(p, e.emit, func() {})
	}
	types, tss := e.units(t)
	if len(types) != 2 || !bytes.Equal(types[0], []byte{7, 8, 5}) || tss[0] != 100 || tss[1] != 200 {
		t.Fatalf("got %v at %v", types, tss)
	}
}

func TestH264RepackerDetectsBFrames(t *testing.T) {
	r, err := newH264Repacker(&format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: testSPS, PPS: testPPS})
	if err != nil {
		t.Fatal(err)
	}
	// Decode order I P B B P B B: presentation timestamps go back.
	tss := []uint32{0, 9000, 3000, 6000, 18000, 12000, 15000}
	aus := [][][]byte{{slice(0x65, 100)}}
	for range tss[1:] {
		aus = append(aus, [][]byte{slice(0x41, 100)})
	}
	var e emitted
	bframes := 0
	for _, p := range rtspPackets(t, aus, tss) {
		r.push(p, e.emit, func() { bframes++ })
	}
	if bframes != 1 {
		t.Fatalf("B-frame warnings: %d, want 1", bframes)
	}
	if types, _ := e.units(t); len(types) != len(tss) {
		t.Fatalf("B-frames must still be forwarded: %d units", len(types))
	}
}

func TestPlanRTSPMedia(t *testing.T) {
	aac := &format.MPEG4Audio{PayloadTyp: 97}
	desc := &description.Session{Medias: []*description.Media{
		{Type: description.MediaTypeVideo, Formats: []format.Format{&format.H264{PayloadTyp: 96, PacketizationMode: 1}}},
		{Type: description.MediaTypeAudio, Formats: []format.Format{aac}},
	}}
	m, err := planRTSPMedia("s", desc, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.tracks) != 1 || m.tracks[0].kind != webrtc.RTPCodecTypeVideo {
		t.Fatalf("tracks: %+v", m.tracks)
	}
	if w := m.Warnings(); len(w) != 1 || !strings.Contains(w[0], "AAC") || !strings.Contains(w[0], "-c:a libopus") {
		t.Fatalf("warnings: %q", w)
	}

	// Opus and G.711 pass; AAC alone is nothing to forward.
	desc = &description.Session{Medias: []*description.Media{
		{Type: description.MediaTypeAudio, Formats: []format.Format{&format.Opus{PayloadTyp: 111, ChannelCount: 2}}},
		{Type: description.MediaTypeAudio, Formats: []format.Format{&format.G711{PayloadTyp: 0, MULaw: true, SampleRate: 8000, ChannelCount: 1}}},
	}}
	m, err = planRTSPMedia("s", desc, slog.New(slog.DiscardHandler))
	if err != nil || len(m.tracks) != 1 || m.tracks[0].codec.MimeType != webrtc.MimeTypeOpus || len(m.Warnings()) != 1 {
		t.Fatalf("opus+g711: %v %+v %q", err, m.tracks, m.Warnings())
	}
	desc = &description.Session{Medias: []*description.Media{{Type: description.MediaTypeAudio, Formats: []format.Format{aac}}}}
	if _, err := planRTSPMedia("s", desc, slog.New(slog.DiscardHandler)); !errors.Is(err, errNoUsableTrack) {
		t.Fatalf("AAC only: %v", err)
	}
}

// What egress describes to RTSP readers, ingest takes from RTSP publishers.
func TestRTSPFormatRoundTrip(t *testing.T) {
	for _, mime := range []string{webrtc.MimeTypeH264, webrtc.MimeTypeH265, webrtc.MimeTypeVP8, webrtc.MimeTypeVP9, webrtc.MimeTypeAV1, webrtc.MimeTypeOpus, webrtc.MimeTypePCMU, webrtc.MimeTypePCMA} {
		f := egress.RTSPFormat(webrtc.RTPCodecCapability{MimeType: mime})
		if f == nil {
			t.Fatalf("%s: no RTSP format", mime)
		}
		if _, c, reason := sfuCodec(f); reason != "" || c.MimeType != mime {
			t.Fatalf("%s: sfu codec %s (%s)", mime, c.MimeType, reason)
		}
	}
}

func TestStreamPath(t *testing.T) {
	for in, want := range map[string]string{"/s1": "s1", "/s1/": "s1", "s1": "s1", "/": "", "/a/b": "", "": ""} {
		if got := streamPath(in); got != want {
			t.Errorf("streamPath(%q) = %q, want %q", in, got, want)
		}
	}
}
