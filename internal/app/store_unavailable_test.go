package app

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/streamd/streamd/internal/testenv"
)

// TestStoreUnavailable503: with Redis down, the routes that look a stream
// up before anything else (overlay socket, WHEP, WHIP, the registry) and the
// cart answer 503 store_unavailable with Retry-After, not 500.
func TestStoreUnavailable503(t *testing.T) {
	srv := testenv.StartRedisServer(t)
	a := startApp(t, func(c *Config) { c.Redis = srv.URL() })
	srv.Kill()
	sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
	for _, rt := range []struct{ method, path, ctype, body string }{
		{"GET", "/ws/nosuch", "", ""},
		{"POST", "/whep/nosuch", "application/sdp", sdp},
		{"POST", "/whip/nosuch", "application/sdp", sdp},
		{"GET", "/api/streams", "", ""},
		{"GET", "/api/streams/nosuch/public", "", ""},
		{"GET", "/api/products", "", ""},
	} {
		req, _ := http.NewRequest(rt.method, a.BaseURL()+rt.path, strings.NewReader(rt.body))
		if rt.ctype != "" {
			req.Header.Set("Content-Type", rt.ctype)
		}
		req.Header.Set("Authorization", "Bearer "+testStaff)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		var body map[string]any
		_ = json.Unmarshal(b, &body)
		if res.StatusCode != 503 || body["error"] != "store_unavailable" || res.Header.Get("Retry-After") == "" {
			t.Errorf("%s %s: %d %s", rt.method, rt.path, res.StatusCode, b)
		}
	}
}
