package streams

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/streamd/streamd/internal/httpx"
	"github.com/streamd/streamd/internal/signer"
)

// Private streams: every route that shows a private stream (WHEP, the
// overlay socket, HLS and replay, the public info) is wrapped in
// RequireViewer. A viewer proves access with one of
//
//   - the stream's publish key (the host watching their own show),
//   - the staff token,
//   - a viewer link: a token signed by the server for "link:<stream>" with
//     an expiry, made by staff with POST /api/streams/{id}/links.
//
// The credential may come as "Authorization: Bearer <cred>", as ?t=<cred>,
// or as the cookie the watch page sets when it is opened with ?t= (so the
// player's WHEP and WebSocket calls carry it without the page handling it).

// Signer signs and checks viewer links (internal/signer.Signer).
type Signer interface {
	Sign(purpose string, payload []byte, exp time.Time) string
	Verify(purpose, token string, now time.Time) ([]byte, error)
}

// Viewer links last DefaultLinkTTL unless staff ask otherwise, and at most
// MaxLinkTTL: a link is a bearer credential that cannot be revoked one by
// one (deleting the stream, or the signing key, revokes them all).
const (
	DefaultLinkTTL = 24 * time.Hour
	MinLinkTTL     = time.Minute
	MaxLinkTTL     = 30 * 24 * time.Hour
)

func linkPurpose(stream string) string { return "link:" + stream }

// LinkCookie is the cookie a viewer link is kept in for one stream.
func LinkCookie(stream string) string { return "streamd_view_" + stream }

// SignLink returns a viewer link token for stream, valid until exp.
func (g *Registry) SignLink(stream string, exp time.Time) string {
	// The payload names the link, so one can be told apart in logs.
	return g.Links.Sign(linkPurpose(stream), []byte(signer.RandomID(8)), exp)
}

// streamParam is the stream a request is about: {stream} on the media and
// page routes, {id} on /api/streams/{id}/...
func streamParam(r *http.Request) string {
	if s := r.PathValue("stream"); s != "" {
		return s
	}
	return r.PathValue("id")
}

// credentials are every credential the request presents, header first.
func credentials(r *http.Request, stream string) []string {
	var out []string
	if t := httpx.BearerToken(r); t != "" {
		out = append(out, t)
	}
	if t := r.URL.Query().Get("t"); t != "" {
		out = append(out, t)
	}
	if c, err := r.Cookie(LinkCookie(stream)); err == nil && c.Value != "" {
		out = append(out, c.Value)
	}
	return out
}

// viewerRefusal says why r may not view rec; "" when it may.
func (g *Registry) viewerRefusal(r *http.Request, rec Record) (status int, code, message string) {
	if !rec.Private {
		return 0, "", ""
	}
	creds := credentials(r, rec.ID)
	if len(creds) == 0 {
		return http.StatusUnauthorized, "private_stream", "stream " + rec.ID + " is private: open it with a viewer link from the shop, or send the publish key or staff token as Authorization: Bearer"
	}
	expired := false
	for _, c := range creds {
		if httpx.TokenEqual(c, rec.PublishKey) || httpx.TokenEqual(c, g.StaffToken) {
			return 0, "", ""
		}
		if g.Links == nil || len(c) > 512 {
			continue
		}
		_, err := g.Links.Verify(linkPurpose(rec.ID), c, time.Now())
		if err == nil {
			return 0, "", ""
		}
		expired = expired || errors.Is(err, signer.ErrExpired)
	}
	if expired {
		return http.StatusForbidden, "link_expired", "this viewer link has expired: ask the shop for a new one"
	}
	return http.StatusForbidden, "invalid_credential", "the credential is not valid for stream " + rec.ID + ": use a current viewer link, the publish key or the staff token"
}

// RequireViewer guards a route that shows the stream named by the path's
// {stream} (or {id}): an unknown stream is a 404, a private one needs a
// viewer credential (401 without one, 403 with a wrong or expired one).
// Public streams pass untouched.
func (g *Registry) RequireViewer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec, ok := g.lookupStream(w, r, streamParam(r))
		if !ok {
			return
		}
		if status, code, msg := g.viewerRefusal(r, rec); status != 0 {
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="streamd"`)
			}
			httpx.WriteError(w, status, code, msg)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// KeepLink wraps a page of a stream (the player): opened with a valid viewer
// link as ?t=, it keeps the link in an HttpOnly cookie, so the page's WHEP,
// WebSocket and HLS requests carry it. The page itself is served either way
// (it shows "private" when its requests are refused).
func (g *Registry) KeepLink(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stream, t := streamParam(r), r.URL.Query().Get("t")
		if t != "" && g.Links != nil && ValidID(stream) && len(t) <= 512 {
			if _, err := g.Links.Verify(linkPurpose(stream), t, time.Now()); err == nil {
				http.SetCookie(w, &http.Cookie{Name: LinkCookie(stream), Value: t, Path: "/", Expires: linkExpiry(t),
					HttpOnly: true, Secure: httpx.Scheme(r) == "https", SameSite: http.SameSiteLaxMode})
			}
		}
		next.ServeHTTP(w, r)
	})
}

// linkExpiry reads the expiry of a verified token (payload.exp.sig).
func linkExpiry(token string) time.Time {
	if parts := strings.Split(token, "."); len(parts) == 3 {
		if sec, err := strconv.ParseInt(parts[1], 10, 64); err == nil {
			return time.Unix(sec, 0)
		}
	}
	return time.Time{}
}

// handleLink makes a viewer link: POST /api/streams/{id}/links {"ttl_s"}.
func (g *Registry) handleLink(w http.ResponseWriter, r *http.Request) {
	if !httpx.RequireStaff(w, r, g.StaffToken) {
		return
	}
	var in struct {
		TTL *int64 `json:"ttl_s"`
	}
	if r.ContentLength != 0 && !httpx.DecodeJSON(w, r, 4<<10, &in) {
		return
	}
	ttl := DefaultLinkTTL
	if in.TTL != nil {
		ttl = time.Duration(*in.TTL) * time.Second
		if ttl < MinLinkTTL || ttl > MaxLinkTTL {
			httpx.WriteError(w, http.StatusUnprocessableEntity, "invalid_ttl", "ttl_s must be from 60 (a minute) to 2592000 (30 days)")
			return
		}
	}
	rec, ok := g.lookupStream(w, r, r.PathValue("id"))
	if !ok {
		return
	}
	if g.Links == nil {
		httpx.WriteError(w, http.StatusNotImplemented, "links_unavailable", "this server has no signing key for viewer links")
		return
	}
	exp := time.Now().Add(ttl).Truncate(time.Second)
	tok := g.SignLink(rec.ID, exp)
	httpx.WriteJSON(w, http.StatusCreated, map[string]any{
		"url":        httpx.BaseURL(r) + "/watch/" + rec.ID + "?t=" + tok,
		"token":      tok,
		"expires_at": exp.UTC(),
		"private":    rec.Private,
	})
}
