package whipx

import (
	"errors"
	"net/http"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/streamd/streamd/internal/httpx"
)

// CodecError says a viewer's offer cannot decode the stream's video codec.
// It is answered before any session exists, so nothing is left behind.
type CodecError struct {
	Codec string // the stream's codec, e.g. "H.264"
}

func (e *CodecError) Error() string { return "viewer cannot decode " + e.Codec }

// Message is what the player shows.
func (e *CodecError) Message() string {
	hint := "open it in Chrome, Edge or Safari"
	switch e.Codec {
	case "H.264":
		hint = "install the system's H.264 (OpenH264) codec, or open it in Chrome, Edge or Safari; the host can publish VP8 instead so every browser plays it"
	case "H.265":
		hint = "open it in Safari or a recent Chrome or Edge with hardware H.265; the host can publish H.264 or VP8 instead"
	case "AV1", "VP9":
		hint = "open it in a recent Chrome, Edge or Firefox; the host can publish H.264 or VP8 instead"
	case "VP8":
		hint = "open it in Chrome, Edge, Firefox or Safari; the host can publish H.264 instead"
	}
	return "This stream is " + e.Codec + " and this browser can't decode it — " + hint + "."
}

// WriteCodecError answers a CodecError: 422 codec_unsupported, with the
// stream's codec in "codec".
func WriteCodecError(w http.ResponseWriter, err error) bool {
	var ce *CodecError
	if !errors.As(err, &ce) {
		return false
	}
	httpx.WriteErrorExtra(w, http.StatusUnprocessableEntity, "codec_unsupported", ce.Message(), map[string]any{"codec": ce.Codec})
	return true
}

// CheckCodec returns a *CodecError when the offer asks for video but lists
// no way to decode c, the stream's current video codec. An offer pion
// cannot parse, one without video, or a stream with no video yet passes:
// negotiation decides those.
func CheckCodec(offer string, c webrtc.RTPCodecCapability, live bool) error {
	if !live || c.MimeType == "" {
		return nil
	}
	var d sdp.SessionDescription
	if err := d.UnmarshalString(offer); err != nil {
		return nil
	}
	want := strings.TrimPrefix(strings.ToLower(c.MimeType), "video/")
	video := false
	for _, m := range d.MediaDescriptions {
		if m.MediaName.Media != "video" {
			continue
		}
		video = true
		for _, f := range m.MediaName.Formats {
			if canDecode(m, f, want) {
				return nil
			}
		}
	}
	if !video {
		return nil
	}
	return &CodecError{Codec: codecName(want)}
}

// canDecode reports whether payload format f of m is the codec want, in a
// form the sfu forwards (H.264 needs packetization-mode=1).
func canDecode(m *sdp.MediaDescription, f, want string) bool {
	var name, fmtp string
	for _, a := range m.Attributes {
		v, ok := strings.CutPrefix(a.Value, f+" ")
		if !ok {
			continue
		}
		switch a.Key {
		case "rtpmap":
			name, _, _ = strings.Cut(v, "/")
		case "fmtp":
			fmtp = v
		}
	}
	if !strings.EqualFold(name, want) {
		return false
	}
	return want != "h264" || strings.Contains(fmtp, "packetization-mode=1")
}

func codecName(mime string) string {
	switch mime {
	case "h264":
		return "H.264"
	case "h265":
		return "H.265"
	}
	return strings.ToUpper(mime)
}
