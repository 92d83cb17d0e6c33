// RTSP publishing sessions: how one becomes (and stops being) the sfu
// source of its stream.

package ingest

import (
	"sync"

	"github.com/bluenviron/gortsplib/v4"

	"github.com/streamd/streamd/sfu"
)

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
	if p.ended { // closed while publishing
		p.mu.Unlock()
		pub.Close()
		return
	}
	// p.pub is set with the registration, under p.mu: end, which undoes
	// the registration when it sees p.pub, cannot run in between.
	p.pub = pub
	p.s.mu.Lock()
	p.s.publishers[p.stream] = p
	p.s.mu.Unlock()
	p.s.m.publish.Inc()
	p.mu.Unlock()
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
	pub := p.pub
	p.mu.Unlock()
	if pub != nil {
		pub.Close()
	}
	p.s.mu.Lock()
	if p.s.publishers[p.stream] == p {
		delete(p.s.publishers, p.stream)
	}
	p.s.mu.Unlock()
	if pub != nil {
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
