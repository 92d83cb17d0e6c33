// Package rtctest is a pion WHIP/WHEP client for tests and the bench: it
// speaks only the public protocols (HTTP + SDP + ICE on loopback).
package rtctest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// NewAPI builds a pion API restricted to loopback ICE, with pion's default
// codecs and interceptors (NACK, reports).
func NewAPI() (*webrtc.API, error) { return NewAPIOptions(true) }

// NewAPIOptions is NewAPI with or without pion's default interceptors;
// without them only RTCP reports run (a viewer that never sends NACKs).
func NewAPIOptions(defaultInterceptors bool) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	register := webrtc.ConfigureRTCPReports
	if defaultInterceptors {
		register = func(ir *interceptor.Registry) error { return webrtc.RegisterDefaultInterceptors(m, ir) }
	}
	if err := register(ir); err != nil {
		return nil, err
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(Loopback())), nil
}

// Loopback is a setting engine that gathers only 127.0.0.1 (tests never
// touch another network, and gathering is instant).
func Loopback() webrtc.SettingEngine {
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() && ip.To4() != nil })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(0)
	return se
}

// Exchange POSTs pc's offer to a WHIP/WHEP endpoint and applies the answer.
// It returns the session URL.
func Exchange(ctx context.Context, pc *webrtc.PeerConnection, endpoint, token string) (string, error) {
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return "", err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return "", err
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewBufferString(pc.LocalDescription().SDP))
	req.Header.Set("Content-Type", "application/sdp")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusCreated {
		return "", &StatusError{Code: res.StatusCode, Body: string(body)}
	}
	loc, err := url.Parse(endpoint)
	if err != nil {
		return "", err
	}
	sess, err := loc.Parse(res.Header.Get("Location"))
	if err != nil {
		return "", err
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(body)}); err != nil {
		return "", err
	}
	return sess.String(), nil
}

// StatusError is a non-201 answer.
type StatusError struct {
	Code int
	Body string
}

func (e *StatusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Code, e.Body) }

// WaitConnected waits for the peer connection to connect. It replaces pc's
// OnConnectionStateChange handler (pion keeps one): set your own after it.
func WaitConnected(ctx context.Context, pc *webrtc.PeerConnection) error {
	ch := make(chan webrtc.PeerConnectionState, 8)
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		select {
		case ch <- s:
		default:
		}
	})
	if pc.ConnectionState() == webrtc.PeerConnectionStateConnected {
		return nil
	}
	for {
		select {
		case s := <-ch:
			switch s {
			case webrtc.PeerConnectionStateConnected:
				return nil
			case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
				return fmt.Errorf("peer connection %s", s)
			}
		case <-ctx.Done():
			return fmt.Errorf("connect: %w", ctx.Err())
		}
	}
}

// Delete ends a WHIP/WHEP session.
func Delete(session, token string) error {
	req, _ := http.NewRequest(http.MethodDelete, session, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	return nil
}

// Publisher is a pion WHIP publisher with one video and one audio track.
type Publisher struct {
	PC      *webrtc.PeerConnection
	Video   *webrtc.TrackLocalStaticSample
	Audio   *webrtc.TrackLocalStaticSample
	Session string
	Token   string

	mu   sync.Mutex
	plis int
}

// Publish connects a publisher with the given video codec (e.g. webrtc.MimeTypeH264).
func Publish(ctx context.Context, api *webrtc.API, endpoint, token, videoMime string) (*Publisher, error) {
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	p := &Publisher{PC: pc, Token: token}
	p.Video, _ = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: videoMime, ClockRate: 90000}, "video", "pub")
	p.Audio, _ = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "pub")
	for _, tr := range []webrtc.TrackLocal{p.Video, p.Audio} {
		sender, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			pc.Close()
			return nil, err
		}
		go p.readRTCP(sender.Sender())
	}
	if p.Session, err = Connect(ctx, pc, endpoint, token); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Publisher) readRTCP(s *webrtc.RTPSender) {
	for {
		pkts, _, err := s.ReadRTCP()
		if err != nil {
			return
		}
		for _, pk := range pkts {
			switch pk.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				p.mu.Lock()
				p.plis++
				p.mu.Unlock()
			}
		}
	}
}

// PLIs is the number of keyframe requests the publisher has received.
func (p *Publisher) PLIs() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.plis
}

// Close ends the session (DELETE) and the peer connection.
func (p *Publisher) Close() {
	_ = Delete(p.Session, p.Token)
	_ = p.PC.Close()
}

// Packet is a received RTP packet with its arrival time.
type Packet struct {
	rtp.Packet
	Arrival time.Time
}

// Connect does the WHIP/WHEP exchange and waits for pc to connect; it
// returns the session URL. On failure pc is closed.
func Connect(ctx context.Context, pc *webrtc.PeerConnection, endpoint, token string) (string, error) {
	session, err := Exchange(ctx, pc, endpoint, token)
	if err == nil {
		err = WaitConnected(ctx, pc)
	}
	if err != nil {
		pc.Close()
		return "", err
	}
	return session, nil
}

// NewViewer makes a receive-only (video and audio) peer connection for
// WHEP; onTrack runs on pion's goroutine for each remote track and may read
// it until it ends.
func NewViewer(api *webrtc.API, onTrack func(*webrtc.TrackRemote)) (*webrtc.PeerConnection, error) {
	return NewViewerConfig(api, webrtc.Configuration{}, onTrack)
}

// NewViewerConfig is NewViewer with a configuration (ICE servers, relay-only policy).
func NewViewerConfig(api *webrtc.API, cfg webrtc.Configuration, onTrack func(*webrtc.TrackRemote)) (*webrtc.PeerConnection, error) {
	pc, err := api.NewPeerConnection(cfg)
	if err != nil {
		return nil, err
	}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			pc.Close()
			return nil, err
		}
	}
	pc.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { onTrack(t) })
	return pc, nil
}

// Subscriber is a pion WHEP viewer that records what it receives.
type Subscriber struct {
	PC      *webrtc.PeerConnection
	Session string

	mu     sync.Mutex
	video  []Packet
	audio  []Packet
	notify chan struct{}
}

// Subscribe connects a WHEP viewer. Received packets are kept.
func Subscribe(ctx context.Context, api *webrtc.API, endpoint string) (*Subscriber, error) {
	return SubscribeConfig(ctx, api, webrtc.Configuration{}, endpoint)
}

// SubscribeConfig is Subscribe with a peer-connection configuration.
func SubscribeConfig(ctx context.Context, api *webrtc.API, cfg webrtc.Configuration, endpoint string) (*Subscriber, error) {
	s := &Subscriber{notify: make(chan struct{}, 1)}
	pc, err := NewViewerConfig(api, cfg, s.record)
	if err != nil {
		return nil, err
	}
	s.PC = pc
	if s.Session, err = Connect(ctx, pc, endpoint, ""); err != nil {
		return nil, err
	}
	return s, nil
}

// record keeps every packet of a track. ReadRTP reads each packet into a
// fresh buffer, so the packet is ours to keep without a copy.
func (s *Subscriber) record(t *webrtc.TrackRemote) {
	video := t.Kind() == webrtc.RTPCodecTypeVideo
	for {
		pkt, _, err := t.ReadRTP()
		if err != nil {
			return
		}
		p := Packet{Packet: *pkt, Arrival: time.Now()}
		s.mu.Lock()
		if video {
			s.video = append(s.video, p)
		} else {
			s.audio = append(s.audio, p)
		}
		s.mu.Unlock()
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
}

// Video returns a copy of the video packets received so far.
func (s *Subscriber) Video() []Packet {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Packet(nil), s.video...)
}

// Audio returns a copy of the audio packets received so far.
func (s *Subscriber) Audio() []Packet {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Packet(nil), s.audio...)
}

// WaitVideo waits until cond holds for the video packets received so far.
func (s *Subscriber) WaitVideo(ctx context.Context, cond func([]Packet) bool) error {
	for {
		if cond(s.Video()) {
			return nil
		}
		select {
		case <-s.notify:
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close ends the session.
func (s *Subscriber) Close() {
	_ = Delete(s.Session, "")
	_ = s.PC.Close()
}

// InOrder is what a receiver's jitter buffer does: packets sorted by
// (unwrapped) sequence number, duplicates dropped. Retransmissions arrive
// after later packets; depacketizing in arrival order would mix frames.
func InOrder(pkts []Packet) []Packet {
	if len(pkts) == 0 {
		return nil
	}
	type ext struct {
		n int64
		p Packet
	}
	xs := make([]ext, 0, len(pkts))
	last := int64(pkts[0].SequenceNumber)
	for _, p := range pkts {
		n := last + int64(int16(p.SequenceNumber-uint16(last)))
		xs = append(xs, ext{n, p})
		if n > last {
			last = n
		}
	}
	sort.SliceStable(xs, func(i, j int) bool { return xs[i].n < xs[j].n })
	out := make([]Packet, 0, len(xs))
	for i, x := range xs {
		if i > 0 && x.n == xs[i-1].n {
			continue
		}
		out = append(out, x.p)
	}
	return out
}
