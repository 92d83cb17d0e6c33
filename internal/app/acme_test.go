package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamd/streamd/internal/testenv"
)

// TestACMEWithPebble: with --acme-domain the server gets its certificate
// from a real ACME server (Let's Encrypt's pebble, started here), answering
// the HTTP-01 challenge on --acme-http, caches it in the data dir, and
// redirects plain HTTP to HTTPS.
func TestACMEWithPebble(t *testing.T) {
	bin := testenv.Pebble(t)
	dnsBin := testenv.LookPath(t, "pebble-challtestsrv", "go install github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@v2.10.3")
	pebbleCert, pebbleKey, pebblePool := selfSigned(t, "localhost")
	data := t.TempDir()
	dirPort, mgmtPort := strconv.Itoa(freePort(t)), strconv.Itoa(freePort(t))
	a := startApp(t, func(c *Config) {
		c.Data = data
		c.ACMEDomain = "shop.test"
		c.ACMEHTTP = "127.0.0.1:0"
		c.ACMEDirectory = "https://127.0.0.1:" + dirPort + "/dir"
		c.ACMEHTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pebblePool}}, Timeout: 30 * time.Second}
	})
	_, httpPort, _ := net.SplitHostPort(a.ACMEHTTPAddr())
	_, tlsPort, _ := net.SplitHostPort(a.HTTPAddr())

	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress": "127.0.0.1:" + dirPort, "managementListenAddress": "127.0.0.1:" + mgmtPort,
		"certificate": pebbleCert, "privateKey": pebbleKey,
		"httpPort": json.Number(httpPort), "tlsPort": freePort(t),
		"externalAccountBindingRequired": false, "keyAlgorithm": "ecdsa",
		"profiles": map[string]any{"default": map[string]any{"description": "test", "validityPeriod": 7776000}},
	}}
	cfgPath := filepath.Join(t.TempDir(), "pebble.json")
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	// pebble's DNS: every name is 127.0.0.1 (autocert wants a dotted name,
	// which the system resolver here does not know).
	dnsPort := strconv.Itoa(freePort(t))
	dns := exec.CommandContext(ctx, dnsBin, "-dnsserver", "127.0.0.1:"+dnsPort, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "", "-management", "127.0.0.1:"+strconv.Itoa(freePort(t)))
	if err := dns.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = dns.Wait() })
	cmd := exec.CommandContext(ctx, bin, "-config", cfgPath, "-dnsserver", "127.0.0.1:"+dnsPort)
	// No random sleeps in validation, no nonces refused at random.
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	pc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pebblePool}}, Timeout: 5 * time.Second}
	var root []byte
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if res, err := pc.Get("https://127.0.0.1:" + mgmtPort + "/roots/0"); err == nil {
			root, _ = io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not start:\n%s", logs.String())
		}
	}
	// Pebble issues from a root it makes at start: trust only that.
	issued := x509.NewCertPool()
	if !issued.AppendCertsFromPEM(root) {
		t.Fatalf("pebble root: %q", root)
	}

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: issued, ServerName: "shop.test"}}, Timeout: 60 * time.Second}
	start := time.Now()
	res, err := client.Get(fmt.Sprintf("https://127.0.0.1:%s/healthz", tlsPort))
	if err != nil {
		t.Fatalf("https with the ACME certificate: %v\npebble:\n%s", err, logs.String())
	}
	res.Body.Close()
	if res.StatusCode != 200 || len(res.TLS.PeerCertificates) == 0 || res.TLS.PeerCertificates[0].DNSNames[0] != "shop.test" {
		t.Fatalf("healthz %d %v", res.StatusCode, res.TLS.PeerCertificates)
	}
	t.Logf("certificate from pebble in %v (issuer %s)", time.Since(start).Round(time.Millisecond), res.TLS.PeerCertificates[0].Issuer)
	if _, err := os.Stat(filepath.Join(data, "acme", "shop.test")); err != nil {
		t.Fatalf("certificate not cached in the data dir: %v", err)
	}
	// Plain HTTP on the challenge port is sent to HTTPS.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err = noFollow.Get("http://" + a.ACMEHTTPAddr() + "/watch/demo")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if loc := res.Header.Get("Location"); res.StatusCode != http.StatusFound || !strings.HasPrefix(loc, "https://shop.test:"+tlsPort+"/watch/demo") {
		t.Fatalf("plain HTTP: %d %q, want a redirect to HTTPS", res.StatusCode, loc)
	}
}
