package ingest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/streamd/streamd/internal/rtc"
	"github.com/streamd/streamd/sfu"
)

// Directory says which node of a cluster publishes a stream (declared here,
// implemented over Redis, wired in internal/app).
type Directory interface {
	Origin(ctx context.Context, stream string) (nodeURL string, err error)
}

// Relay pulls streams published on other nodes of a cluster: when viewers
// on this node watch a stream that is live elsewhere, it opens one WHEP
// session to the origin node and publishes what it receives into the local
// sfu, which fans it out here. One pull per stream per node, whatever the
// number of local viewers; it ends when the last local viewer leaves.
type Relay struct {
	API *webrtc.API // receiving side: rtc.WebRTC.PublisherAPI
	// Client makes the WHEP requests to origins (default: its own client
	// with a 10 s timeout, not http.DefaultClient's shared, unbounded one).
	Client   *http.Client
	SFU      *sfu.SFU
	Dir      Directory
	Self     string        // this node's URL, never pulled from
	Interval time.Duration // how often watched streams are checked (default 1 s)
	Idle     time.Duration // a pull with no local viewers ends after this (default 10 s)
	// Credential returns what opens stream on the origin (private streams
	// need a viewer credential there too); nil sends none.
	Credential func(stream string) string
	Logger     *slog.Logger

	mu       sync.Mutex
	pulls    map[string]*relayPull
	kick     chan string
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	loopDone chan struct{}
}

// Initialize starts the relay loop.
func (r *Relay) Initialize() error {
	if r.Interval == 0 {
		r.Interval = time.Second
	}
	if r.Idle == 0 {
		r.Idle = 10 * time.Second
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	if r.Client == nil {
		r.Client = &http.Client{Timeout: 10 * time.Second}
	}
	r.Self = strings.TrimRight(r.Self, "/")
	r.pulls = map[string]*relayPull{}
	r.kick = make(chan string, 64)
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.loopDone = make(chan struct{})
	go r.loop()
	return nil
}

// Close stops every pull.
func (r *Relay) Close() {
	r.cancel()
	<-r.loopDone
	r.mu.Lock()
	pulls := make([]*relayPull, 0, len(r.pulls))
	for _, p := range r.pulls {
		pulls = append(pulls, p)
	}
	r.mu.Unlock()
	for _, p := range pulls {
		_ = p.Close()
	}
	r.wg.Wait() // the pulls' track readers end with their peer connections
}

// Kick asks for a check of stream now (a viewer just arrived).
func (r *Relay) Kick(stream string) {
	select {
	case r.kick <- stream:
	default:
	}
}

// Pulling reports whether the stream's local publication is a relay pull.
func (r *Relay) Pulling(stream string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pulls[stream] != nil
}

func (r *Relay) loop() {
	defer close(r.loopDone)
	t := time.NewTicker(r.Interval)
	defer t.Stop()
	idleSince := map[string]time.Time{}
	for {
		select {
		case <-r.ctx.Done():
			return
		case s := <-r.kick:
			r.check(s)
		case <-t.C:
			watched := map[string]bool{}
			for _, s := range r.SFU.WatchedStreams() {
				watched[s] = true
				delete(idleSince, s)
				r.check(s)
			}
			r.mu.Lock()
			var idle []*relayPull
			for s, p := range r.pulls {
				if watched[s] {
					continue
				}
				if since, ok := idleSince[s]; !ok {
					idleSince[s] = time.Now()
				} else if time.Since(since) > r.Idle {
					// Close unregisters the pull itself, after ending its
					// publication, so the live hook still knows the
					// "offline" is this relay's and not the origin's.
					idle = append(idle, p)
					delete(idleSince, s)
				}
			}
			r.mu.Unlock()
			for _, p := range idle {
				r.Logger.Info("relay idle; stopping pull", "stream", p.stream)
				_ = p.Close()
			}
		}
	}
}

// check starts a pull of stream if it is watched here, not live here and
// live on another node.
func (r *Relay) check(stream string) {
	r.mu.Lock()
	_, pulling := r.pulls[stream]
	r.mu.Unlock()
	if pulling || r.SFU.Live(stream) {
		return
	}
	ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
	defer cancel()
	origin, err := r.Dir.Origin(ctx, stream)
	if err != nil {
		r.Logger.Warn("relay: origin lookup", "stream", stream, "err", err)
		return
	}
	origin = strings.TrimRight(origin, "/")
	if origin == "" || origin == r.Self {
		return
	}
	if err := r.start(ctx, stream, origin); err != nil {
		r.Logger.Warn("relay: pull failed", "stream", stream, "origin", origin, "err", err)
		return
	}
	r.Logger.Info("relay: pulling", "stream", stream, "origin", origin)
}

type relayPull struct {
	r       *Relay
	stream  string
	session string
	peerFeed
	once sync.Once
}

func (r *Relay) start(ctx context.Context, stream, origin string) (err error) {
	peer, err := rtc.NewPeer(r.API)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = peer.Close()
		}
	}()
	p := &relayPull{r: r, stream: stream, peerFeed: peerFeed{peer: peer, wg: &r.wg}}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := peer.PC.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			return err
		}
	}
	peer.PC.OnTrack(func(t *webrtc.TrackRemote, rcv *webrtc.RTPReceiver) { p.forward(t, rcv) })
	offer, err := peer.Offer(ctx)
	if err != nil {
		return err
	}
	endpoint := origin + "/whep/" + stream
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewBufferString(offer))
	req.Header.Set("Content-Type", "application/sdp")
	if r.Credential != nil {
		req.Header.Set("Authorization", "Bearer "+r.Credential(stream))
	}
	res, err := r.Client.Do(req)
	if err != nil {
		return fmt.Errorf("whep %s: %w", endpoint, err)
	}
	body, _ := io.ReadAll(io.LimitReader(res.Body, rtc.MaxSDP+1))
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		return fmt.Errorf("whep %s: HTTP %d: %s", endpoint, res.StatusCode, body)
	}
	if loc, err := res.Request.URL.Parse(res.Header.Get("Location")); err == nil {
		p.session = loc.String()
	}
	if err := peer.Accept(string(body)); err != nil {
		return err
	}
	r.mu.Lock()
	r.pulls[stream] = p
	r.mu.Unlock()
	pub := r.SFU.Stream(stream).Publish(p)
	p.setPublication(pub)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		<-peer.Ended() // failed, or closed by Close
		_ = p.Close()
	}()
	return nil
}

// Close ends the pull (also called when a local publisher takes the stream over).
func (p *relayPull) Close() error {
	p.once.Do(func() {
		// The publication ends while the pull is still registered, so the
		// live hook knows this "offline" is a relay's, not the origin's.
		if pub := p.publication(); pub != nil {
			pub.Close()
		}
		p.r.mu.Lock()
		if p.r.pulls[p.stream] == p {
			delete(p.r.pulls, p.stream)
		}
		p.r.mu.Unlock()
		_ = p.peer.Close()
		if p.session != "" {
			// Bounded: Close runs inside a takeover, which must not hang on
			// an origin that stopped answering.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			req, _ := http.NewRequestWithContext(ctx, http.MethodDelete, p.session, nil)
			if res, err := p.r.Client.Do(req); err == nil {
				res.Body.Close()
			}
			cancel()
		}
	})
	return nil
}
