package images

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/streamd/streamd/internal/testenv"
)

// Redis DB of this package: 0 (the others are taken, see docs/CONVENTIONS.md).

func pngOf(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.NRGBA{uint8(x), uint8(y), 120, 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestUploadAndServe: a staff upload is resized to the page sizes and
// served from either store; bad uploads get clear errors.
func TestUploadAndServe(t *testing.T) {
	stores := map[string]Store{"dir": DirStore{Dir: t.TempDir()}, "redis": RedisStore{C: testenv.Redis(t, 0), MaxBytes: 256 << 10}}
	for name, st := range stores {
		t.Run(name, func(t *testing.T) {
			mux := http.NewServeMux()
			(&Server{Store: st, StaffToken: "tok"}).Register(mux)
			srv := httptest.NewServer(mux)
			defer srv.Close()
			post := func(token string, body []byte) (*http.Response, string) {
				req, _ := http.NewRequest("POST", srv.URL+"/api/images", bytes.NewReader(body))
				req.Header.Set("Content-Type", "image/png")
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				b, _ := io.ReadAll(res.Body)
				return res, string(b)
			}
			if res, _ := post("", pngOf(t, 10, 10)); res.StatusCode != 401 {
				t.Fatalf("upload without token: %d", res.StatusCode)
			}
			if res, body := post("tok", []byte("not an image")); res.StatusCode != 422 || !strings.Contains(body, "bad_image") {
				t.Fatalf("garbage upload: %d %s", res.StatusCode, body)
			}
			res, body := post("tok", pngOf(t, 1600, 800))
			if res.StatusCode != 201 || !strings.Contains(body, `"width":640`) || !strings.Contains(body, `"height":320`) {
				t.Fatalf("upload: %d %s", res.StatusCode, body)
			}
			loc := res.Header.Get("Location")
			for url, want := range map[string]image.Point{loc: {640, 320}, strings.TrimSuffix(loc, ".jpg") + "-s.jpg": {192, 96}} {
				g, err := http.Get(srv.URL + url)
				if err != nil {
					t.Fatal(err)
				}
				img, err := jpeg.Decode(g.Body)
				g.Body.Close()
				if err != nil || g.Header.Get("Content-Type") != "image/jpeg" || !strings.Contains(g.Header.Get("Cache-Control"), "immutable") {
					t.Fatalf("GET %s: %v %v", url, err, g.Header)
				}
				if img.Bounds().Size() != want {
					t.Fatalf("GET %s: %v, want %v", url, img.Bounds().Size(), want)
				}
			}
			// A small image is not scaled up; the same bytes give the same URL.
			res2, body2 := post("tok", pngOf(t, 100, 50))
			res3, _ := post("tok", pngOf(t, 100, 50))
			if !strings.Contains(body2, `"width":100`) || res2.Header.Get("Location") != res3.Header.Get("Location") {
				t.Fatalf("small upload: %s", body2)
			}
			for _, bad := range []string{"/images/nosuch.jpg", "/images/0123456789abcdef0123456789abcdef.jpg", "/images/..%2fstreamd.db"} {
				if g, err := http.Get(srv.URL + bad); err != nil || g.StatusCode != 404 {
					t.Fatalf("GET %s: %v %v", bad, err, g.StatusCode)
				}
			}
		})
	}
}
