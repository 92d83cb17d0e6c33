package sfu

// gopCache holds every packet of one video track since its last keyframe,
// already rewritten to the outgoing timeline. A new subscriber is sent the
// whole group of pictures at once, so it shows a picture within a round trip
// instead of waiting for the publisher's next keyframe (or, for RTSP cameras
// that cannot be asked, for the end of a multi-second GOP).
//
// Payloads live in one byte arena reused from keyframe to keyframe, so the
// steady state allocates nothing. The cache is bounded in bytes: a GOP that
// outgrows it is dropped and late joiners fall back to a keyframe request.
type gopCache struct {
	maxBytes int
	arena    []byte
	entries  []gopEntry
	keyTS    uint32 // RTP timestamp of the keyframe that opens the cache
	valid    bool   // a keyframe has been seen and nothing overflowed since
}

type gopEntry struct {
	seq    uint16
	ts     uint32
	marker bool
	off    int
	n      int
}

func newGOPCache(maxBytes int) *gopCache {
	return &gopCache{maxBytes: maxBytes}
}

// startKeyframe empties the cache and opens it at a keyframe with timestamp ts.
func (g *gopCache) startKeyframe(ts uint32) {
	g.arena = g.arena[:0]
	g.entries = g.entries[:0]
	g.keyTS = ts
	g.valid = true
}

// add appends a packet that follows the opening keyframe. It returns false
// when the cache overflowed (and is now invalid until the next keyframe).
func (g *gopCache) add(seq uint16, ts uint32, marker bool, payload []byte) bool {
	if !g.valid {
		return false
	}
	if len(g.arena)+len(payload) > g.maxBytes {
		g.invalidate()
		return false
	}
	off := len(g.arena)
	g.arena = append(g.arena, payload...)
	g.entries = append(g.entries, gopEntry{seq: seq, ts: ts, marker: marker, off: off, n: len(payload)})
	return true
}

func (g *gopCache) invalidate() {
	g.valid = false
	g.arena = g.arena[:0]
	g.entries = g.entries[:0]
}

// bytes is the arena's current size (for metrics).
func (g *gopCache) bytes() int { return len(g.arena) }

// each calls fn for every cached packet in arrival order; payloads alias the arena.
func (g *gopCache) each(fn func(seq uint16, ts uint32, marker bool, payload []byte)) {
	for _, e := range g.entries {
		fn(e.seq, e.ts, e.marker, g.arena[e.off:e.off+e.n])
	}
}
