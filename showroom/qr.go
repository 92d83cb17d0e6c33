package showroom

import (
	"net"
	"net/http"
	"strconv"

	qrcode "github.com/skip2/go-qrcode"

	"github.com/streamd/streamd/internal/httpx"
)

// Showroom visitors reach the live card by scanning a code on a shelf or a
// screen: GET /visit/{showroom}/qr.png encodes this server's visit page.

// registerQR mounts the QR code route.
func (s *Server) registerQR(mux *http.ServeMux) {
	mux.HandleFunc("GET /visit/{showroom}/qr.png", s.handleQR)
}

func (s *Server) handleQR(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("showroom")
	if !s.requireStream(w, r, id, "showroom") {
		return
	}
	size := 512
	if v := r.URL.Query().Get("size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 64 || n > 2048 {
			httpx.WriteError(w, http.StatusBadRequest, "invalid", "size must be a number of pixels from 64 to 2048")
			return
		}
		size = n
	}
	png, err := qrcode.Encode(s.visitURL(r, id), qrcode.Medium, size)
	if err != nil {
		httpx.WriteError(w, http.StatusInternalServerError, "internal", "could not draw the code")
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(png)
}

// visitURL is the absolute URL of the visit page for a phone: under
// PublicURL when set; else as the client reached this server (behind a
// proxy, X-Forwarded-Proto/Host say how), unless that was localhost, which
// on a visitor's phone names the phone: then LANURL.
func (s *Server) visitURL(r *http.Request, id string) string {
	if s.PublicURL != "" {
		return s.PublicURL + "/visit/" + id
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p == "https" || p == "http" {
		scheme = p
	}
	host := r.Host
	if h := r.Header.Get("X-Forwarded-Host"); h != "" {
		host = h
	}
	if s.LANURL != nil && isLoopbackHost(host) {
		return s.LANURL() + "/visit/" + id
	}
	return scheme + "://" + host + "/visit/" + id
}

func isLoopbackHost(hostport string) bool {
	h := hostport
	if hh, _, err := net.SplitHostPort(hostport); err == nil {
		h = hh
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
