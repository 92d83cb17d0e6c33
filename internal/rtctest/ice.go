package rtctest

import (
	"context"
	"net/http"
	"strings"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
)

// NewAPIWith is NewAPI (pion's default codecs and interceptors) on the
// given setting engine, e.g. Loopback() restricted to TCP; extra
// interceptors are added after the defaults (outermost on writes).
func NewAPIWith(se webrtc.SettingEngine, extra ...interceptor.Factory) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, err
	}
	for _, f := range extra {
		ir.Add(f)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// ICEServers asks a WHIP/WHEP endpoint for its ICE servers: the Link
// headers (RFC 9725 §4.6) of an OPTIONS request.
func ICEServers(ctx context.Context, endpoint string) ([]webrtc.ICEServer, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodOptions, endpoint, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	res.Body.Close()
	return ParseLinks(res.Header.Values("Link")), nil
}

// ParseLinks reads the rel="ice-server" entries of Link header values
// (several per value, comma-separated, as a browser's fetch joins them).
func ParseLinks(values []string) []webrtc.ICEServer {
	var out []webrtc.ICEServer
	for _, v := range values {
		for _, link := range splitOutside(v, ',') {
			link = strings.TrimSpace(link)
			start, end := strings.Index(link, "<"), strings.Index(link, ">")
			if start != 0 || end < 0 {
				continue
			}
			s := webrtc.ICEServer{URLs: []string{link[1:end]}}
			rel := ""
			for _, p := range splitOutside(link[end+1:], ';') {
				k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
				if !ok {
					continue
				}
				val = strings.Trim(val, `"`)
				switch strings.ToLower(k) {
				case "rel":
					rel = val
				case "username":
					s.Username = val
				case "credential":
					s.Credential = val
				}
			}
			if rel == "ice-server" {
				out = append(out, s)
			}
		}
	}
	return out
}

// splitOutside splits s at sep where sep is not inside <…> or "…".
func splitOutside(s string, sep byte) []string {
	var out []string
	quoted, angle, last := false, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			quoted = !quoted
		case c == '<' && !quoted:
			angle = true
		case c == '>' && !quoted:
			angle = false
		case c == sep && !quoted && !angle:
			out = append(out, s[last:i])
			last = i + 1
		}
	}
	return append(out, s[last:])
}
