package app

import (
	"net/http"
	"testing"
	"time"

	"github.com/streamd/streamd/internal/testenv"
)

type healthBody struct {
	Status string    `json:"status"`
	Error  string    `json:"error"`
	Store  component `json:"store"`
	Bus    component `json:"bus"`
}

func getHealth(t *testing.T, url string) (int, healthBody, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var b healthBody
	if err := jsonDecode(res.Body, &b); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return res.StatusCode, b, res.Header.Get("Retry-After")
}

// waitHealth polls until /healthz and /readyz answer want, and returns the
// /healthz body and how long that took.
func waitHealth(t *testing.T, base string, want int, within time.Duration) (healthBody, time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		hc, hb, retry := getHealth(t, base+"/healthz")
		rc, rb, _ := getHealth(t, base+"/readyz")
		if hc == want && rc == want {
			if want == 503 && (retry == "" || rb.Error != "not_ready") {
				t.Fatalf("degraded without Retry-After (%q) or not_ready (%+v)", retry, rb)
			}
			return hb, time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("after %v: /healthz %d %+v, /readyz %d %+v; want %d", within, hc, hb, rc, rb, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestHealthRedisOutage: /healthz and /readyz follow a Redis the test
// starts, kills and restarts: 200 with the store and bus up, 503 naming
// both while Redis is down, 200 again once it is back, without a restart.
func TestHealthRedisOutage(t *testing.T) {
	rs := testenv.StartRedisServer(t)
	a := startApp(t, func(c *Config) { c.Redis = rs.URL() })
	base := a.BaseURL()

	hb, _ := waitHealth(t, base, 200, 5*time.Second)
	if hb.Status != "ok" || hb.Store.Kind != "redis" || !hb.Store.OK || hb.Bus.Kind != "redis" || !hb.Bus.OK {
		t.Fatalf("healthy: %+v", hb)
	}
	_, rb, _ := getHealth(t, base+"/readyz")
	if rb.Status != "ready" {
		t.Fatalf("/readyz: %+v", rb)
	}

	rs.Kill()
	hb, took := waitHealth(t, base, 503, 5*time.Second)
	if hb.Status != "degraded" || hb.Store.OK || hb.Store.Error == "" || hb.Bus.OK || hb.Bus.Error == "" {
		t.Fatalf("during the outage: %+v", hb)
	}
	t.Logf("outage reported after %v: %+v", took, hb)

	rs.Start()
	hb, took = waitHealth(t, base, 200, 15*time.Second)
	if !hb.Store.OK || !hb.Bus.OK {
		t.Fatalf("after the outage: %+v", hb)
	}
	t.Logf("recovery reported after %v", took)
}

// TestHealthEmbeddedStore: with the embedded store /healthz names bbolt
// and the in-process bus, and reports a store that can no longer be read.
func TestHealthEmbeddedStore(t *testing.T) {
	a := startApp(t, nil)
	hb, _ := waitHealth(t, a.BaseURL(), 200, 5*time.Second)
	if hb.Store.Kind != "bbolt" || !hb.Store.OK || hb.Bus.Kind != "memory" || !hb.Bus.OK {
		t.Fatalf("healthy: %+v", hb)
	}
	_ = a.db.Close()
	hb, _ = waitHealth(t, a.BaseURL(), 503, 5*time.Second)
	if hb.Store.OK || hb.Store.Error == "" || !hb.Bus.OK {
		t.Fatalf("closed store: %+v", hb)
	}
}
