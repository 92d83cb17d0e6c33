// Package turn is streamd's embedded TURN server (pion/turn) for viewers
// and publishers whose network blocks UDP or direct connections: it relays
// their media to streamd's own WebRTC port, and nowhere else.
//
// Credentials are short-lived and stateless, in the TURN REST style that
// coturn and browsers' WHIP/WHEP clients know: the username is
// "<expiry unix>:<id>", the password base64(HMAC-SHA1(secret, username)).
// Any node holding the secret verifies them, so a cluster that shares its
// signing key (internal/signer) shares its TURN secret too.
package turn

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // the TURN REST credential format is HMAC-SHA1 (what clients and coturn expect)
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/logging"
	"github.com/pion/stun/v4"
	pionturn "github.com/pion/turn/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// Server is the embedded TURN server. Configure the exported fields, then
// Start; Close stops it.
type Server struct {
	// Addr is where TURN listens, on UDP and TCP both (e.g. ":3478").
	Addr string
	// TLSAddr and TLS add TURN over TLS (turns:) when a certificate is
	// configured; empty or nil: no TLS listener.
	TLSAddr string
	TLS     *tls.Config
	// Secret signs the credentials (at least 32 bytes; see SecretFrom).
	Secret []byte
	// RelayIP is the address put in relay candidates: one streamd's
	// WebRTC port can reach (the host's, or the --webrtc-ip address).
	RelayIP net.IP
	// Relayed traffic may go only to streamd itself: the host's own
	// addresses, RelayIP and Peers (e.g. the advertised --webrtc-ip
	// addresses). Anything else is refused, so the relay cannot be used to
	// reach other hosts.
	Peers []net.IP
	// TTL is how long minted credentials may start an allocation
	// (default 10 min). An allocation made in time is kept alive past it.
	TTL        time.Duration
	Realm      string // default "streamd"
	Registerer prometheus.Registerer
	Logger     *slog.Logger

	srv     *pionturn.Server
	udp     net.PacketConn
	tcp     net.Listener
	tlsLn   net.Listener
	peers   map[string]bool
	m       metrics
	closeMu sync.Once
}

type metrics struct {
	allocations prometheus.Gauge
	made        *prometheus.CounterVec
	refused     *prometheus.CounterVec
}

// SecretFrom derives the TURN secret from the server's signing key, so the
// key itself never leaves the process and a cluster agrees on the secret.
func SecretFrom(signingKey []byte) []byte {
	m := hmac.New(sha256.New, signingKey)
	m.Write([]byte("streamd turn rest secret v1"))
	return m.Sum(nil)
}

// Start listens and serves.
func (s *Server) Start() (err error) {
	if len(s.Secret) < 32 {
		return fmt.Errorf("turn: secret of %d bytes, need 32", len(s.Secret))
	}
	if s.RelayIP == nil {
		return errors.New("turn: RelayIP is not set")
	}
	if s.TTL == 0 {
		s.TTL = 10 * time.Minute
	}
	if s.Realm == "" {
		s.Realm = "streamd"
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	s.peers = map[string]bool{s.RelayIP.String(): true}
	for _, ip := range append(hostIPs(), s.Peers...) {
		s.peers[ip.String()] = true
	}
	s.m = metrics{
		allocations: prometheus.NewGauge(prometheus.GaugeOpts{Name: "streamd_turn_allocations", Help: "TURN relay allocations now."}),
		made:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamd_turn_allocations_total", Help: "TURN relay allocations made, by the client's transport to the TURN server (udp, tcp)."}, []string{"transport"}),
		refused:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamd_turn_refused_total", Help: "TURN requests refused, by reason (bad_credentials, expired, peer_not_allowed)."}, []string{"reason"}),
	}
	if s.Registerer != nil {
		if err := s.Registerer.Register(s.m.allocations); err != nil {
			return fmt.Errorf("turn metrics: %w", err)
		}
		if err := s.Registerer.Register(s.m.made); err != nil {
			return fmt.Errorf("turn metrics: %w", err)
		}
		if err := s.Registerer.Register(s.m.refused); err != nil {
			return fmt.Errorf("turn metrics: %w", err)
		}
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	if err := s.listen(); err != nil {
		return err
	}
	gen := func() pionturn.RelayAddressGenerator {
		return &pionturn.RelayAddressGeneratorStatic{RelayAddress: s.RelayIP, Address: relayBind(s.RelayIP)}
	}
	cfg := pionturn.ServerConfig{
		Realm:             s.Realm,
		AuthHandler:       s.auth,
		LoggerFactory:     quietLogs(),
		PacketConnConfigs: []pionturn.PacketConnConfig{{PacketConn: s.udp, RelayAddressGenerator: gen(), PermissionHandler: s.permit}},
		ListenerConfigs:   []pionturn.ListenerConfig{{Listener: s.tcp, RelayAddressGenerator: gen(), PermissionHandler: s.permit}},
		EventHandler: pionturn.EventHandler{
			// A wrong password (the auth handler's key fails the message
			// integrity check) is only seen here.
			OnAuth: func(src, _ net.Addr, _, user, _, _ string, ok bool) {
				if !ok {
					s.m.refused.WithLabelValues("bad_credentials").Inc()
					s.Logger.Info("turn: wrong credentials", "user", user, "from", addrString(src))
				}
			},
			OnAllocationCreated: func(src, _ net.Addr, _ string, _, _ string, _ net.Addr, _ int) {
				s.m.allocations.Inc()
				s.m.made.WithLabelValues(src.Network()).Inc()
			},
			OnAllocationDeleted: func(_, _ net.Addr, _ string, _, _ string) { s.m.allocations.Dec() },
		},
	}
	if s.TLS != nil && s.TLSAddr != "" {
		if s.tlsLn, err = tls.Listen("tcp", s.TLSAddr, s.TLS); err != nil {
			return fmt.Errorf("listen turn tls %s: %w", s.TLSAddr, err)
		}
		cfg.ListenerConfigs = append(cfg.ListenerConfigs, pionturn.ListenerConfig{Listener: s.tlsLn, RelayAddressGenerator: gen(), PermissionHandler: s.permit})
	}
	if s.srv, err = pionturn.NewServer(cfg); err != nil {
		return fmt.Errorf("turn server: %w", err)
	}
	s.Logger.Info("turn listening", "udp", s.udp.LocalAddr().String(), "tcp", s.tcp.Addr().String(), "tls", s.TLSAddrBound(), "relay_ip", s.RelayIP.String())
	return nil
}

// listen opens the UDP and TCP listeners on one port. With port 0 the
// UDP port is picked first; if its TCP twin is taken, another is tried.
func (s *Server) listen() (err error) {
	host, port, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return fmt.Errorf("turn address %q: %w", s.Addr, err)
	}
	for attempt := 0; ; attempt++ {
		if s.udp, err = net.ListenPacket("udp", s.Addr); err != nil {
			return fmt.Errorf("listen turn udp %s: %w", s.Addr, err)
		}
		tcpAddr := net.JoinHostPort(host, strconv.Itoa(s.udp.LocalAddr().(*net.UDPAddr).Port))
		if s.tcp, err = net.Listen("tcp", tcpAddr); err == nil {
			return nil
		}
		_ = s.udp.Close()
		s.udp = nil
		if port != "0" || attempt == 10 {
			return fmt.Errorf("listen turn tcp %s: %w", tcpAddr, err)
		}
	}
}

// relayBind is the local address relay sockets bind to: the relay IP when
// it is one of this host's, else every address (a NAT 1:1 public IP).
func relayBind(ip net.IP) string {
	for _, h := range hostIPs() {
		if h.Equal(ip) {
			return ip.String()
		}
	}
	return "0.0.0.0"
}

// Close stops the server and its listeners.
func (s *Server) Close() {
	s.closeMu.Do(func() {
		if s.srv != nil {
			_ = s.srv.Close() // closes the listeners it was given
			return
		}
		// Start failed before the server took the listeners over.
		if s.udp != nil {
			_ = s.udp.Close()
		}
		if s.tcp != nil {
			_ = s.tcp.Close()
		}
		if s.tlsLn != nil {
			_ = s.tlsLn.Close()
		}
	})
}

// UDPAddr and TCPAddr are the bound TURN addresses.
func (s *Server) UDPAddr() net.Addr { return s.udp.LocalAddr() }

// TCPAddr is the bound TURN TCP address.
func (s *Server) TCPAddr() net.Addr { return s.tcp.Addr() }

// TLSAddrBound is the bound TURN-over-TLS address ("" without TLS).
func (s *Server) TLSAddrBound() string {
	if s.tlsLn == nil {
		return ""
	}
	return s.tlsLn.Addr().String()
}

// Credentials mints a username and password for id, valid until now+TTL.
func (s *Server) Credentials(id string, now time.Time) (username, password string) {
	return Mint(s.Secret, id, now.Add(s.TTL))
}

// Mint makes TURN REST credentials for id that may start an allocation
// until expires.
func Mint(secret []byte, id string, expires time.Time) (username, password string) {
	username = strconv.FormatInt(expires.Unix(), 10) + ":" + id
	return username, password64(secret, username)
}

func password64(secret []byte, username string) string {
	m := hmac.New(sha1.New, secret)
	m.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// auth checks a request's credentials. The expiry is enforced when an
// allocation is made; the refreshes, permissions and channel bindings of
// an allocation already made keep working past it, so credentials can be
// short-lived while a viewer watches for hours.
func (s *Server) auth(ra *pionturn.RequestAttributes) (string, []byte, bool) {
	exp, id, ok := strings.Cut(ra.Username, ":")
	t, err := strconv.ParseInt(exp, 10, 64)
	if !ok || err != nil || id == "" {
		s.m.refused.WithLabelValues("bad_credentials").Inc()
		return "", nil, false
	}
	if ra.Method == stun.MethodAllocate && time.Now().Unix() >= t {
		s.m.refused.WithLabelValues("expired").Inc()
		s.Logger.Info("turn: expired credentials", "user", ra.Username, "from", addrString(ra.SrcAddr))
		return "", nil, false
	}
	// A wrong password fails pion's MESSAGE-INTEGRITY check with this key.
	return id, pionturn.GenerateAuthKey(ra.Username, ra.Realm, password64(s.Secret, ra.Username)), true
}

// permit lets relayed traffic go only to streamd itself.
func (s *Server) permit(client net.Addr, peer net.IP) bool {
	if s.peers[peer.String()] {
		return true
	}
	s.m.refused.WithLabelValues("peer_not_allowed").Inc()
	s.Logger.Info("turn: refused a peer that is not streamd", "peer", peer.String(), "client", addrString(client))
	return false
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// hostIPs lists the addresses of the host's interfaces.
func hostIPs() []net.IP {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []net.IP
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			out = append(out, n.IP)
		}
	}
	return out
}

// DefaultRelayIP picks the address to relay on when none is configured:
// the first non-loopback IPv4 address of the host (loopback as a last resort).
func DefaultRelayIP() net.IP {
	for _, ip := range hostIPs() {
		if ip.To4() != nil && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() {
			return ip
		}
	}
	return net.IPv4(127, 0, 0, 1)
}

// quietLogs keeps pion's own TURN logging to errors (refusals are counted
// and logged by us).
func quietLogs() logging.LoggerFactory {
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelError
	return lf
}

// Links are the Link header values (RFC 9725 §4.6) offering this TURN
// server to a WHIP/WHEP client, with fresh credentials: UDP, TCP and, with
// a certificate, TLS. host is the name or address clients reach streamd by.
func (s *Server) Links(host string, now time.Time) []string {
	user, pass := s.Credentials(randomID(), now)
	attrs := fmt.Sprintf(`; rel="ice-server"; username=%q; credential=%q; credential-type="password"`, user, pass)
	port := func(a net.Addr) string {
		_, p, _ := net.SplitHostPort(a.String())
		return p
	}
	out := []string{
		"<turn:" + net.JoinHostPort(host, port(s.udp.LocalAddr())) + "?transport=udp>" + attrs,
		"<turn:" + net.JoinHostPort(host, port(s.tcp.Addr())) + "?transport=tcp>" + attrs,
	}
	if s.tlsLn != nil {
		out = append(out, "<turns:"+net.JoinHostPort(host, port(s.tlsLn.Addr()))+"?transport=tcp>"+attrs)
	}
	return out
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
