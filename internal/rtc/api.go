package rtc

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// NetConfig says how peers reach this server.
type NetConfig struct {
	// UDPAddr is the one UDP port every peer shares (e.g. ":8189").
	UDPAddr string
	// TCPAddr is the one TCP port for ICE over TCP (passive candidates,
	// RFC 6544), for viewers whose network blocks UDP. Empty disables it.
	TCPAddr string
	// AdvertiseIPs are the addresses put in ICE candidates (NAT 1:1 / Docker).
	// Empty: the addresses of the host's interfaces.
	AdvertiseIPs []string
	// LoopbackOnly keeps ICE on 127.0.0.1/::1 (tests).
	LoopbackOnly bool
	// GSO sends each viewer's equal-size packets of a pass as one UDP
	// segmentation-offload train (BatchConn.EnableGSO): less kernel work
	// per packet, but burstier for receivers with small socket buffers.
	GSO bool
}

// WebRTC owns the shared UDP socket and the two pion APIs built on it: one
// for publishers (NACK generation, receiver reports, TWCC so browser
// encoders can ramp up) and one for subscribers (no interceptors: NACKs
// are answered from the sfu's shared per-track cache, not a per-viewer
// copy, and the sfu makes the sender reports).
// The socket is a BatchConn, so the sfu's fan-out passes go out with sendmmsg.
type WebRTC struct {
	conn   *BatchConn
	mux    ice.UDPMux
	tcpLn  net.Listener
	tcpMux ice.TCPMux
	pubAPI *webrtc.API
	subAPI *webrtc.API
}

// New opens the UDP port and builds the APIs.
func New(cfg NetConfig) (*WebRTC, error) {
	addr, err := net.ResolveUDPAddr("udp", cfg.UDPAddr)
	if err != nil {
		return nil, fmt.Errorf("webrtc udp address %s: %w", cfg.UDPAddr, err)
	}
	udp, err := net.ListenUDP("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen webrtc udp %s: %w", cfg.UDPAddr, err)
	}
	// Hundreds of viewers' packets leave in bursts (a keyframe to every
	// viewer); a larger send buffer keeps the kernel from dropping them.
	_ = udp.SetWriteBuffer(4 << 20)
	_ = udp.SetReadBuffer(4 << 20)
	w := &WebRTC{conn: NewBatchConn(udp)}
	if cfg.GSO {
		w.conn.EnableGSO()
	}
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelError
	w.mux = webrtc.NewICEUDPMux(lf.NewLogger("ice"), w.conn)

	se := webrtc.SettingEngine{LoggerFactory: lf}
	se.SetICEUDPMux(w.mux)
	networks := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}
	if cfg.TCPAddr != "" {
		if w.tcpLn, err = net.Listen("tcp", cfg.TCPAddr); err != nil {
			_ = w.Close()
			return nil, fmt.Errorf("listen webrtc tcp %s: %w", cfg.TCPAddr, err)
		}
		// Passive candidates on the one port, advertised on the same
		// addresses as UDP (the NAT 1:1 mapping below covers both).
		// 512 packets of read queue per connection: a TCP publisher's
		// keyframe burst (100+ packets) must not overflow it.
		w.tcpMux = webrtc.NewICETCPMux(lf.NewLogger("ice-tcp"), w.tcpLn, 512)
		se.SetICETCPMux(w.tcpMux)
		networks = append(networks, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6)
	}
	se.SetNetworkTypes(networks)
	se.SetICETimeouts(5*time.Second, 10*time.Second, 2*time.Second)
	if cfg.LoopbackOnly {
		se.SetIncludeLoopbackCandidate(true)
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	}
	if len(cfg.AdvertiseIPs) > 0 {
		se.SetNAT1To1IPs(cfg.AdvertiseIPs, webrtc.ICECandidateTypeHost)
		for _, ip := range cfg.AdvertiseIPs {
			if p := net.ParseIP(ip); p != nil && p.IsLoopback() {
				se.SetIncludeLoopbackCandidate(true)
			}
		}
	}
	// Reading RTCP ourselves is how PLI/FIR/NACK reach the forwarder; the
	// buffers pion keeps per stream would otherwise grow for nothing.
	se.SetReceiveMTU(1500)

	if w.pubAPI, err = newAPI(se, true); err != nil {
		_ = w.Close()
		return nil, err
	}
	if w.subAPI, err = newAPI(se, false); err != nil {
		_ = w.Close()
		return nil, err
	}
	return w, nil
}

// PublisherAPI is the pion API for ingest peer connections.
func (w *WebRTC) PublisherAPI() *webrtc.API { return w.pubAPI }

// SubscriberAPI is the pion API for viewer peer connections.
func (w *WebRTC) SubscriberAPI() *webrtc.API { return w.subAPI }

// Batch is the socket's pass batching (the sfu's Tuning.Batch).
func (w *WebRTC) Batch() *BatchConn { return w.conn }

// LocalAddr is the UDP address the server listens on.
func (w *WebRTC) LocalAddr() net.Addr { return w.conn.LocalAddr() }

// TCPAddr is the ICE TCP address the server listens on (nil: disabled).
func (w *WebRTC) TCPAddr() net.Addr {
	if w.tcpLn == nil {
		return nil
	}
	return w.tcpLn.Addr()
}

// Close closes the shared sockets.
func (w *WebRTC) Close() error {
	if w.mux != nil {
		_ = w.mux.Close()
	}
	if w.tcpMux != nil {
		_ = w.tcpMux.Close() // closes the listener too
	} else if w.tcpLn != nil {
		_ = w.tcpLn.Close()
	}
	return w.conn.Close()
}

var videoFeedback = []webrtc.RTCPFeedback{
	{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"},
}

// Codecs lists what streamd accepts from publishers and offers to viewers:
// what OBS 30+ and browsers send. RTX is deliberately absent: retransmissions
// travel on the main SSRC, which keeps one outgoing timeline per stream.
func Codecs() []webrtc.RTPCodecParameters {
	v := func(pt uint8, mime, fmtp string) webrtc.RTPCodecParameters {
		return webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mime, ClockRate: 90000, SDPFmtpLine: fmtp, RTCPFeedback: videoFeedback},
			PayloadType:        webrtc.PayloadType(pt),
		}
	}
	return []webrtc.RTPCodecParameters{
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: 111},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}, PayloadType: 0},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMA, ClockRate: 8000}, PayloadType: 8},
		v(102, webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f"),
		v(125, webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"),
		v(112, webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f"),
		v(127, webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f"),
		v(123, webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f"),
		v(96, webrtc.MimeTypeVP8, ""),
		v(98, webrtc.MimeTypeVP9, "profile-id=0"),
		v(45, webrtc.MimeTypeAV1, ""),
		v(49, webrtc.MimeTypeH265, ""),
	}
}

func newAPI(se webrtc.SettingEngine, publisher bool) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	for _, c := range Codecs() {
		kind := webrtc.RTPCodecTypeVideo
		if strings.HasPrefix(c.MimeType, "audio/") {
			kind = webrtc.RTPCodecTypeAudio
		}
		if !publisher {
			// Viewers send transport-wide congestion control feedback:
			// the sfu's per-viewer bandwidth estimate (and so the simulcast
			// layer each viewer gets) is built from it.
			c.RTCPFeedback = append(append([]webrtc.RTCPFeedback(nil), c.RTCPFeedback...), webrtc.RTCPFeedback{Type: webrtc.TypeRTCPFBTransportCC})
		}
		if err := m.RegisterCodec(c, kind); err != nil {
			return nil, fmt.Errorf("register codec %s: %w", c.MimeType, err)
		}
	}
	if !publisher {
		for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
			if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.TransportCCURI}, kind); err != nil {
				return nil, fmt.Errorf("register transport-cc extension: %w", err)
			}
		}
	}
	// Subscribers get no interceptors: every packet to every viewer would
	// pass through them. The sfu answers NACKs from its shared cache and
	// makes the sender reports (sfu.Viewer.SenderReports; egress sends them).
	ir := &interceptor.Registry{}
	if publisher {
		if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
			return nil, fmt.Errorf("publisher interceptors: %w", err)
		}
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}
