package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd/sfu"
)

// StreamKeys tells the RTSP server what it needs to check a request
// (declared here, implemented over the streams registry, wired by
// internal/app). RTSP digest authentication verifies a password against the
// expected one, so the server asks for the key rather than checking one.
type StreamKeys interface {
	// StreamKey returns the stream's publish key and whether reading it
	// needs that key too (a private stream); ErrUnknownStream when there is
	// no such stream.
	StreamKey(ctx context.Context, stream string) (key string, private bool, err error)
}

// RTSPServer serves rtsp://host:port/{stream}: publishers ANNOUNCE and
// RECORD with the stream's publish key as password (any user name), over
// TCP or UDP, and take the stream over like a WHIP publisher; readers
// (ffplay, VLC) DESCRIBE and PLAY any live stream, whatever its ingest,
// with no key unless the stream is private. Configure the fields, then
// Start.
type RTSPServer struct {
	// Address is the TCP address (":8554"); port 0 picks a free port.
	Address string
	// UDPAddress is where RTP over UDP is received and sent, with RTCP on
	// the next port. Empty: the RTSP port number if even, else the one
	// above (free ones when the RTSP port is 0). "off" disables UDP.
	UDPAddress string
	SFU        *sfu.SFU
	Streams    StreamKeys
	// Readers serves reading sessions (egress.RTSPReaders, started and
	// closed with the server; nil: reading is refused).
	Readers    Readers
	Registerer prometheus.Registerer
	Logger     *slog.Logger

	srv     *gortsplib.Server
	tcpAddr net.Addr
	udpRTP  *net.UDPConn
	udpRTCP *net.UDPConn
	m       *rtspServerMetrics

	mu         sync.Mutex
	publishers map[string]*rtspPublisher // current RTSP publisher of each stream
}

// Readers serves RTSP readers (declared here, implemented by
// egress.RTSPReaders, wired in internal/app): the server hands it the
// sessions that DESCRIBE, SETUP and PLAY.
type Readers interface {
	Start()
	// Describe describes the live stream id for a reader; nil (and no
	// error) when it is not live.
	Describe(srv *gortsplib.Server, id string) (*gortsplib.ServerStream, error)
	// Open makes the reader of session ss, reading id through st.
	Open(ss *gortsplib.ServerSession, id string, st *gortsplib.ServerStream) Reader
	// Close detaches every reader and returns how many were open.
	Close() int
}

// Reader is one reading session.
type Reader interface {
	Stream() string
	ServerStream() *gortsplib.ServerStream
	// Start begins feeding the session (its PLAY answer is out).
	Start()
	// Close detaches it; true when this call did.
	Close() bool
}

type rtspServerMetrics struct {
	publish, read prometheus.Gauge
	authFailures  prometheus.Counter
	rejected      *prometheus.CounterVec
}

func newRTSPServerMetrics(reg prometheus.Registerer) *rtspServerMetrics {
	sessions := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "streamd_rtsp_sessions", Help: "Open RTSP sessions, by kind (publish, read)."}, []string{"kind"})
	m := &rtspServerMetrics{
		publish:      sessions.WithLabelValues("publish"),
		read:         sessions.WithLabelValues("read"),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "streamd_rtsp_auth_failures_total", Help: "RTSP requests refused for a wrong key."}),
		rejected:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamd_rtsp_rejected_total", Help: "RTSP requests refused, by reason."}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(sessions, m.authFailures, m.rejected)
	}
	return m
}

// Start listens and serves.
func (s *RTSPServer) Start() error {
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	s.m = newRTSPServerMetrics(s.Registerer)
	s.publishers = map[string]*rtspPublisher{}

	s.srv = &gortsplib.Server{
		Handler:     &rtspHandler{s: s},
		RTSPAddress: s.Address,
		Listen: func(network, address string) (net.Listener, error) {
			ln, err := net.Listen(network, address)
			if err != nil {
				return nil, err
			}
			s.tcpAddr = ln.Addr()
			return &sniffListener{Listener: ln, s: s}, nil
		},
	}
	if s.UDPAddress != "off" {
		if err := s.bindUDP(); err != nil {
			return err
		}
		s.srv.UDPRTPAddress = s.udpRTP.LocalAddr().String()
		s.srv.UDPRTCPAddress = s.udpRTCP.LocalAddr().String()
		// Hand gortsplib the sockets bound above (no window in which
		// another process could take the ports).
		s.srv.ListenPacket = func(network, address string) (net.PacketConn, error) {
			switch address {
			case s.srv.UDPRTPAddress:
				return s.udpRTP, nil
			case s.srv.UDPRTCPAddress:
				return s.udpRTCP, nil
			}
			return net.ListenPacket(network, address)
		}
	}
	if err := s.srv.Start(); err != nil {
		if s.udpRTP != nil {
			_ = s.udpRTP.Close()
			_ = s.udpRTCP.Close()
		}
		return fmt.Errorf("rtsp server on %s: %w", s.Address, err)
	}
	if s.Readers != nil {
		s.Readers.Start()
	}
	s.Logger.Info("rtsp server listening", "addr", s.Addr(), "udp_rtp", s.srv.UDPRTPAddress)
	return nil
}

// bindUDP binds the RTP/RTCP port pair (RTP even, RTCP the next one).
func (s *RTSPServer) bindUDP() error {
	addr := s.UDPAddress
	if addr == "" {
		addr = s.Address
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("rtsp address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("rtsp address %q: bad port", addr)
	}
	listen := func(p int) (*net.UDPConn, error) {
		ua, err := net.ResolveUDPAddr("udp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err != nil {
			return nil, err
		}
		return net.ListenUDP("udp", ua)
	}
	if port != 0 {
		if port%2 != 0 {
			port++
		}
		if s.udpRTP, err = listen(port); err != nil {
			return fmt.Errorf("rtsp udp rtp: %w", err)
		}
		if s.udpRTCP, err = listen(port + 1); err != nil {
			_ = s.udpRTP.Close()
			return fmt.Errorf("rtsp udp rtcp: %w", err)
		}
		return nil
	}
	for range 100 {
		a, err := listen(0)
		if err != nil {
			return fmt.Errorf("rtsp udp: %w", err)
		}
		p := a.LocalAddr().(*net.UDPAddr).Port
		other := p + 1
		if p%2 != 0 {
			other = p - 1
		}
		b, err := listen(other)
		if err != nil {
			_ = a.Close()
			continue
		}
		if p%2 == 0 {
			s.udpRTP, s.udpRTCP = a, b
		} else {
			s.udpRTP, s.udpRTCP = b, a
		}
		return nil
	}
	return errors.New("rtsp udp: no free port pair")
}

// Addr is the bound RTSP (TCP) address.
func (s *RTSPServer) Addr() string {
	if s.tcpAddr == nil {
		return ""
	}
	return s.tcpAddr.String()
}

// UDPAddr is the bound RTP address ("" when UDP is off).
func (s *RTSPServer) UDPAddr() string {
	if s.srv == nil {
		return ""
	}
	return s.srv.UDPRTPAddress
}

// Close ends every session and stops listening.
func (s *RTSPServer) Close() {
	if s.srv == nil {
		return
	}
	s.srv.Close()
	// Sessions are closed by the server; make sure nothing stays attached.
	s.mu.Lock()
	pubs := slices.Collect(maps.Values(s.publishers))
	s.mu.Unlock()
	for _, p := range pubs {
		p.end()
	}
	if s.Readers != nil {
		s.m.read.Sub(float64(s.Readers.Close()))
	}
}

// Warnings are the warnings of the stream's current RTSP publisher (e.g. an
// AAC track that viewers will not get).
func (s *RTSPServer) Warnings(stream string) []string {
	s.mu.Lock()
	p := s.publishers[stream]
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.media.Warnings()
}
