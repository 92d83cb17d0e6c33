package ingest

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
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
	pubs := make([]*rtspPublisher, 0, len(s.publishers))
	for _, p := range s.publishers {
		pubs = append(pubs, p)
	}
	readers := make([]*rtspReader, 0, len(s.readers))
	for r := range s.readers {
		readers = append(readers, r)
	}
	s.mu.Unlock()
	for _, p := range pubs {
		p.end()
	}
	for _, r := range readers {
		r.close()
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
			s.mu.Lock()
			readers := make([]*rtspReader, 0, len(s.readers))
			for r := range s.readers {
				readers = append(readers, r)
			}
			s.mu.Unlock()
			for _, r := range readers {
				if reason := r.check(now, s.ReadIdleTimeout); reason != "" {
					s.Logger.Info("rtsp reader ended", "stream", r.stream, "reason", reason)
					r.ss.Close()
				}
			}
		}
	}
}

// streamPath turns an RTSP path into a stream id ("" when it cannot be one).
func streamPath(p string) string {
	p = strings.Trim(p, "/")
	if p == "" || strings.ContainsAny(p, "/?") {
		return ""
	}
	return p
}

// authorized checks the request's credentials against key, accepting any
// user name (basic or digest).
func authorized(conn *gortsplib.ServerConn, req *base.Request, key string) (ok, provided bool) {
	var h headers.Authorization
	user := "streamd"
	if h.Unmarshal(req.Header["Authorization"]) == nil && h.Username != "" {
		user, provided = h.Username, true
	}
	// Called even without credentials: it prepares the digest challenge.
	return conn.VerifyCredentials(req, user, key), provided
}

func respond(code base.StatusCode, msg string) *base.Response {
	text := base.StatusMessages[code]
	if msg != "" {
		text += " - " + msg
	}
	return &base.Response{StatusCode: code, StatusMessage: text}
}

// rtspHandler implements gortsplib's server callbacks.
type rtspHandler struct{ s *RTSPServer }

// connState is kept on each connection: a stream built by DESCRIBE for the
// SETUP that follows, and a reader whose PLAY answer is on its way.
type connState struct {
	mu          sync.Mutex
	described   *gortsplib.ServerStream
	describedID string
	pendingPlay *rtspReader
}

func stateOf(c *gortsplib.ServerConn) *connState {
	if cs, ok := c.UserData().(*connState); ok {
		return cs
	}
	return nil
}

func (h *rtspHandler) OnConnOpen(ctx *gortsplib.ServerHandlerOnConnOpenCtx) {
	ctx.Conn.SetUserData(&connState{})
}

func (h *rtspHandler) OnConnClose(ctx *gortsplib.ServerHandlerOnConnCloseCtx) {
	if cs := stateOf(ctx.Conn); cs != nil {
		cs.mu.Lock()
		st := cs.described
		cs.described = nil
		cs.mu.Unlock()
		if st != nil {
			st.Close()
		}
	}
	if ctx.Error != nil && !errors.Is(ctx.Error, liberrors.ErrServerTerminated{}) {
		h.s.Logger.Debug("rtsp connection closed", "remote", ctx.Conn.NetConn().RemoteAddr().String(), "err", ctx.Error)
	}
}

func (h *rtspHandler) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	switch v := ctx.Session.UserData().(type) {
	case *rtspPublisher:
		v.end()
	case *rtspReader:
		v.close()
	}
}

func (h *rtspHandler) OnDecodeError(ctx *gortsplib.ServerHandlerOnDecodeErrorCtx) {
	h.s.Logger.Debug("rtsp decode error", "err", ctx.Error)
}

func (h *rtspHandler) OnPacketsLost(ctx *gortsplib.ServerHandlerOnPacketsLostCtx) {
	h.s.Logger.Debug("rtsp packets lost", "lost", ctx.Lost)
}

func (h *rtspHandler) OnStreamWriteError(ctx *gortsplib.ServerHandlerOnStreamWriteErrorCtx) {
	h.s.Logger.Debug("rtsp reader write error", "err", ctx.Error)
}

// lookup resolves the stream of a request and checks the key: for
// publishers always, for readers when the stream is private.
func (h *rtspHandler) lookup(conn *gortsplib.ServerConn, req *base.Request, path string, publish bool) (string, *base.Response, error) {
	s := h.s
	id := streamPath(path)
	if id == "" {
		s.m.rejected.WithLabelValues("unknown_stream").Inc()
		return "", respond(base.StatusNotFound, "use rtsp://host:port/<stream>"), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	key, private, err := s.Streams.StreamKey(ctx, id)
	switch {
	case errors.Is(err, ErrUnknownStream):
		s.m.rejected.WithLabelValues("unknown_stream").Inc()
		s.Logger.Info("rtsp: unknown stream", "stream", id, "remote", conn.NetConn().RemoteAddr().String())
		return "", respond(base.StatusNotFound, "no stream "+id+": create it with POST /api/streams"), nil
	case err != nil:
		s.Logger.Error("rtsp: stream lookup", "stream", id, "err", err)
		return "", respond(base.StatusInternalServerError, ""), nil
	}
	if !publish && !private {
		return id, nil, nil
	}
	ok, provided := authorized(conn, req, key)
	if !ok {
		if provided {
			s.m.authFailures.Inc()
			s.m.rejected.WithLabelValues("bad_key").Inc()
			s.Logger.Warn("rtsp: wrong publish key", "stream", id, "method", string(req.Method), "remote", conn.NetConn().RemoteAddr().String())
		}
		return "", respond(base.StatusUnauthorized, "use the publish key of "+id+" as the password"), liberrors.ErrServerAuth{}
	}
	return id, nil, nil
}

// OnAnnounce admits a publisher: the stream exists, the key is right and
// the session carries something viewers can play.
func (h *rtspHandler) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	id, res, err := h.lookup(ctx.Conn, ctx.Request, ctx.Path, true)
	if res != nil {
		return res, err
	}
	media, err := planRTSPMedia(id, ctx.Description, h.s.Logger)
	if err != nil {
		h.s.m.rejected.WithLabelValues("no_usable_track").Inc()
		h.s.Logger.Warn("rtsp: publish refused", "stream", id, "err", err)
		return respond(base.StatusUnsupportedMediaType, "no H.264/H.265/VP8/VP9/AV1 video or Opus/G.711 audio; "+fixOpus), nil
	}
	ctx.Session.SetUserData(&rtspPublisher{s: h.s, stream: id, ss: ctx.Session, media: media})
	return respond(base.StatusOK, ""), nil
}

func (h *rtspHandler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Session.State() == gortsplib.ServerSessionStatePreRecord {
		if _, ok := ctx.Session.UserData().(*rtspPublisher); !ok {
			return respond(base.StatusBadRequest, ""), nil, nil
		}
		return respond(base.StatusOK, ""), nil, nil
	}
	id, res, err := h.lookup(ctx.Conn, ctx.Request, ctx.Path, false)
	if res != nil {
		return res, nil, err
	}
	// A further SETUP (the next track) joins the session's stream.
	if r, ok := ctx.Session.UserData().(*rtspReader); ok {
		if r.stream != id {
			return respond(base.StatusBadRequest, "one stream per session"), nil, nil
		}
		return respond(base.StatusOK, ""), r.st, nil
	}
	var st *gortsplib.ServerStream
	if cs := stateOf(ctx.Conn); cs != nil {
		cs.mu.Lock()
		if cs.described != nil && cs.describedID == id {
			st, cs.described = cs.described, nil
		}
		cs.mu.Unlock()
	}
	if st == nil {
		var res *base.Response
		if st, res = h.s.newReadStream(id); res != nil {
			return res, nil, nil
		}
	}
	r := &rtspReader{s: h.s, stream: id, ss: ctx.Session, st: st, tracks: readTracks(st), since: time.Now()}
	ctx.Session.SetUserData(r)
	h.s.mu.Lock()
	h.s.readers[r] = struct{}{}
	h.s.mu.Unlock()
	h.s.m.read.Inc()
	return respond(base.StatusOK, ""), st, nil
}

func (h *rtspHandler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	id, res, err := h.lookup(ctx.Conn, ctx.Request, ctx.Path, false)
	if res != nil {
		return res, nil, err
	}
	st, res := h.s.newReadStream(id)
	if res != nil {
		return res, nil, nil
	}
	if cs := stateOf(ctx.Conn); cs != nil {
		cs.mu.Lock()
		old := cs.described
		cs.described, cs.describedID = st, id
		cs.mu.Unlock()
		if old != nil {
			old.Close()
		}
	}
	return respond(base.StatusOK, ""), st, nil
}

func (h *rtspHandler) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	r, ok := ctx.Session.UserData().(*rtspReader)
	if !ok {
		return respond(base.StatusBadRequest, ""), nil
	}
	// The taps start once gortsplib has made the session an active reader,
	// i.e. when the answer to PLAY goes out (OnResponse), so that the
	// keyframe cache replayed to a joiner is not lost.
	if cs := stateOf(ctx.Conn); cs != nil {
		cs.mu.Lock()
		cs.pendingPlay = r
		cs.mu.Unlock()
	}
	return respond(base.StatusOK, ""), nil
}

func (h *rtspHandler) OnResponse(c *gortsplib.ServerConn, res *base.Response) {
	cs := stateOf(c)
	if cs == nil {
		return
	}
	cs.mu.Lock()
	r := cs.pendingPlay
	cs.pendingPlay = nil
	cs.mu.Unlock()
	if r != nil && res.StatusCode == base.StatusOK {
		r.start()
	}
}

func (h *rtspHandler) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	p, ok := ctx.Session.UserData().(*rtspPublisher)
	if !ok {
		return respond(base.StatusBadRequest, ""), nil
	}
	for _, t := range p.media.tracks {
		ctx.Session.OnPacketRTP(t.medi, t.forma, t.handle)
	}
	p.start()
	return respond(base.StatusOK, ""), nil
}

// rtspPublisher is an RTSP publishing session; it is the sfu Source of its
// publication.
type rtspPublisher struct {
	s      *RTSPServer
	stream string
	ss     *gortsplib.ServerSession
	media  *rtspMedia

	mu      sync.Mutex
	pub     *sfu.Publication
	started bool
	ended   bool
}

func (p *rtspPublisher) start() {
	p.mu.Lock()
	if p.started || p.ended {
		p.mu.Unlock()
		return
	}
	p.started = true
	p.mu.Unlock()
	pub := p.s.SFU.Stream(p.stream).Publish(p)
	p.media.attach(pub)
	p.mu.Lock()
	p.pub = pub
	ended := p.ended
	p.mu.Unlock()
	if ended { // closed while publishing
		pub.Close()
		return
	}
	p.s.mu.Lock()
	p.s.publishers[p.stream] = p
	p.s.mu.Unlock()
	p.s.m.publish.Inc()
	tr := "?"
	if t := p.ss.SetuppedTransport(); t != nil {
		tr = t.String()
	}
	p.s.Logger.Info("rtsp publisher live", "stream", p.stream, "transport", tr)
}

// end detaches the publisher (its session closed).
func (p *rtspPublisher) end() {
	p.mu.Lock()
	if p.ended {
		p.mu.Unlock()
		return
	}
	p.ended = true
	pub, started := p.pub, p.started
	p.mu.Unlock()
	if pub != nil {
		pub.Close()
	}
	p.s.mu.Lock()
	if p.s.publishers[p.stream] == p {
		delete(p.s.publishers, p.stream)
	}
	p.s.mu.Unlock()
	if started && pub != nil {
		p.s.m.publish.Dec()
		p.s.Logger.Info("rtsp publisher left", "stream", p.stream)
	}
}

// RequestKeyframe: RTSP has no way to ask a publisher for a keyframe.
func (p *rtspPublisher) RequestKeyframe() {}

// Close ends the session (another publisher took the stream over).
func (p *rtspPublisher) Close() error {
	p.ss.Close()
	return nil
}

// readerTrack is one kind a reader gets: its media in the reader's SDP and
// the codec it was described with.
type readerTrack struct {
	medi  *description.Media
	codec webrtc.RTPCodecCapability
	pt    uint8
}

// newReadStream describes a live stream's current codecs for a reader.
func (s *RTSPServer) newReadStream(id string) (*gortsplib.ServerStream, *base.Response) {
	st := s.SFU.Stream(id)
	desc := &description.Session{Title: id}
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		c, ok := st.Codec(kind)
		if !ok {
			continue
		}
		f := rtspFormat(c)
		if f == nil {
			continue
		}
		mt := description.MediaTypeVideo
		if kind == webrtc.RTPCodecTypeAudio {
			mt = description.MediaTypeAudio
		}
		desc.Medias = append(desc.Medias, &description.Media{Type: mt, Formats: []format.Format{f}})
	}
	if len(desc.Medias) == 0 || !s.SFU.Live(id) {
		s.m.rejected.WithLabelValues("not_live").Inc()
		return nil, respond(base.StatusNotFound, "stream "+id+" is not live")
	}
	ss := &gortsplib.ServerStream{Server: s.srv, Desc: desc}
	if err := ss.Initialize(); err != nil {
		s.Logger.Error("rtsp: read stream", "stream", id, "err", err)
		return nil, respond(base.StatusInternalServerError, "")
	}
	return ss, nil
}

// rtspFormat is how an sfu codec is described to RTSP readers.
func rtspFormat(c webrtc.RTPCodecCapability) format.Format {
	switch strings.ToLower(c.MimeType) {
	case strings.ToLower(webrtc.MimeTypeH264):
		return &format.H264{PayloadTyp: 96, PacketizationMode: 1}
	case strings.ToLower(webrtc.MimeTypeH265):
		return &format.H265{PayloadTyp: 96}
	case strings.ToLower(webrtc.MimeTypeVP8):
		return &format.VP8{PayloadTyp: 96}
	case strings.ToLower(webrtc.MimeTypeVP9):
		return &format.VP9{PayloadTyp: 96}
	case strings.ToLower(webrtc.MimeTypeAV1):
		return &format.AV1{PayloadTyp: 96}
	case strings.ToLower(webrtc.MimeTypeOpus):
		return &format.Opus{PayloadTyp: 111, ChannelCount: 2}
	case strings.ToLower(webrtc.MimeTypePCMU):
		return &format.G711{PayloadTyp: 0, MULaw: true, SampleRate: 8000, ChannelCount: 1}
	case strings.ToLower(webrtc.MimeTypePCMA):
		return &format.G711{PayloadTyp: 8, MULaw: false, SampleRate: 8000, ChannelCount: 1}
	}
	return nil
}

// codecOfFormat is the inverse of rtspFormat, for the reader's taps.
func codecOfFormat(f format.Format) webrtc.RTPCodecCapability {
	switch f := f.(type) {
	case *format.H264:
		return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: "packetization-mode=1"}
	case *format.H265:
		return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH265, ClockRate: 90000}
	case *format.VP8:
		return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	case *format.VP9:
		return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000}
	case *format.AV1:
		return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeAV1, ClockRate: 90000}
	case *format.Opus:
		return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
	case *format.G711:
		if f.MULaw {
			return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}
		}
		return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMA, ClockRate: 8000}
	}
	return webrtc.RTPCodecCapability{}
}

func readTracks(st *gortsplib.ServerStream) map[webrtc.RTPCodecType]readerTrack {
	out := map[webrtc.RTPCodecType]readerTrack{}
	for _, medi := range st.Desc.Medias {
		kind := webrtc.RTPCodecTypeVideo
		if medi.Type == description.MediaTypeAudio {
			kind = webrtc.RTPCodecTypeAudio
		}
		f := medi.Formats[0]
		out[kind] = readerTrack{medi: medi, codec: codecOfFormat(f), pt: f.PayloadType()}
	}
	return out
}

// rtspReader is one RTSP reader session: its own gortsplib stream fed by
// sfu taps, so that it joins like a WHEP viewer (from the keyframe cache).
type rtspReader struct {
	s      *RTSPServer
	stream string
	ss     *gortsplib.ServerSession
	st     *gortsplib.ServerStream
	tracks map[webrtc.RTPCodecType]readerTrack

	mu      sync.Mutex
	removes []func()
	started bool
	closed  bool
	since   time.Time // when the stream was last seen live
}

func (r *rtspReader) start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started || r.closed {
		return
	}
	r.started = true
	st := r.s.SFU.Stream(r.stream)
	for kind, t := range r.tracks {
		w := &tapWriter{st: r.st, medi: t.medi}
		codecs := []webrtc.RTPCodecParameters{{RTPCodecCapability: t.codec, PayloadType: webrtc.PayloadType(t.pt)}}
		r.removes = append(r.removes, st.AddTap(kind, w, codecs, randomSSRC()))
	}
	r.s.Logger.Info("rtsp reader", "stream", r.stream, "tracks", len(r.tracks))
}

// check says why the reader should end, if it should.
func (r *rtspReader) check(now time.Time, idle time.Duration) string {
	st := r.s.SFU.Stream(r.stream)
	live := r.s.SFU.Live(r.stream)
	r.mu.Lock()
	defer r.mu.Unlock()
	if live {
		r.since = now
		for kind, t := range r.tracks {
			if c, ok := st.Codec(kind); ok && !strings.EqualFold(c.MimeType, t.codec.MimeType) {
				return "the stream's " + kind.String() + " codec changed to " + c.MimeType
			}
		}
		return ""
	}
	if now.Sub(r.since) > idle {
		return "the stream has had no publisher for " + idle.String()
	}
	return ""
}

func (r *rtspReader) close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	removes := r.removes
	r.removes = nil
	r.mu.Unlock()
	for _, rm := range removes {
		rm()
	}
	r.st.Close()
	r.s.mu.Lock()
	_, ok := r.s.readers[r]
	delete(r.s.readers, r)
	r.s.mu.Unlock()
	if ok {
		r.s.m.read.Dec()
	}
}

// tapWriter hands the sfu's packets to a reader's gortsplib stream, which
// queues them per reader (it never blocks the fan-out).
type tapWriter struct {
	st   *gortsplib.ServerStream
	medi *description.Media
	pkt  rtp.Packet
}

func (w *tapWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	w.pkt.Header = *h
	w.pkt.Payload = payload
	if err := w.st.WritePacketRTP(w.medi, &w.pkt); err != nil {
		return 0, err
	}
	return len(payload), nil
}

func (w *tapWriter) Write(b []byte) (int, error) {
	var p rtp.Packet
	if err := p.Unmarshal(b); err != nil {
		return 0, err
	}
	return w.WriteRTP(&p.Header, p.Payload)
}

func randomSSRC() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

// sniffListener checks the first request line of each connection: bytes
// that cannot start an RTSP request (a port scanner, TLS, binary garbage)
// get "400 Bad Request" and the connection is closed at once, instead of
// waiting for the read timeout.
type sniffListener struct {
	net.Listener
	s *RTSPServer
}

func (l *sniffListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &sniffConn{Conn: c, s: l.s}, nil
}

var errNotRTSP = errors.New("not an RTSP request")

type sniffConn struct {
	net.Conn
	s       *RTSPServer
	checked bool
	n       int
}

func (c *sniffConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if c.checked || n == 0 {
		return n, err
	}
	for _, ch := range b[:n] {
		if ch == '\n' {
			c.checked = true
			break
		}
		c.n++
		bad := (c.n == 1 && (ch < 'A' || ch > 'Z')) || (ch < 0x20 && ch != '\r') || ch >= 0x7f || c.n > 4096
		if bad {
			c.s.m.rejected.WithLabelValues("not_rtsp").Inc()
			c.s.Logger.Info("rtsp: not an RTSP request; closing", "remote", c.RemoteAddr().String())
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.Conn.Write([]byte("RTSP/1.0 400 Bad Request - not an RTSP request\r\n\r\n"))
			_ = c.Conn.Close()
			return 0, errNotRTSP
		}
	}
	return n, err
}
