package app

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/streamd/streamd/internal/browsertest"
)

// selfSigned writes a self-signed certificate for names (and 127.0.0.1)
// and returns the cert and key paths and a pool trusting it.
func selfSigned(t *testing.T, names ...string) (string, string, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: names[0]},
		DNSNames: names, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return certPath, keyPath, pool
}

// TestHTTPSFromPhone: with --tls-cert/--tls-key the server speaks HTTPS
// only, and a phone-sized Chromium that reaches it under a LAN-style name
// (host-resolver-rules; the self-signed certificate accepted) gets the
// camera — a secure page — and goes live from /publish.
func TestHTTPSFromPhone(t *testing.T) {
	cert, key, pool := selfSigned(t, "shop.test")
	if _, err := New(Config{HTTP: "127.0.0.1:0", WebRTCUDP: "127.0.0.1:0", Data: t.TempDir(), TLSCert: cert}, nil); err == nil || !strings.Contains(err.Error(), "--tls-key") {
		t.Fatalf("cert without key: %v", err)
	}
	a := startApp(t, func(c *Config) { c.TLSCert, c.TLSKey = cert, key })
	if !strings.HasPrefix(a.BaseURL(), "https://") {
		t.Fatalf("BaseURL %s", a.BaseURL())
	}
	_, port, _ := net.SplitHostPort(a.HTTPAddr())
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "shop.test"}}, Timeout: 5 * time.Second}
	res, err := client.Get(a.BaseURL() + "/healthz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("https healthz: %v %v", res, err)
	}
	res.Body.Close()
	if res, err := http.Get("http://" + a.HTTPAddr() + "/healthz"); err == nil && res.StatusCode == 200 {
		t.Fatal("plain HTTP served on the HTTPS port")
	}
	var cfg struct {
		PublicURL string `json:"public_url"`
	}
	r2, err := client.Get(a.BaseURL() + "/api/config")
	if err != nil {
		t.Fatal(err)
	}
	_ = jsonDecode(r2.Body, &cfg)
	r2.Body.Close()
	if !strings.HasPrefix(cfg.PublicURL, "https://") {
		t.Fatalf("public_url %q over TLS", cfg.PublicURL)
	}

	var out struct {
		PublishKey string `json:"publish_key"`
	}
	req, _ := http.NewRequest("POST", a.BaseURL()+"/api/streams", strings.NewReader(`{"id":"phone","title":"Phone"}`))
	req.Header.Set("Authorization", "Bearer "+testStaff)
	req.Header.Set("Content-Type", "application/json")
	res, err = client.Do(req)
	if err != nil || res.StatusCode != 201 {
		t.Fatalf("create stream over https: %v %v", res, err)
	}
	_ = jsonDecode(res.Body, &out)
	res.Body.Close()

	b := browsertest.Launch(t, chromedp.Flag("host-resolver-rules", "MAP shop.test 127.0.0.1"), chromedp.Flag("ignore-certificate-errors", true))
	phone := b.Tab(t)
	viewport(t, phone, 390, 844, 3)
	if err := browsertest.Open(phone, fmt.Sprintf("https://shop.test:%s/publish/phone", port), "#form"); err != nil {
		t.Fatal(err)
	}
	if ok := eval[bool](t, phone, `window.isSecureContext && !!navigator.mediaDevices && typeof navigator.mediaDevices.getUserMedia === 'function'`); !ok {
		t.Fatal("the publish page is not a secure context: no camera")
	}
	// Going live with the camera, the way the host does: the form.
	eval[bool](t, phone, fmt.Sprintf(`(() => { document.getElementById('key').value = %q; document.getElementById('source').value = 'camera'; document.getElementById('form').requestSubmit(); return true })()`, out.PublishKey))
	waitJS(t, phone, 20*time.Second, `document.getElementById('status').textContent.startsWith('Live')`)
	var st struct{ Live bool }
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !st.Live; time.Sleep(100 * time.Millisecond) {
		req, _ := http.NewRequest("GET", a.BaseURL()+"/api/streams/phone", nil)
		req.Header.Set("Authorization", "Bearer "+testStaff)
		r, err := client.Do(req)
		if err == nil {
			_ = jsonDecode(r.Body, &st)
			r.Body.Close()
		}
	}
	if !st.Live {
		t.Fatal("the phone's camera did not go live over HTTPS")
	}
}
