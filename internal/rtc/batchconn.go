package rtc

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// BatchConn is the shared WebRTC UDP socket as pion's ICE UDP mux sees it.
// Between Begin and End (one fan-out pass of the sfu: one packet to every
// viewer) its writes are copied into a queue instead of going out one
// sendto(2) each, and End sends the queue with sendmmsg(2): a pass to 150
// viewers costs a handful of kernel crossings instead of 150. Outside a pass
// writes go straight through.
//
// Passes may overlap (parallel fan-out workers, several streams): writes of
// any goroutine made while at least one pass is open are queued, and every
// End sends everything queued so far. Queues are sent in the order they were
// filled, so packets one goroutine writes to one viewer keep their order.
// Queued writes report success; a send error is only counted (UDP is
// lossy anyway and the viewer's NACKs or PLIs repair it).
type BatchConn struct {
	net.PacketConn
	udp   *net.UDPConn
	batch interface {
		WriteBatch(ms []ipv4.Message, flags int) (int, error)
	}

	open atomic.Int32 // passes in progress

	mu      sync.Mutex // guards fill
	fill    *sendQueue
	flushMu sync.Mutex // guards spare and the sending; taken before mu
	spare   *sendQueue

	sent, batches, errors atomic.Uint64
}

// queueSize is how many datagrams one sendmmsg carries at most (the
// kernel's UIO_MAXIOV bounds it at 1024; 128 keeps the queues at ~200 KB).
const queueSize = 128

type sendQueue struct {
	n     int
	msgs  []ipv4.Message
	slots [queueSize]struct {
		buf  [1500]byte
		addr net.UDPAddr
		ip   [16]byte
		bufs [1][]byte
	}
}

func newSendQueue() *sendQueue {
	q := &sendQueue{msgs: make([]ipv4.Message, queueSize)}
	for i := range q.slots {
		s := &q.slots[i]
		q.msgs[i].Buffers = s.bufs[:]
		q.msgs[i].Addr = &s.addr
	}
	return q
}

// NewBatchConn wraps a UDP socket.
func NewBatchConn(c *net.UDPConn) *BatchConn {
	b := &BatchConn{PacketConn: c, udp: c, fill: newSendQueue(), spare: newSendQueue()}
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() != nil && !a.IP.IsUnspecified() {
		b.batch = ipv4.NewPacketConn(c)
	} else {
		// A dual-stack socket: Linux sends IPv4 sockaddrs through it too.
		b.batch = ipv6.NewPacketConn(c)
	}
	return b
}

// Begin opens a pass: writes are queued until the matching End.
func (b *BatchConn) Begin() { b.open.Add(1) }

// End closes a pass and sends what is queued.
func (b *BatchConn) End() {
	b.open.Add(-1)
	b.flush()
}

// Stats reports datagrams sent through batches, sendmmsg calls, and
// datagrams lost to send errors.
func (b *BatchConn) Stats() (sent, batches, errs uint64) {
	return b.sent.Load(), b.batches.Load(), b.errors.Load()
}

// WriteTo implements net.PacketConn.
func (b *BatchConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if b.open.Load() == 0 || len(p) > 1500 {
		return b.PacketConn.WriteTo(p, addr)
	}
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return b.PacketConn.WriteTo(p, addr)
	}
	return b.enqueue(p, ua.AddrPort())
}

// WriteToAddrPort is the allocation-free write pion's mux prefers.
func (b *BatchConn) WriteToAddrPort(p []byte, addr netip.AddrPort) (int, error) {
	if b.open.Load() == 0 || len(p) > 1500 {
		return b.udp.WriteToUDPAddrPort(p, addr)
	}
	return b.enqueue(p, addr)
}

// ReadFromAddrPort is the allocation-free read pion's mux prefers.
func (b *BatchConn) ReadFromAddrPort(p []byte) (int, netip.AddrPort, error) {
	return b.udp.ReadFromUDPAddrPort(p)
}

func (b *BatchConn) enqueue(p []byte, addr netip.AddrPort) (int, error) {
	for {
		b.mu.Lock()
		q := b.fill
		if q.n < queueSize {
			s := &q.slots[q.n]
			s.bufs[0] = s.buf[:copy(s.buf[:], p)]
			ip := addr.Addr().Unmap()
			if ip.Is4() {
				a4 := ip.As4()
				copy(s.ip[:], a4[:])
				s.addr.IP = s.ip[:4]
			} else {
				s.ip = ip.As16()
				s.addr.IP = s.ip[:16]
			}
			s.addr.Port = int(addr.Port())
			q.n++
			b.mu.Unlock()
			return len(p), nil
		}
		b.mu.Unlock()
		b.flush() // full: send it and queue into the emptied one
	}
}

// flush sends the queue being filled. flushMu makes queues go out in the
// order they were filled.
func (b *BatchConn) flush() {
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	b.mu.Lock()
	q := b.fill
	if q.n == 0 {
		b.mu.Unlock()
		return
	}
	b.fill, b.spare = b.spare, q
	b.mu.Unlock()
	for off := 0; off < q.n; {
		n, err := b.batch.WriteBatch(q.msgs[off:q.n], 0)
		b.batches.Add(1)
		if err != nil {
			// Skip the datagram that failed (e.g. an unreachable
			// viewer) and send the rest.
			b.errors.Add(1)
			n++
		} else {
			b.sent.Add(uint64(n))
		}
		off += n
	}
	q.n = 0
}
