// Package images keeps the product photos staff upload from the console:
// POST /api/images (staff; JPEG, PNG, GIF or WebP) decodes the upload,
// resizes it to the sizes the pages show and stores the JPEGs by content
// hash; GET /images/{name} serves them with a long cache lifetime (a new
// photo is a new name).
//
// Where the bytes live is a Store: a directory under the data dir (one
// node), or Redis (a cluster: every node serves every image), capped per
// image so a cluster's Redis never fills with photos.
package images

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // decoders for uploads
	"image/jpeg"
	_ "image/png"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"

	"golang.org/x/image/draw"
	_ "golang.org/x/image/webp"

	"github.com/streamd/streamd/internal/httpx"
)

// Sizes are the longest edges stored for each upload: Large for product
// tiles and the buy sheet (≈300 CSS px at up to 2× density), Small for the
// cards on the video (72–88 CSS px at up to 2×).
const (
	Large = 640
	Small = 192
)

// ErrNotFound: no image by that name.
var ErrNotFound = errors.New("image not found")

// Store keeps encoded images by name.
type Store interface {
	Put(ctx context.Context, name string, b []byte) error
	Get(ctx context.Context, name string) ([]byte, error)
}

// Server serves uploads and images. Set the fields, then Register.
type Server struct {
	Store      Store
	StaffToken string
	// MaxUpload caps an upload's bytes (default 15 MiB: a phone photo).
	MaxUpload int64
	// MaxPixels caps the decoded size (default 40 megapixels).
	MaxPixels int
	Logger    *slog.Logger
}

// Register mounts POST /api/images and GET /images/{name}.
func (s *Server) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/images", s.handleUpload)
	mux.HandleFunc("GET /images/{name}", s.handleGet)
}

// Uploaded is the answer to an upload.
type Uploaded struct {
	URL      string `json:"url"`       // Large: what a product's images list
	SmallURL string `json:"small_url"` // Small
	Width    int    `json:"width"`
	Height   int    `json:"height"`
	Bytes    int    `json:"bytes"`
}

var nameRE = regexp.MustCompile(`^[0-9a-f]{32}(-s)?\.jpg$`)

func (s *Server) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request) {
	if !httpx.RequireStaff(w, r, s.StaffToken) {
		return
	}
	limit := s.MaxUpload
	if limit <= 0 {
		limit = 15 << 20
	}
	body, err := httpx.ReadBody(r, limit)
	if errors.Is(err, httpx.ErrBodyTooLarge) {
		httpx.WriteError(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("the image is over %d MiB: export a smaller one", limit>>20))
		return
	}
	if err != nil {
		httpx.WriteError(w, http.StatusBadRequest, "bad_body", "could not read the upload")
		return
	}
	up, err := s.Save(r.Context(), body)
	var bad badImage
	if errors.As(err, &bad) {
		httpx.WriteError(w, http.StatusUnprocessableEntity, "bad_image", string(bad))
		return
	}
	if err != nil {
		s.log().Error("images: save", "err", err)
		httpx.WriteError(w, http.StatusServiceUnavailable, "store_failed", "could not store the image: try again")
		return
	}
	w.Header().Set("Location", up.URL)
	httpx.WriteJSON(w, http.StatusCreated, up)
}

type badImage string

func (b badImage) Error() string { return string(b) }

// Save decodes an image, resizes it to Large and Small and stores both.
// The same picture uploaded twice gets the same URL.
func (s *Server) Save(ctx context.Context, b []byte) (Uploaded, error) {
	maxPx := s.MaxPixels
	if maxPx <= 0 {
		maxPx = 40e6
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return Uploaded{}, badImage("not a JPEG, PNG, GIF or WebP image")
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width*cfg.Height > maxPx {
		return Uploaded{}, badImage(fmt.Sprintf("the image is %d×%d: at most %d megapixels", cfg.Width, cfg.Height, maxPx/1e6))
	}
	src, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return Uploaded{}, badImage("the image could not be decoded: " + err.Error())
	}
	sum := sha256.Sum256(b)
	base := hex.EncodeToString(sum[:16])
	large, lw, lh, err := encode(src, Large)
	if err != nil {
		return Uploaded{}, err
	}
	small, _, _, err := encode(src, Small)
	if err != nil {
		return Uploaded{}, err
	}
	if err := s.Store.Put(ctx, base+".jpg", large); err != nil {
		return Uploaded{}, err
	}
	if err := s.Store.Put(ctx, base+"-s.jpg", small); err != nil {
		return Uploaded{}, err
	}
	return Uploaded{URL: "/images/" + base + ".jpg", SmallURL: "/images/" + base + "-s.jpg", Width: lw, Height: lh, Bytes: len(large)}, nil
}

// encode scales src so its longest edge is at most edge (never up) and
// encodes it as a JPEG on white (transparent PNGs get no black background).
func encode(src image.Image, edge int) ([]byte, int, int, error) {
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	if w > edge || h > edge {
		if w >= h {
			w, h = edge, max(1, h*edge/b.Dx())
		} else {
			w, h = max(1, w*edge/b.Dy()), edge
		}
	}
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(dst, dst.Bounds(), image.White, image.Point{}, draw.Src)
	draw.CatmullRom.Scale(dst, dst.Bounds(), src, b, draw.Over, nil)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, dst, &jpeg.Options{Quality: 85}); err != nil {
		return nil, 0, 0, fmt.Errorf("encode jpeg: %w", err)
	}
	return buf.Bytes(), w, h, nil
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !nameRE.MatchString(name) {
		httpx.WriteError(w, http.StatusNotFound, "not_found", "no such image")
		return
	}
	b, err := s.Store.Get(r.Context(), name)
	if errors.Is(err, ErrNotFound) {
		httpx.WriteError(w, http.StatusNotFound, "not_found", "no such image")
		return
	}
	if err != nil {
		s.log().Error("images: get", "name", name, "err", err)
		httpx.WriteError(w, http.StatusServiceUnavailable, "store_failed", "could not read the image: try again")
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	// Names are content hashes: an image never changes under its name.
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	_, _ = w.Write(b)
}
