package whipx

import (
	"errors"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"
)

func offerWith(video ...string) string {
	s := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" +
		"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n"
	if len(video) == 0 {
		return s
	}
	pts := make([]string, len(video))
	var attrs string
	for i, v := range video {
		pt := 100 + i
		pts[i] = strconv.Itoa(pt)
		name, fmtp, _ := strings.Cut(v, ";")
		attrs += "a=rtpmap:" + strconv.Itoa(pt) + " " + name + "/90000\r\n"
		if fmtp != "" {
			attrs += "a=fmtp:" + strconv.Itoa(pt) + " " + fmtp + "\r\n"
		}
	}
	return s + "m=video 9 UDP/TLS/RTP/SAVPF " + strings.Join(pts, " ") + "\r\nc=IN IP4 0.0.0.0\r\n" + attrs
}

func TestCheckCodec(t *testing.T) {
	h264 := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000}
	vp8 := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	cases := []struct {
		name  string
		offer string
		codec webrtc.RTPCodecCapability
		live  bool
		want  string // "" passes; else the CodecError's codec
	}{
		{"vp8 viewer, h264 stream", offerWith("VP8"), h264, true, "H.264"},
		{"h264 viewer, vp8 stream", offerWith("H264;packetization-mode=1;profile-level-id=42e01f"), vp8, true, "VP8"},
		{"h264 without packetization-mode 1", offerWith("H264;profile-level-id=42e01f"), h264, true, "H.264"},
		{"h264 viewer, h264 stream", offerWith("VP8", "H264;level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"), h264, true, ""},
		{"case-insensitive", offerWith("vp8"), vp8, true, ""},
		{"not live yet", offerWith("VP8"), h264, false, ""},
		{"audio-only viewer", offerWith(), h264, true, ""},
		{"unparseable offer is left to negotiation", "v=0\r\nnonsense", h264, true, ""},
		{"av1 stream", offerWith("VP8"), webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeAV1}, true, "AV1"},
		{"h265 stream", offerWith("VP8"), webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH265}, true, "H.265"},
	}
	for _, tc := range cases {
		err := CheckCodec(tc.offer, tc.codec, tc.live)
		var ce *CodecError
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (!errors.As(err, &ce) || ce.Codec != tc.want):
			t.Errorf("%s: got %v, want a CodecError for %s", tc.name, err, tc.want)
		}
	}
}

func TestWriteCodecError(t *testing.T) {
	w := httptest.NewRecorder()
	if WriteCodecError(w, errors.New("other")) {
		t.Fatal("wrote a response for another error")
	}
	if !WriteCodecError(w, &CodecError{Codec: "H.264"}) {
		t.Fatal("did not write")
	}
	body := w.Body.String()
	if w.Code != 422 || !strings.Contains(body, `"error":"codec_unsupported"`) || !strings.Contains(body, `"codec":"H.264"`) ||
		!strings.Contains(body, "This stream is H.264 and this browser can't decode it") {
		t.Fatalf("%d %s", w.Code, body)
	}
}
