package rtc

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// BatchConn is the shared WebRTC UDP socket as pion's ICE UDP mux sees it.
// While a batch is open (Begin … End: the sfu opens one per video frame, or
// per packet for audio) its writes are copied into a queue instead of each
// going out with its own sendto(2); when the last open batch ends the queue
// goes out with one sendmmsg(2), and where the kernel supports UDP
// segmentation offload (UDP_SEGMENT, Linux 4.18+) the equal-size packets of
// one frame to one viewer travel as one datagram train: one trip through
// the network stack instead of one per packet. Outside a batch writes go
// straight through.
//
// Batches may overlap (parallel fan-out workers, several streams); what is
// queued waits at most holdMax before it is sent anyway. Queues are sent in
// the order they were filled and a destination's datagrams keep their
// order, so each viewer's packets stay in order. Queued writes report
// success; a send error is only counted (UDP is lossy anyway and the
// viewer's NACKs or PLIs repair it).
type BatchConn struct {
	net.PacketConn
	udp   *net.UDPConn
	batch *ipv4.PacketConn // only WriteBatch: sockaddrs are per message

	hold time.Duration // holdMax; tests lengthen it
	open atomic.Int32  // batches in progress
	gso  atomic.Bool   // UDP_SEGMENT works on this socket

	mu      sync.Mutex // guards fill
	fill    *sendQueue
	timer   *time.Timer
	flushMu sync.Mutex // guards spare and the sending; taken before mu
	spare   *sendQueue

	sent, batches, errors, trains atomic.Uint64
}

const (
	// queueSize datagrams are held at most (a keyframe's packets to a few
	// dozen viewers); a full queue is sent at once.
	queueSize = 2048
	// holdMax bounds how long a queued datagram waits for its batch to end.
	holdMax = 3 * time.Millisecond
	// maxSegments per UDP_SEGMENT train (the kernel's UDP_MAX_SEGMENTS).
	maxSegments = 64
	maxTrain    = 65000
)

type sendQueue struct {
	n     int
	arena []byte
	ents  [queueSize]struct {
		addr     netip.AddrPort
		off, len int
		next     int // next entry to the same destination (-1: none)
	}
	// flush's scratch, reused.
	heads map[netip.AddrPort][2]int // first and last entry per destination
	order []netip.AddrPort
	msgs  []ipv4.Message
	iov   [][]byte
	oob   []byte
	addrs []net.UDPAddr
	ips   [][16]byte
}

func newSendQueue() *sendQueue {
	return &sendQueue{
		arena: make([]byte, 0, queueSize*1500),
		heads: make(map[netip.AddrPort][2]int),
		msgs:  make([]ipv4.Message, 0, queueSize),
		iov:   make([][]byte, queueSize),
		oob:   make([]byte, queueSize*unix.CmsgSpace(2)),
		addrs: make([]net.UDPAddr, queueSize),
		ips:   make([][16]byte, queueSize),
	}
}

// NewBatchConn wraps a UDP socket.
func NewBatchConn(c *net.UDPConn) *BatchConn {
	b := &BatchConn{PacketConn: c, udp: c, hold: holdMax, fill: newSendQueue(), spare: newSendQueue()}
	// The ipv4 wrapper only adds sendmmsg here: sockaddrs are given per
	// message, and Linux takes IPv4 ones on a dual-stack socket too.
	b.batch = ipv4.NewPacketConn(c)
	// Segmentation offload is turned on by EnableGSO (streamd does by
	// default). A train leaves a NIC as back-to-back datagrams, as a
	// sendmmsg batch does: it is no burstier on the wire, only cheaper to
	// send.
	b.timer = time.AfterFunc(time.Hour, b.flush)
	b.timer.Stop()
	return b
}

// EnableGSO sends the equal-size datagrams of one batch to one destination
// as UDP_SEGMENT trains, where the kernel supports it; it reports whether
// it does. A send that the kernel refuses for the train (a device without
// checksum offload answers EIO) turns it off for good and goes out
// datagram by datagram.
func (b *BatchConn) EnableGSO() bool {
	ok := false
	if raw, err := b.udp.SyscallConn(); err == nil {
		_ = raw.Control(func(fd uintptr) {
			// Kernels before 4.18 do not know the option.
			_, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
			ok = err == nil
		})
	}
	b.gso.Store(ok)
	return ok
}

// GSO reports whether segmentation offload is in use (it is turned off
// for good when the kernel refuses a train).
func (b *BatchConn) GSO() bool { return b.gso.Load() }

// Begin opens a batch: writes are queued until the last open batch ends.
func (b *BatchConn) Begin() { b.open.Add(1) }

// End closes a batch; the last one to end sends what is queued.
func (b *BatchConn) End() {
	if b.open.Add(-1) == 0 {
		b.flush()
	}
}

// Stats reports datagrams sent through batches, sendmmsg calls, datagrams
// lost to send errors, and segmentation-offload trains sent.
func (b *BatchConn) Stats() (sent, batches, errs, trains uint64) {
	return b.sent.Load(), b.batches.Load(), b.errors.Load(), b.trains.Load()
}

// Close stops the hold timer and closes the socket.
func (b *BatchConn) Close() error {
	b.timer.Stop()
	b.flush()
	return b.PacketConn.Close()
}

// WriteTo implements net.PacketConn.
func (b *BatchConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if b.open.Load() == 0 || len(p) > 1500 || !ok {
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
			e := &q.ents[q.n]
			e.addr, e.off, e.len = addr, len(q.arena), len(p)
			q.arena = append(q.arena, p...)
			if q.n == 0 {
				b.timer.Reset(b.hold)
			}
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
	b.send(q, b.gso.Load())
	q.n = 0
	q.arena = q.arena[:0]
}

// send writes q's datagrams: grouped by destination (in order within each),
// equal-size runs as segmentation trains when gso, in sendmmsg calls.
func (b *BatchConn) send(q *sendQueue, gso bool) {
	clear(q.heads)
	q.order = q.order[:0]
	for i := 0; i < q.n; i++ {
		e := &q.ents[i]
		e.next = -1
		if h, ok := q.heads[e.addr]; ok {
			q.ents[h[1]].next = i
			q.heads[e.addr] = [2]int{h[0], i}
		} else {
			q.heads[e.addr] = [2]int{i, i}
			q.order = append(q.order, e.addr)
		}
	}
	q.msgs = q.msgs[:0]
	niov, noob := 0, 0
	cmsg := unix.CmsgSpace(2)
	for ai, addr := range q.order {
		ua := &q.addrs[ai]
		ip := addr.Addr().Unmap()
		if ip.Is4() {
			a4 := ip.As4()
			copy(q.ips[ai][:], a4[:])
			ua.IP = q.ips[ai][:4]
		} else {
			q.ips[ai] = ip.As16()
			ua.IP = q.ips[ai][:16]
		}
		ua.Port = int(addr.Port())
		for i := q.heads[addr][0]; i >= 0; {
			e := &q.ents[i]
			start, size, total := niov, e.len, 0
			for i >= 0 {
				e = &q.ents[i]
				n := niov - start
				if n > 0 && (!gso || e.len > size || n == maxSegments || total+e.len > maxTrain) {
					break
				}
				q.iov[niov] = q.arena[e.off : e.off+e.len]
				niov++
				total += e.len
				i = e.next
				if e.len < size {
					break // a shorter one ends a train
				}
			}
			m := ipv4.Message{Buffers: q.iov[start:niov], Addr: ua}
			if segs := niov - start; segs > 1 {
				oob := q.oob[noob : noob+cmsg]
				noob += cmsg
				h := (*unix.Cmsghdr)(unsafePointer(&oob[0]))
				h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
				h.SetLen(unix.CmsgLen(2))
				binary.NativeEndian.PutUint16(oob[unix.CmsgLen(0):], uint16(size))
				m.OOB = oob
			}
			q.msgs = append(q.msgs, m)
		}
	}
	for off := 0; off < len(q.msgs); {
		n, err := b.batch.WriteBatch(q.msgs[off:], 0)
		b.batches.Add(1)
		if n < 0 {
			n = 0
		}
		for _, m := range q.msgs[off : off+n] {
			b.sent.Add(uint64(len(m.Buffers)))
			if len(m.Buffers) > 1 {
				b.trains.Add(1)
			}
		}
		off += n
		if err != nil {
			m := &q.msgs[off]
			if m.OOB != nil && gsoRefused(err) {
				// No segmentation offload on this path (e.g. a device
				// without checksum offload): this queue's trains and all
				// later sends go datagram by datagram.
				b.gso.Store(false)
				b.resendPlain(q.msgs[off:])
				return
			}
			// One viewer's problem (e.g. unreachable): skip its message
			// and send the rest.
			b.errors.Add(uint64(len(m.Buffers)))
			off++
		}
	}
}

// gsoRefused reports whether a send error means the kernel or device
// cannot send UDP_SEGMENT trains (rather than a problem of one viewer).
func gsoRefused(err error) bool {
	return errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL) ||
		errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOPROTOOPT) ||
		errors.Is(err, unix.EMSGSIZE)
}

// resendPlain sends msgs datagram by datagram.
func (b *BatchConn) resendPlain(msgs []ipv4.Message) {
	for _, m := range msgs {
		for _, p := range m.Buffers {
			if _, err := b.udp.WriteTo(p, m.Addr); err != nil {
				b.errors.Add(1)
				continue
			}
			b.sent.Add(1)
		}
	}
}
