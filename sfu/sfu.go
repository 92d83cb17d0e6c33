// Package sfu is the selective forwarding unit: per stream it takes the
// tracks of one live publisher (whatever the ingest) and forwards them to
// every WHEP subscriber on one shared outgoing RTP timeline. It keeps a
// keyframe (GOP) cache for fast joins, merges keyframe requests, answers
// NACKs from a shared packet cache, and tells the overlay which RTP timestamp
// is live now (the media clock).
package sfu

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd/internal/whipx"
)

// Tuning holds the sfu's knobs with their defaults (DefaultTuning).
type Tuning struct {
	// PLIInterval merges keyframe requests: at most one per interval reaches a publisher.
	PLIInterval time.Duration
	// KeyframeCacheBytes bounds the GOP cache of each video track.
	KeyframeCacheBytes int
	// NACKCacheSize is the number of recent video packets kept for retransmission.
	NACKCacheSize int
	// ConnectTimeout ends a session whose peer has not connected by then.
	ConnectTimeout time.Duration
	// ClockExtrapolation bounds how far the media clock runs past the newest packet.
	ClockExtrapolation time.Duration
	// LiveTimeout: a publisher silent for longer is not "live" for the media clock.
	LiveTimeout time.Duration
	// RetransmitRate caps NACK retransmissions per viewer track (packets/s).
	RetransmitRate float64
}

// DefaultTuning returns the defaults.
func DefaultTuning() Tuning {
	return Tuning{
		PLIInterval:        500 * time.Millisecond,
		KeyframeCacheBytes: 8 << 20,
		NACKCacheSize:      1024,
		ConnectTimeout:     15 * time.Second,
		ClockExtrapolation: 500 * time.Millisecond,
		LiveTimeout:        3 * time.Second,
		RetransmitRate:     400,
	}
}

// Registry tells the sfu which streams exist (declared here, implemented by
// the streams registry and wired by cmd/streamd).
type Registry interface {
	StreamExists(ctx context.Context, id string) (bool, error)
}

// ErrUnknownStream is returned for streams the registry does not know.
var ErrUnknownStream = errors.New("unknown stream")

// SFU owns the streams. Configure the exported fields, then Initialize.
type SFU struct {
	API      *webrtc.API // the subscriber API (WebRTC.SubscriberAPI)
	Registry Registry
	Tuning   Tuning // zero value: DefaultTuning
	OnLive   func(stream string, live bool)
	// OnSubscribe is told when a viewer session starts (a cluster node uses
	// it to pull a stream published on another node).
	OnSubscribe func(stream string)
	// ICELinks are the Link headers (TURN servers) of WHEP answers; nil: none.
	ICELinks func(*http.Request) []string
	// Transports counts viewer sessions by transport (nil: not counted).
	Transports *whipx.Transports
	Registerer prometheus.Registerer
	Logger     *slog.Logger

	m        *metrics
	mu       sync.Mutex
	streams  map[string]*Stream
	sessions map[string]*Subscriber
	closed   bool
	wg       sync.WaitGroup
}

// Initialize prepares the sfu.
func (s *SFU) Initialize() error {
	if s.Tuning == (Tuning{}) {
		s.Tuning = DefaultTuning()
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	s.m = newMetrics(s.Registerer)
	s.streams = map[string]*Stream{}
	s.sessions = map[string]*Subscriber{}
	return nil
}

// Close ends every session and publication.
func (s *SFU) Close() {
	s.mu.Lock()
	s.closed = true
	subs := make([]*Subscriber, 0, len(s.sessions))
	for _, sub := range s.sessions {
		subs = append(subs, sub)
	}
	streams := make([]*Stream, 0, len(s.streams))
	for _, st := range s.streams {
		streams = append(streams, st)
	}
	s.mu.Unlock()
	for _, sub := range subs {
		sub.Close()
	}
	for _, st := range streams {
		st.unpublishAll()
	}
	s.wg.Wait()
}

// Stream returns the stream with that id, creating its state on first use.
func (s *SFU) Stream(id string) *Stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.streams[id]
	if !ok {
		st = newStream(id, s)
		s.streams[id] = st
	}
	return st
}

// RemoveStream ends a deleted stream: its viewers' sessions and its
// publisher are closed and its state (caches, timeline) is freed.
func (s *SFU) RemoveStream(id string) {
	s.mu.Lock()
	st := s.streams[id]
	delete(s.streams, id)
	var subs []*Subscriber
	for _, sub := range s.sessions {
		if sub.st.id == id {
			subs = append(subs, sub)
		}
	}
	s.mu.Unlock()
	for _, sub := range subs {
		sub.Close()
	}
	if st != nil {
		st.unpublishAll()
		st.video.dropGOP()
	}
}

func (s *SFU) lookup(id string) *Stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams[id]
}

// MediaTime implements the overlay's media clock: the RTP timestamp (in the
// timeline viewers receive) of the video frame live on the stream now.
func (s *SFU) MediaTime(stream string) (uint32, bool) {
	st := s.lookup(stream)
	if st == nil {
		return 0, false
	}
	return st.MediaTime(time.Now())
}

// Live reports whether a publisher is live on the stream.
func (s *SFU) Live(stream string) bool {
	st := s.lookup(stream)
	return st != nil && st.Live()
}

// WatchedStreams lists the streams that have viewer sessions on this node.
func (s *SFU) WatchedStreams() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, sub := range s.sessions {
		if id := sub.st.id; !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// Subscribers reports the number of WHEP sessions on the stream.
func (s *SFU) Subscribers(stream string) int {
	st := s.lookup(stream)
	if st == nil {
		return 0
	}
	return st.video.count()
}
