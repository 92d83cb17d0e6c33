package app

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/streamd/streamd/internal/turn"
)

// initTURN starts the embedded TURN server when --turn is set. Its secret
// comes from the signing key, so every node of a cluster (which shares the
// key through Redis) accepts the credentials any node hands out.
func (a *App) initTURN(signingKey []byte) error {
	cfg := a.Config
	if cfg.TURN == "" {
		return nil
	}
	// Relayed media only ever goes between the TURN server and streamd on
	// this host, so the relay address is a local one (never the public
	// --webrtc-ip, which would need the network to hairpin).
	relay := net.IPv4(127, 0, 0, 1)
	if !cfg.LoopbackOnly {
		relay = turn.DefaultRelayIP()
	}
	var peers []net.IP
	for _, s := range cfg.WebRTCIPs {
		if ip := net.ParseIP(s); ip != nil {
			peers = append(peers, ip)
		}
	}
	s := &turn.Server{Addr: cfg.TURN, Secret: turn.SecretFrom(signingKey), RelayIP: relay, Registerer: a.reg, Logger: a.Logger.With("pkg", "turn")}
	s.Peers = peers // streamd's advertised addresses (besides the host's own)
	if cfg.TLSCert != "" && cfg.TLSKey != "" && cfg.TURNTLS != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		s.TLSAddr, s.TLS = cfg.TURNTLS, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if err := s.Start(); err != nil {
		return err
	}
	a.turn = s
	a.closers = append(a.closers, s.Close)
	return nil
}

// iceLinks returns the Link headers of WHIP/WHEP answers (nil without TURN).
// The TURN host is the advertised media address when there is one, else
// the host the client reached streamd's HTTP at; with a certificate it is
// always that name, which the certificate is for.
func (a *App) iceLinks() func(*http.Request) []string {
	if a.turn == nil {
		return nil
	}
	return func(r *http.Request) []string {
		host := r.Host
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			host = h
		}
		if len(a.Config.WebRTCIPs) > 0 && a.turn.TLS == nil {
			host = a.Config.WebRTCIPs[0]
		}
		return a.turn.Links(host, time.Now())
	}
}

// TURNAddr is the bound TURN UDP address ("" when TURN is off).
func (a *App) TURNAddr() string {
	if a.turn == nil {
		return ""
	}
	return a.turn.UDPAddr().String()
}

// MediaPorts says where WebRTC media is reached: the UDP port, the ICE TCP
// port and the TURN server, for the startup line.
func (a *App) MediaPorts() string {
	s := "WebRTC UDP " + a.UDPAddr()
	if tcp := a.net.TCPAddr(); tcp != nil {
		s += ", ICE TCP " + tcp.String()
	}
	if a.turn != nil {
		s += ", TURN " + a.turn.UDPAddr().String() + " UDP+TCP"
		if tl := a.turn.TLSAddrBound(); tl != "" {
			s += ", TURN TLS " + tl
		}
	}
	return s
}

// turnHint tells `make run` users how to reach viewers whose network
// blocks UDP.
func (a *App) turnHint() string {
	if a.turn != nil {
		return fmt.Sprintf("TURN is on (%s, UDP and TCP): viewers and publishers get short-lived credentials in the WHIP/WHEP Link headers.\n", a.turn.UDPAddr())
	}
	tcp := "ICE over TCP is off (--webrtc-tcp)"
	if t := a.net.TCPAddr(); t != nil {
		tcp = "ICE over TCP is on (" + t.String() + ")"
	}
	return "Viewers on networks that block UDP: " + tcp + "; for the strictest networks turn on the embedded TURN server:\n  make run ARGS='--turn :3478'   (then open UDP and TCP 3478)\n"
}
