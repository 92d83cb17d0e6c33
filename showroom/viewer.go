// Viewer identity without accounts: POST /api/viewer {"name"} gives a
// random viewer id and a signed cookie carrying it with the display name.
// No email, nothing else about the viewer is kept.

package showroom

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/streamd/streamd/internal/httpx"
	"github.com/streamd/streamd/overlay"
)

// TokenSigner signs and checks cookies (internal/signer).
type TokenSigner interface {
	Sign(purpose string, payload []byte, exp time.Time) string
	Verify(purpose, token string, now time.Time) ([]byte, error)
}

const (
	// ViewerCookie is the chat identity cookie.
	ViewerCookie  = "streamd_viewer"
	viewerPurpose = "viewer"
	viewerTTL     = 30 * 24 * time.Hour
	maxNameRunes  = 32
)

type viewerJSON struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// cleanName trims name and checks it: 1–32 characters, no control
// characters (and no invisible format characters that fake other names).
func cleanName(name string) (string, bool) {
	name = strings.TrimSpace(name)
	n := utf8.RuneCountInString(name)
	if n == 0 || n > maxNameRunes || !utf8.ValidString(name) {
		return "", false
	}
	for _, r := range name {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) && r != '\u200d' { // ZWJ joins emoji
			return "", false
		}
	}
	return name, true
}

// Viewer reads the viewer cookie of r (implements overlay.ChatPolicy).
func (s *Server) Viewer(r *http.Request) (overlay.Viewer, bool) {
	if s.Signer == nil {
		return overlay.Viewer{}, false
	}
	c, err := r.Cookie(ViewerCookie)
	if err != nil {
		return overlay.Viewer{}, false
	}
	payload, err := s.Signer.Verify(viewerPurpose, c.Value, s.Now())
	if err != nil {
		return overlay.Viewer{}, false
	}
	var v viewerJSON
	if json.Unmarshal(payload, &v) != nil || v.ID == "" {
		return overlay.Viewer{}, false
	}
	return overlay.Viewer{ID: v.ID, Name: v.Name}, true
}

func (s *Server) handleViewerPost(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name string `json:"name"`
	}
	if !httpx.DecodeJSON(w, r, 1<<10, &req) {
		return
	}
	name, ok := cleanName(req.Name)
	if !ok {
		httpx.WriteError(w, http.StatusUnprocessableEntity, "invalid_name", "a display name is 1 to 32 characters, without control characters")
		return
	}
	// A viewer who renames keeps the id (and so their bans).
	v, had := s.Viewer(r)
	if !had {
		v.ID = newViewerID()
	}
	v.Name = name
	payload, _ := json.Marshal(viewerJSON{ID: v.ID, Name: v.Name})
	exp := s.Now().Add(viewerTTL)
	http.SetCookie(w, &http.Cookie{
		Name: ViewerCookie, Value: s.Signer.Sign(viewerPurpose, payload, exp), Path: "/",
		Expires: exp, MaxAge: int(viewerTTL.Seconds()), HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https",
	})
	httpx.WriteJSON(w, http.StatusOK, viewerJSON{ID: v.ID, Name: v.Name})
}

func (s *Server) handleViewerGet(w http.ResponseWriter, r *http.Request) {
	v, ok := s.Viewer(r)
	if !ok {
		httpx.WriteError(w, http.StatusNotFound, "no_viewer", "no chat name yet: POST /api/viewer {\"name\"}")
		return
	}
	httpx.WriteJSON(w, http.StatusOK, viewerJSON{ID: v.ID, Name: v.Name})
}
