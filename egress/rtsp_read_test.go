package egress

import (
	"testing"

	"github.com/pion/webrtc/v4"
)

// Every codec the sfu forwards is described to RTSP readers, and the
// reader's taps find it again in the description.
func TestRTSPFormatRoundTrip(t *testing.T) {
	for _, mime := range []string{webrtc.MimeTypeH264, webrtc.MimeTypeH265, webrtc.MimeTypeVP8, webrtc.MimeTypeVP9, webrtc.MimeTypeAV1, webrtc.MimeTypeOpus, webrtc.MimeTypePCMU, webrtc.MimeTypePCMA} {
		f := RTSPFormat(webrtc.RTPCodecCapability{MimeType: mime})
		if f == nil {
			t.Fatalf("%s: no RTSP format", mime)
		}
		if got := codecOfFormat(f).MimeType; got != mime {
			t.Fatalf("%s → %s", mime, got)
		}
	}
}
