package sfu

import (
	"sync"
	"sync/atomic"
)

// subscriberSet is who a forwarder writes to: a copy-on-write list read
// without locks on every packet, and joiners waiting for the next packet,
// where the forwarder decides how they start (the keyframe cache, this
// packet's keyframe, or a keyframe request).
type subscriberSet struct {
	mu         sync.Mutex
	live       atomic.Pointer[[]*downTrack]
	pending    []*downTrack
	hasPending atomic.Bool
}

func newSubscriberSet() *subscriberSet {
	s := &subscriberSet{}
	empty := []*downTrack{}
	s.live.Store(&empty)
	return s
}

// list is the current live list; never modify it.
func (s *subscriberSet) list() []*downTrack { return *s.live.Load() }

// add queues a joiner; it is admitted at the next packet.
func (s *subscriberSet) add(d *downTrack) {
	s.mu.Lock()
	s.pending = append(s.pending, d)
	s.hasPending.Store(true)
	s.mu.Unlock()
}

// admit moves the joiners into the live list and returns them.
func (s *subscriberSet) admit() []*downTrack {
	if !s.hasPending.Load() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	pend := s.pending
	s.pending = nil
	s.hasPending.Store(false)
	cur := *s.live.Load()
	next := make([]*downTrack, 0, len(cur)+len(pend))
	next = append(append(next, cur...), pend...)
	s.live.Store(&next)
	return pend
}

// remove takes d out, whether it is live or still waiting.
func (s *subscriberSet) remove(d *downTrack) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, p := range s.pending {
		if p == d {
			s.pending = append(s.pending[:i:i], s.pending[i+1:]...)
			s.hasPending.Store(len(s.pending) > 0)
			break
		}
	}
	cur := *s.live.Load()
	next := make([]*downTrack, 0, len(cur))
	for _, p := range cur {
		if p != d {
			next = append(next, p)
		}
	}
	s.live.Store(&next)
}

// count is the number of live and waiting members that are viewers or taps
// (in-process sinks are not viewers).
func (s *subscriberSet) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, d := range *s.live.Load() {
		if d.sink == nil {
			n++
		}
	}
	for _, d := range s.pending {
		if d.sink == nil {
			n++
		}
	}
	return n
}
