package turn

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	pionturn "github.com/pion/turn/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

var loopback = net.IPv4(127, 0, 0, 1)

func secret() []byte { return SecretFrom([]byte("0123456789abcdef0123456789abcdef")) }

func startServer(t *testing.T, reg prometheus.Registerer, tlsCfg *tls.Config) *Server {
	t.Helper()
	s := &Server{Addr: "127.0.0.1:0", Secret: secret(), RelayIP: loopback, Registerer: reg}
	if tlsCfg != nil {
		s.TLSAddr, s.TLS = "127.0.0.1:0", tlsCfg
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// client is a real TURN client over UDP (or over conn when given).
func client(t *testing.T, s *Server, user, pass string, conn net.PacketConn) *pionturn.Client {
	t.Helper()
	if conn == nil {
		var err error
		if conn, err = net.ListenPacket("udp4", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = conn.Close() })
	c, err := pionturn.NewClient(&pionturn.ClientConfig{
		TURNServerAddr: s.UDPAddr().String(), STUNServerAddr: s.UDPAddr().String(),
		Username: user, Password: pass, Realm: "streamd", Conn: conn, RTO: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestAllocateWithMintedCredentials(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := startServer(t, reg, nil)
	user, pass := s.Credentials("viewer1", time.Now())
	c := client(t, s, user, pass, nil)
	relay, err := c.Allocate()
	if err != nil {
		t.Fatalf("allocate with good credentials: %v", err)
	}
	defer relay.Close()
	if ip := relay.LocalAddr().(*net.UDPAddr).IP; !ip.Equal(loopback) {
		t.Fatalf("relay address %v, want the configured relay IP", ip)
	}
	// Relayed to streamd itself: allowed, and data flows.
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if _, err := relay.WriteTo([]byte("hello"), peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	_ = peer.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, from, err := peer.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("relayed data: %q %v", buf[:n], err)
	}
	if from.(*net.UDPAddr).Port != relay.LocalAddr().(*net.UDPAddr).Port {
		t.Fatalf("data came from %v, not the relay %v", from, relay.LocalAddr())
	}
	if got := value(s.m.allocations); got != 1 {
		t.Fatalf("allocations gauge %v, want 1", got)
	}
}

func TestRefusesBadAndExpiredCredentials(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := startServer(t, reg, nil)
	goodUser, goodPass := s.Credentials("v", time.Now())
	expUser, expPass := Mint(s.Secret, "v", time.Now().Add(-time.Second))
	otherUser, otherPass := Mint(SecretFrom([]byte("another key, another cluster.....")), "v", time.Now().Add(time.Hour))
	cases := []struct{ name, user, pass, reason string }{
		{"wrong password", goodUser, goodPass + "x", "bad_credentials"},
		{"signed by another secret", otherUser, otherPass, "bad_credentials"},
		{"expired", expUser, expPass, "expired"},
		{"not REST style", "alice", "secret", "bad_credentials"},
		{"expiry pushed forward", strings.Replace(expUser, strings.Split(expUser, ":")[0], "99999999999", 1), expPass, "bad_credentials"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := value(s.m.refused.WithLabelValues(tc.reason))
			c := client(t, s, tc.user, tc.pass, nil)
			if relay, err := c.Allocate(); err == nil {
				relay.Close()
				t.Fatal("allocation accepted")
			}
			if got := value(s.m.refused.WithLabelValues(tc.reason)); got <= before {
				t.Fatalf("refused{reason=%s} did not grow", tc.reason)
			}
		})
	}
	if got := value(s.m.allocations); got != 0 {
		t.Fatalf("allocations gauge %v after refusals", got)
	}
}

// Credentials need only be valid when the allocation is made: a viewer
// keeps its relay (permissions, refreshes) after they expire.
func TestAllocationOutlivesCredentials(t *testing.T) {
	s := startServer(t, nil, nil)
	user, pass := Mint(s.Secret, "v", time.Now().Add(time.Second))
	c := client(t, s, user, pass, nil)
	relay, err := c.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	time.Sleep(2100 * time.Millisecond)
	if err := c.CreatePermission(&net.UDPAddr{IP: loopback, Port: 9}); err != nil {
		t.Fatalf("permission after the credentials expired: %v", err)
	}
	// A new allocation with them is refused.
	c2 := client(t, s, user, pass, nil)
	if r, err := c2.Allocate(); err == nil {
		r.Close()
		t.Fatal("new allocation with expired credentials accepted")
	}
}

// The relay only reaches streamd: a permission for another host is refused.
func TestRefusesPeersOtherThanStreamd(t *testing.T) {
	s := startServer(t, nil, nil)
	user, pass := s.Credentials("v", time.Now())
	c := client(t, s, user, pass, nil)
	relay, err := c.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	if err := c.CreatePermission(&net.UDPAddr{IP: net.IPv4(10, 9, 8, 7), Port: 8189}); err == nil {
		t.Fatal("permission to a host that is not streamd accepted")
	}
	if got := value(s.m.refused.WithLabelValues("peer_not_allowed")); got < 1 {
		t.Fatalf("peer_not_allowed = %v", got)
	}
}

func TestAllocateOverTCPAndTLS(t *testing.T) {
	s := startServer(t, nil, selfSigned(t))
	user, pass := s.Credentials("v", time.Now())
	tcp, err := net.Dial("tcp", s.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := client(t, s, user, pass, pionturn.NewSTUNConn(tcp))
	relay, err := c.Allocate()
	if err != nil {
		t.Fatalf("allocate over TCP: %v", err)
	}
	relay.Close()

	tc, err := tls.Dial("tcp", s.TLSAddrBound(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the test's own self-signed cert
	if err != nil {
		t.Fatal(err)
	}
	c2 := client(t, s, user, pass, pionturn.NewSTUNConn(tc))
	relay, err = c2.Allocate()
	if err != nil {
		t.Fatalf("allocate over TLS: %v", err)
	}
	relay.Close()
}

func TestLinks(t *testing.T) {
	s := startServer(t, nil, selfSigned(t))
	links := s.Links("media.example.com", time.Now())
	if len(links) != 3 {
		t.Fatalf("links %q", links)
	}
	_, port, _ := net.SplitHostPort(s.UDPAddr().String())
	for i, want := range []string{"<turn:media.example.com:" + port + "?transport=udp>", "<turn:media.example.com:" + port + "?transport=tcp>", "<turns:"} {
		if !strings.HasPrefix(links[i], want) || !strings.Contains(links[i], `rel="ice-server"`) || !strings.Contains(links[i], `username="`) || !strings.Contains(links[i], `credential="`) {
			t.Fatalf("link %d = %q", i, links[i])
		}
	}
	if l := s.Links("::1", time.Now())[0]; !strings.HasPrefix(l, "<turn:[::1]:") {
		t.Fatalf("IPv6 host not bracketed: %q", l)
	}
}

func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{loopback}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}

// value reads a gauge or counter.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	if d.Gauge != nil {
		return d.Gauge.GetValue()
	}
	return d.Counter.GetValue()
}
