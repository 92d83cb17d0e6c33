package rtc

import (
	"strings"

	"github.com/pion/sdp/v3"
)

// knownMimes are the lower-case MIME types of Codecs (read only).
var knownMimes = func() map[string]bool {
	m := map[string]bool{}
	for _, c := range Codecs() {
		m[strings.ToLower(c.MimeType)] = true
	}
	return m
}()

// pruneOffer drops from each media section of an offer the payload types
// of codecs streamd never takes — RTX, RED, FEC, and codecs not in Codecs —
// with their rtpmap, fmtp and rtcp-fb lines. pion leaves them out of the
// answer anyway, but its SetRemoteDescription rebuilds the codec list once
// per payload type (quadratic in their number): a pion client's default
// offer cost ~5.4 ms of CPU per session there, which is most of what a
// viewer's POST costs and adds up when a crowd joins at once. A section
// with no codec streamd takes is left whole (pion rejects it as before);
// payload types without an rtpmap (static ones) are kept.
func pruneOffer(d *sdp.SessionDescription) (changed bool) {
	for _, m := range d.MediaDescriptions {
		kind := strings.ToLower(m.MediaName.Media)
		mime := map[string]string{}
		for _, a := range m.Attributes {
			if a.Key != "rtpmap" {
				continue
			}
			pt, enc, ok := strings.Cut(a.Value, " ")
			if !ok {
				continue
			}
			name, _, _ := strings.Cut(enc, "/")
			mime[pt] = kind + "/" + strings.ToLower(name)
		}
		keep := map[string]bool{}
		var formats []string
		for _, pt := range m.MediaName.Formats {
			if mt, ok := mime[pt]; !ok || knownMimes[mt] {
				keep[pt] = true
				formats = append(formats, pt)
			}
		}
		if len(formats) == 0 || len(formats) == len(m.MediaName.Formats) {
			continue
		}
		m.MediaName.Formats = formats
		attrs := m.Attributes[:0]
		for _, a := range m.Attributes {
			switch a.Key {
			case "rtpmap", "fmtp", "rtcp-fb":
				if pt, _, _ := strings.Cut(a.Value, " "); pt != "*" && !keep[pt] {
					continue
				}
			}
			attrs = append(attrs, a)
		}
		m.Attributes = attrs
		changed = true
	}
	return changed
}
