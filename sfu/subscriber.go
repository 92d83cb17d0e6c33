package sfu

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/streamd/streamd/internal/whipx"
)

// ErrBadOffer wraps SDP offers pion cannot use.
var ErrBadOffer = errors.New("bad offer")

// ErrClosed is returned once the sfu is shutting down.
var ErrClosed = errors.New("sfu closed")

// Subscriber is one WHEP viewer session.
type Subscriber struct {
	id    string
	etag  string
	s     *SFU
	st    *Stream
	pc    *webrtc.PeerConnection
	video *downTrack
	audio *downTrack

	admitOnce sync.Once
	release   func() // uncounts the session's transport (set at admission)
	closeOnce sync.Once
	done      chan struct{}
}

// ID is the session id used in the WHEP resource URL.
func (sub *Subscriber) ID() string { return sub.id }

// ETag identifies the session's ICE state for PATCH If-Match.
func (sub *Subscriber) ETag() string { return sub.etag }

// Subscribe answers a viewer's offer. A known stream that is not live yet is
// accepted: video starts at the publisher's first keyframe.
func (s *SFU) Subscribe(ctx context.Context, streamID, offer string) (*Subscriber, string, error) {
	if s.Registry != nil {
		ok, err := s.Registry.StreamExists(ctx, streamID)
		if err != nil {
			return nil, "", fmt.Errorf("look up stream: %w", err)
		}
		if !ok {
			return nil, "", ErrUnknownStream
		}
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, "", ErrClosed
	}
	st := s.Stream(streamID)
	// A viewer that cannot decode the stream's video is told so now, before
	// a session exists, not left connected to a black picture.
	codec, live := st.Codec(webrtc.RTPCodecTypeVideo)
	if err := whipx.CheckCodec(offer, codec, live); err != nil {
		return nil, "", err
	}
	pc, err := s.API.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, "", fmt.Errorf("new peer connection: %w", err)
	}
	id, etag := whipx.NewSession()
	sub := &Subscriber{id: id, etag: etag, s: s, st: st, pc: pc, done: make(chan struct{})}
	answer, err := sub.negotiate(ctx, offer)
	if err != nil {
		_ = pc.Close()
		return nil, "", err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = pc.Close()
		return nil, "", ErrClosed
	}
	s.sessions[sub.id] = sub
	s.mu.Unlock()
	s.m.subscribers.Inc()
	if s.OnSubscribe != nil {
		s.OnSubscribe(streamID)
	}

	pc.OnConnectionStateChange(func(state webrtc.PeerConnectionState) {
		switch state {
		case webrtc.PeerConnectionStateConnected:
			sub.admitOnce.Do(func() {
				sub.release = s.Transports.Connected("viewer", pc)
				if sub.video != nil {
					st.video.add(sub.video)
				}
				if sub.audio != nil {
					st.audio.add(sub.audio)
				}
			})
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			go sub.Close()
		}
	})
	// A peer that never completes ICE is cleaned up.
	timer := time.AfterFunc(s.Tuning.ConnectTimeout, func() {
		if pc.ConnectionState() != webrtc.PeerConnectionStateConnected {
			s.Logger.Info("viewer never connected; closing", "stream", streamID, "session", sub.id)
			sub.Close()
		}
	})
	go func() { <-sub.done; timer.Stop() }()
	return sub, answer, nil
}

func (sub *Subscriber) negotiate(ctx context.Context, offer string) (string, error) {
	pc := sub.pc
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadOffer, err)
	}
	msid := "streamd-" + sub.st.id
	if strings.Contains(offer, "m=video") {
		sub.video = newDownTrack("video", msid, webrtc.RTPCodecTypeVideo)
		if err := sub.addTrack(sub.video, sub.st.video); err != nil {
			return "", err
		}
	}
	if strings.Contains(offer, "m=audio") {
		sub.audio = newDownTrack("audio", msid, webrtc.RTPCodecTypeAudio)
		if err := sub.addTrack(sub.audio, sub.st.audio); err != nil {
			return "", err
		}
	}
	if sub.video == nil && sub.audio == nil {
		return "", fmt.Errorf("%w: the offer has no audio or video section", ErrBadOffer)
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadOffer, err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(ans); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadOffer, err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", fmt.Errorf("gather candidates: %w", ctx.Err())
	}
	return pc.LocalDescription().SDP, nil
}

func (sub *Subscriber) addTrack(d *downTrack, f *forwarder) error {
	sender, err := sub.pc.AddTrack(d)
	if err != nil {
		return fmt.Errorf("add %s track: %w", d.kind, err)
	}
	sub.s.wg.Add(1)
	go func() {
		defer sub.s.wg.Done()
		sub.readRTCP(sender, d, f)
	}()
	return nil
}

// readRTCP serves the viewer's feedback: keyframe requests go to the stream
// (merged and throttled there), NACKs are answered from the shared cache.
func (sub *Subscriber) readRTCP(sender *webrtc.RTPSender, d *downTrack, f *forwarder) {
	var seqs []uint16
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				sub.s.m.pliReceived.Inc()
				if f.video {
					sub.st.requestKeyframe()
				}
			case *rtcp.TransportLayerNack:
				seqs = seqs[:0]
				for i := range p.Nacks {
					p.Nacks[i].Range(func(s uint16) bool {
						seqs = append(seqs, s)
						return len(seqs) < 1024
					})
				}
				if len(seqs) > 0 {
					f.retransmit(d, seqs)
				}
			}
		}
	}
}

// Close ends the session.
func (sub *Subscriber) Close() {
	sub.closeOnce.Do(func() {
		// Waits for an admission in progress; none can start after this.
		sub.admitOnce.Do(func() {})
		if sub.release != nil {
			sub.release()
		}
		if sub.video != nil {
			sub.st.video.remove(sub.video)
		}
		if sub.audio != nil {
			sub.st.audio.remove(sub.audio)
		}
		_ = sub.pc.Close()
		sub.s.mu.Lock()
		delete(sub.s.sessions, sub.id)
		sub.s.mu.Unlock()
		sub.s.m.subscribers.Dec()
		close(sub.done)
	})
}

// Session returns a live viewer session by id.
func (s *SFU) Session(id string) *Subscriber {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[id]
}
