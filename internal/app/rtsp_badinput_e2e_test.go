// End-to-end tests of the RTSP server's answers to bad requests.

package app

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
)

func statusCode(err error) base.StatusCode {
	var bad liberrors.ErrClientBadStatusCode
	if errors.As(err, &bad) {
		return bad.Code
	}
	return 0
}

// TestRTSPBadInput: wrong keys, unknown paths, private streams and garbage
// get clear answers and the server keeps serving.
func TestRTSPBadInput(t *testing.T) {
	a := startRTSPApp(t)
	key := createStream(t, a, "good")
	if code := api(t, "POST", a.BaseURL()+"/api/streams", testStaff, map[string]any{"id": "secret", "private": true}, nil); code != 201 {
		t.Fatalf("create private stream: %d", code)
	}
	var secret struct {
		PublishKey string `json:"publish_key"`
	}
	api(t, "GET", a.BaseURL()+"/api/streams/secret", testStaff, nil, &secret)
	addr := a.RTSPAddr()
	desc := &description.Session{Medias: []*description.Media{{
		Type:    description.MediaTypeVideo,
		Formats: []format.Format{&format.H264{PayloadTyp: 96, PacketizationMode: 1}},
	}}}
	record := func(url string) error {
		c := &gortsplib.Client{}
		err := c.StartRecording(url, desc)
		if err == nil {
			c.Close()
		}
		return err
	}
	describe := func(url string) error {
		u, _ := base.ParseURL(url)
		c := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host}
		if err := c.Start2(); err != nil {
			return err
		}
		defer c.Close()
		_, _, err := c.Describe(u)
		return err
	}
	garbage := func(b []byte) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer conn.Close()
		_, _ = conn.Write(b)
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		reply, err := io.ReadAll(conn)
		var ne net.Error // closed (EOF or reset when unread garbage remains), not left open
		if (errors.As(err, &ne) && ne.Timeout()) || !strings.HasPrefix(string(reply), "RTSP/1.0 400") {
			t.Errorf("garbage %q: got %q, %v; want a 400 and the connection closed", b[:min(len(b), 16)], reply, err)
		}
	}

	for _, tc := range []struct {
		name string
		err  error
		want base.StatusCode
	}{
		{"wrong key", record("rtsp://pub:wrong@" + addr + "/good"), base.StatusUnauthorized},
		{"no key", record("rtsp://" + addr + "/good"), base.StatusUnauthorized},
		{"unknown stream", record("rtsp://pub:" + key + "@" + addr + "/nope"), base.StatusNotFound},
		{"nested path", record("rtsp://pub:" + key + "@" + addr + "/good/more"), base.StatusNotFound},
		{"read unknown", describe("rtsp://" + addr + "/nope"), base.StatusNotFound},
		{"read not live", describe("rtsp://" + addr + "/good"), base.StatusNotFound},
		{"read private without key", describe("rtsp://" + addr + "/secret"), base.StatusUnauthorized},
		{"read private with wrong key", describe("rtsp://x:" + key + "@" + addr + "/secret"), base.StatusUnauthorized},
		{"read private with key, not live", describe("rtsp://x:" + secret.PublishKey + "@" + addr + "/secret"), base.StatusNotFound},
	} {
		if got := statusCode(tc.err); got != tc.want {
			t.Errorf("%s: got %v (%v), want %d", tc.name, got, tc.err, tc.want)
		}
	}
	garbage([]byte("\x00\x01\x02\x03garbage garbage\r\n\r\n"))
	garbage(bytes.Repeat([]byte{0xff}, 8192))
	garbage([]byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")) // a TLS hello
	garbage([]byte("$\x00\x05\x00hello"))

	// Still serving: a good publisher gets in and goes live.
	c := &gortsplib.Client{}
	if err := c.StartRecording("rtsp://pub:"+key+"@"+addr+"/good", desc); err != nil {
		t.Fatalf("publish after bad input: %v", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	waitFor(ctx, t, "live", func() bool { return a.SFU.Live("good") })
	if m := scrape(t, a, "streamd_rtsp_auth_failures_total"); m < 2 {
		t.Errorf("auth failures metric %v, want >= 2", m)
	}
}

// metricSample is one sample line of /metrics and its value.
type metricSample struct {
	line  string
	value float64
}

// metricSamples returns the samples of the metric called name (any labels)
// on a's /metrics.
func metricSamples(t *testing.T, a *App, name string) []metricSample {
	t.Helper()
	res, err := http.Get(a.BaseURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out []metricSample
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest != "" && rest[0] != ' ' && rest[0] != '{' {
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		out = append(out, metricSample{line, v})
	}
	return out
}

// scrape returns the sum of a metric's samples on /metrics.
func scrape(t *testing.T, a *App, name string) float64 {
	t.Helper()
	sum := 0.0
	for _, s := range metricSamples(t, a, name) {
		sum += s.value
	}
	return sum
}
