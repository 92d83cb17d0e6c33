package rtc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// MaxSDP caps offers and answers. Real ones are 3–10 KB.
const MaxSDP = 64 << 10

// ErrBadOffer is the one error for an SDP offer streamd cannot use (not
// SDP, too large, no media, no codec in common). Its message says why.
var ErrBadOffer = errors.New("bad SDP offer")

// Peer is the one peer-connection wrapper of WHIP sessions, WHEP viewers
// and cluster relay pulls. It negotiates, reports the connection state on
// channels (pion calls state handlers on goroutines of its own; ours only
// close channels, so nothing they do can block or outlive Close), and its
// Close waits for pion's goroutines and for those handlers.
type Peer struct {
	PC *webrtc.PeerConnection

	connected, ended  chan struct{}
	connOnce, endOnce sync.Once

	mu     sync.Mutex
	closed bool
	cbs    sync.WaitGroup // state handlers running now
}

// NewPeer makes a peer connection on api.
func NewPeer(api *webrtc.API) (*Peer, error) {
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("new peer connection: %w", err)
	}
	p := &Peer{PC: pc, connected: make(chan struct{}), ended: make(chan struct{})}
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if !p.enter() {
			return
		}
		defer p.cbs.Done()
		switch s {
		case webrtc.PeerConnectionStateConnected:
			p.connOnce.Do(func() { close(p.connected) })
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			p.endOnce.Do(func() { close(p.ended) })
		}
	})
	return p, nil
}

// enter registers a running handler unless the peer is closed.
func (p *Peer) enter() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.cbs.Add(1)
	return true
}

// Connected is closed once ICE and DTLS are up.
func (p *Peer) Connected() <-chan struct{} { return p.connected }

// Ended is closed when the connection failed or was closed.
func (p *Peer) Ended() <-chan struct{} { return p.ended }

// ErrNotConnected is returned by WaitConnected when the peer did not connect in time.
var ErrNotConnected = errors.New("peer did not connect in time")

// WaitConnected waits until the peer is connected, the connection ends,
// timeout passes or ctx is done.
func (p *Peer) WaitConnected(ctx context.Context, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.connected:
		return nil
	case <-p.ended:
		return fmt.Errorf("%w: the connection ended", ErrNotConnected)
	case <-t.C:
		return ErrNotConnected
	case <-ctx.Done():
		return ctx.Err()
	}
}

// CheckOffer rejects what cannot be an SDP offer before pion parses it.
func CheckOffer(offer string) error {
	if len(offer) > MaxSDP {
		return fmt.Errorf("%w: larger than %d bytes", ErrBadOffer, MaxSDP)
	}
	if !strings.HasPrefix(strings.TrimSpace(offer), "v=0") {
		return fmt.Errorf("%w: it must start with v=0", ErrBadOffer)
	}
	return nil
}

// Answer negotiates the answer to a remote offer. addTracks (may be nil)
// runs between applying the offer and creating the answer: WHEP adds its
// outgoing tracks there. An offer without a media section streamd takes,
// or whose media share no codec with streamd's, is ErrBadOffer. Answer
// returns once ICE gathering is complete (the answer carries the
// candidates: WHIP/WHEP clients need not trickle).
func (p *Peer) Answer(ctx context.Context, offer string, addTracks func(*sdp.SessionDescription) error) (string, error) {
	if err := CheckOffer(offer); err != nil {
		return "", err
	}
	desc := webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}
	parsed, err := desc.Unmarshal()
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadOffer, err)
	}
	if pruneOffer(parsed) {
		b, err := parsed.Marshal()
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrBadOffer, err)
		}
		desc.SDP = string(b)
	}
	if err := p.PC.SetRemoteDescription(desc); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadOffer, err)
	}
	if addTracks != nil {
		if err := addTracks(parsed); err != nil {
			return "", err
		}
	}
	ans, err := p.PC.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadOffer, err)
	}
	if err := usableMedia(ans.SDP); err != nil {
		return "", err
	}
	return p.setLocal(ctx, ans)
}

// Offer creates a local offer (for a pull: receive-only transceivers added
// by the caller) and waits for ICE gathering.
func (p *Peer) Offer(ctx context.Context) (string, error) {
	o, err := p.PC.CreateOffer(nil)
	if err != nil {
		return "", fmt.Errorf("create offer: %w", err)
	}
	return p.setLocal(ctx, o)
}

// Accept applies the remote answer to our offer.
func (p *Peer) Accept(answer string) error {
	if len(answer) > MaxSDP {
		return fmt.Errorf("answer larger than %d bytes", MaxSDP)
	}
	if err := p.PC.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return fmt.Errorf("apply answer: %w", err)
	}
	return nil
}

func (p *Peer) setLocal(ctx context.Context, d webrtc.SessionDescription) (string, error) {
	gathered := webrtc.GatheringCompletePromise(p.PC)
	if err := p.PC.SetLocalDescription(d); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadOffer, err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", fmt.Errorf("gather candidates: %w", ctx.Err())
	}
	return p.PC.LocalDescription().SDP, nil
}

// usableMedia is the codec filter: pion rejects (port 0) each media section
// with no codec in common; an answer with none left is a bad offer, said
// plainly rather than as a session that connects and never plays.
func usableMedia(answer string) error {
	var d sdp.SessionDescription
	if err := d.UnmarshalString(answer); err != nil {
		return fmt.Errorf("%w: %v", ErrBadOffer, err)
	}
	media := 0
	for _, m := range d.MediaDescriptions {
		kind := m.MediaName.Media
		if kind != "audio" && kind != "video" {
			continue
		}
		media++
		if m.MediaName.Port.Value != 0 && len(m.MediaName.Formats) > 0 {
			return nil
		}
	}
	if media == 0 {
		return fmt.Errorf("%w: the offer has no audio or video section", ErrBadOffer)
	}
	return fmt.Errorf("%w: no codec in common (streamd takes H.264, VP8, VP9, AV1, H.265, Opus, PCMU, PCMA)", ErrBadOffer)
}

// Close closes the connection and waits for pion's goroutines and the
// state handlers. Safe to call more than once and from any goroutine but
// pion's own callbacks.
func (p *Peer) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.PC.GracefulClose()
	p.cbs.Wait()
	p.endOnce.Do(func() { close(p.ended) })
	return err
}
