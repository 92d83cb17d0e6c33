package showroom

import (
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
	png, err := qrcode.Encode(visitURL(r, id), qrcode.Medium, size)
	if err != nil {
		httpx.WriteError(w, http.StatusInternalServerError, "internal", "could not draw the code")
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(png)
}

// visitURL is the absolute URL of the visit page as the client reached this
// server.
func visitURL(r *http.Request, id string) string {
	return httpx.BaseURL(r) + "/visit/" + id
}
