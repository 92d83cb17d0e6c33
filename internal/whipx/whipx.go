// Package whipx holds what WHIP (RFC 9725) ingest and WHEP playback share on
// the HTTP side: CORS for browser peers on other origins, reading an SDP
// offer, and trickle-ICE PATCH bodies (application/trickle-ice-sdpfrag).
package whipx

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/pion/webrtc/v4"
	"github.com/streamd/streamd/internal/httpx"
)

// MaxSDP caps offers and PATCH bodies. Real offers are 3–10 KB.
const MaxSDP = 64 << 10

// CORS sets the headers browser publishers and players on other origins
// need. Authorization must be listed explicitly: the "*" wildcard does not
// cover it. It returns true when the request was a preflight and is answered.
func CORS(w http.ResponseWriter, r *http.Request) bool {
	h := w.Header()
	origin := r.Header.Get("Origin")
	if origin == "" {
		origin = "*"
	}
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Allow-Methods", "GET, POST, PATCH, DELETE, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match")
	h.Set("Access-Control-Expose-Headers", "Location, ETag, Link, Accept-Patch")
	h.Set("Access-Control-Max-Age", "600")
	if r.Method == http.MethodOptions {
		h.Set("Accept-Post", "application/sdp")
		h.Set("Accept-Patch", "application/trickle-ice-sdpfrag")
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	return false
}

func mediaType(r *http.Request) string {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return ""
	}
	return strings.ToLower(mt)
}

// ReadOffer reads an application/sdp offer. On failure it has written the
// error response and returns false.
func ReadOffer(w http.ResponseWriter, r *http.Request) (string, bool) {
	if mediaType(r) != "application/sdp" {
		httpx.WriteError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "send the SDP offer with Content-Type: application/sdp")
		return "", false
	}
	b, err := httpx.ReadBody(r, MaxSDP)
	if errors.Is(err, httpx.ErrBodyTooLarge) {
		httpx.WriteError(w, http.StatusRequestEntityTooLarge, "sdp_too_large", fmt.Sprintf("the SDP offer must be at most %d bytes", MaxSDP))
		return "", false
	}
	s := string(b)
	trimmed := strings.TrimSpace(s)
	if err != nil || trimmed == "" {
		httpx.WriteError(w, http.StatusBadRequest, "bad_sdp", "the body must be an SDP offer")
		return "", false
	}
	if !strings.HasPrefix(trimmed, "v=0") {
		httpx.WriteError(w, http.StatusBadRequest, "bad_sdp", "the body is not an SDP offer (it must start with v=0)")
		return "", false
	}
	return s, true
}

// WriteAnswer writes the 201 response for a new session.
func WriteAnswer(w http.ResponseWriter, location, etag, answer string) {
	h := w.Header()
	h.Set("Content-Type", "application/sdp")
	h.Set("Location", location)
	h.Set("ETag", etag)
	h.Set("Accept-Patch", "application/trickle-ice-sdpfrag")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write([]byte(answer))
}

// Frag is a parsed trickle-ice-sdpfrag body.
type Frag struct {
	Ufrag, Pwd string
	Candidates []webrtc.ICECandidateInit
}

// ParseFrag parses an application/trickle-ice-sdpfrag body (RFC 8840).
func ParseFrag(body string) (Frag, error) {
	var f Frag
	mid := ""
	mline := -1
	for _, line := range strings.Split(strings.ReplaceAll(body, "\r\n", "\n"), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			f.Ufrag = strings.TrimPrefix(line, "a=ice-ufrag:")
		case strings.HasPrefix(line, "a=ice-pwd:"):
			f.Pwd = strings.TrimPrefix(line, "a=ice-pwd:")
		case strings.HasPrefix(line, "m="):
			mline++
			mid = ""
		case strings.HasPrefix(line, "a=mid:"):
			mid = strings.TrimPrefix(line, "a=mid:")
		case strings.HasPrefix(line, "a=candidate:"):
			c := webrtc.ICECandidateInit{Candidate: strings.TrimPrefix(line, "a=")}
			if mid != "" {
				m := mid
				c.SDPMid = &m
			} else {
				i := uint16(max(mline, 0)) // before any m= line: the first
				c.SDPMLineIndex = &i
			}
			f.Candidates = append(f.Candidates, c)
		case strings.HasPrefix(line, "a=end-of-candidates"), strings.HasPrefix(line, "a=group:"), strings.HasPrefix(line, "a=ice-options:"):
		case len(line) > 2 && line[1] == '=':
		default:
			return f, fmt.Errorf("not an sdpfrag line: %q", line)
		}
	}
	return f, nil
}

// Patch handles a trickle-ICE PATCH for a session's peer connection.
func Patch(w http.ResponseWriter, r *http.Request, pc *webrtc.PeerConnection, etag string) {
	if mediaType(r) != "application/trickle-ice-sdpfrag" {
		httpx.WriteError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "PATCH takes Content-Type: application/trickle-ice-sdpfrag")
		return
	}
	if im := r.Header.Get("If-Match"); im != "" && im != "*" && im != etag {
		httpx.WriteError(w, http.StatusPreconditionFailed, "etag_mismatch", "If-Match does not match this session's ETag")
		return
	}
	b, err := httpx.ReadBody(r, MaxSDP)
	if err != nil {
		httpx.WriteError(w, http.StatusRequestEntityTooLarge, "body_too_large", "the sdpfrag is too large")
		return
	}
	f, err := ParseFrag(string(b))
	if err != nil {
		httpx.WriteError(w, http.StatusBadRequest, "bad_sdpfrag", err.Error())
		return
	}
	if rd := pc.RemoteDescription(); f.Ufrag != "" && rd != nil && !strings.Contains(rd.SDP, "a=ice-ufrag:"+f.Ufrag) {
		httpx.WriteError(w, http.StatusUnprocessableEntity, "ice_restart_unsupported", "ICE restart is not supported: DELETE this session and POST a new offer")
		return
	}
	for i, c := range f.Candidates {
		if err := pc.AddICECandidate(c); err != nil {
			httpx.WriteError(w, http.StatusBadRequest, "bad_candidate", "candidate "+strconv.Itoa(i)+": "+err.Error())
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// NewSession makes the id (in the resource URL) and the quoted ETag of a
// new session.
func NewSession() (id, etag string) {
	return randomHex(16), `"` + randomHex(8) + `"`
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// SessionPath builds the Location of a session resource.
func SessionPath(prefix, stream, id string) string {
	return prefix + "/" + stream + "/" + id
}
