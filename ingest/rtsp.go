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
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd/sfu"
)

// StreamKeys tells the RTSP server what it needs to check a request
// (declared here, implemented over the streams registry, wired by
// cmd/streamd). RTSP digest authentication verifies a password against the
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
	// ReadIdleTimeout ends RTSP readers of a stream that has had no
	// publisher for that long (default 10 s); a publisher that reconnects
	// sooner keeps them.
	ReadIdleTimeout time.Duration
	Registerer      prometheus.Registerer
	Logger          *slog.Logger

	srv     *gortsplib.Server
	tcpAddr net.Addr
	udpRTP  *net.UDPConn
	udpRTCP *net.UDPConn
	m       *rtspServerMetrics

	mu         sync.Mutex
	publishers map[string]*rtspPublisher // current RTSP publisher of each stream
	readers    map[*rtspReader]struct{}
	stop       chan struct{}
	wg         sync.WaitGroup
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
	if s.ReadIdleTimeout == 0 {
		s.ReadIdleTimeout = 10 * time.Second
	}
	s.m = newRTSPServerMetrics(s.Registerer)
	s.publishers = map[string]*rtspPublisher{}
	s.readers = map[*rtspReader]struct{}{}
	s.stop = make(chan struct{})

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
	s.wg.Add(1)
	go s.janitor()
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
	close(s.stop)
	s.srv.Close()
	s.wg.Wait()
	// Sessions are closed by the server; make sure nothing stays attached.
	s.mu.Lock()
	pubs := slices.Collect(maps.Values(s.publishers))
	s.mu.Unlock()
	for _, p := range pubs {
		p.end()
	}
	for _, r := range s.readerList() {
		r.close()
	}
}

// readerList is a snapshot of the open readers.
func (s *RTSPServer) readerList() []*rtspReader {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Keys(s.readers))
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

// janitor ends readers whose stream changed codec (their SDP no longer
// fits) or has had no publisher for ReadIdleTimeout.
func (s *RTSPServer) janitor() {
	defer s.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			for _, r := range s.readerList() {
				if reason := r.check(now, s.ReadIdleTimeout); reason != "" {
					s.Logger.Info("rtsp reader ended", "stream", r.stream, "reason", reason)
					r.ss.Close()
				}
			}
		}
	}
}
