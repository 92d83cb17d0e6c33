package sfu

// packetCache keeps the last packets of one outgoing track, indexed by the
// outgoing sequence number, so a subscriber's NACK can be answered from the
// sfu instead of going back to the publisher. Because all viewers of a stream
// share one outgoing timeline, one cache per track serves every subscriber;
// pion's per-sender NACK responder would keep a copy per viewer instead.
//
// Slots are fixed 1500-byte arrays allocated once: storing and looking up a
// packet allocates nothing. Not safe for concurrent use; the forwarder guards it.
type packetCache struct {
	slots []cachedPacket
	mask  uint16
}

type cachedPacket struct {
	valid  bool
	seq    uint16
	ts     uint32
	marker bool
	n      int
	buf    [maxPacketPayload]byte
}

// maxPacketPayload bounds what the caches hold; WebRTC payloads stay under
// ~1200 bytes, so anything larger is a malformed or non-WebRTC source.
const maxPacketPayload = 1500

// newPacketCache makes a cache of size slots, rounded up to a power of two
// (at most 32768 so that a slot never aliases a still-live sequence number).
func newPacketCache(size int) *packetCache {
	n := 1
	for n < size && n < 32768 {
		n <<= 1
	}
	return &packetCache{slots: make([]cachedPacket, n), mask: uint16(n - 1)}
}

func (c *packetCache) store(seq uint16, ts uint32, marker bool, payload []byte) {
	if len(payload) > maxPacketPayload {
		return
	}
	s := &c.slots[seq&c.mask]
	s.valid, s.seq, s.ts, s.marker = true, seq, ts, marker
	s.n = copy(s.buf[:], payload)
}

// get returns the packet with that sequence number, if still held. The
// returned payload aliases the cache: use it before the next store.
func (c *packetCache) get(seq uint16) (ts uint32, marker bool, payload []byte, ok bool) {
	s := &c.slots[seq&c.mask]
	if !s.valid || s.seq != seq {
		return 0, false, nil, false
	}
	return s.ts, s.marker, s.buf[:s.n], true
}
