// A connection's send queue and its writer: queueing never blocks the
// broadcast; a consumer that falls too far behind is closed as slow.

package overlay

import (
	"net"
	"strconv"
	"time"

	"github.com/gorilla/websocket"
)

type qentry struct {
	data []byte // the message (shared by every connection: read only)
	seq  uint64 // skip marker when data is nil
	size int
	key  string
	at   time.Time
	// lazy entries (chat, reactions) do not wake the writer: the room's
	// linger timer or the next eager entry does.
	lazy bool
}

// maxBatch bounds the bytes the writer puts in one write(2).
const maxBatch = 64 << 10

// enqueue adds e to the queue; a queued entry of the same key becomes a skip
// marker. Over QueueBytes the connection is closed as slow. Never blocks.
func (c *conn) enqueue(e qentry) {
	c.qmu.Lock()
	if c.closing {
		c.qmu.Unlock()
		return
	}
	if e.key != "" && c.n > 0 {
		for i, j := 0, c.head; i < c.n; i++ {
			if q := &c.q[j]; q.key == e.key && q.data != nil {
				c.qbytes += skipEntrySize - q.size
				q.data, q.key, q.size = nil, "", skipEntrySize
				c.s.m.dropped.Inc()
			}
			if j++; j == len(c.q) {
				j = 0
			}
		}
	}
	// Bytes the writer took but has not sent yet count: a batch stuck on a
	// full socket must not hide the backlog.
	if (c.n > 0 || c.inflight > 0) && c.qbytes+c.inflight+e.size > c.s.QueueBytes {
		c.qmu.Unlock()
		c.slow()
		return
	}
	if c.n == len(c.q) {
		nq := make([]qentry, 2*len(c.q))
		for i := 0; i < c.n; i++ {
			nq[i] = c.q[(c.head+i)%len(c.q)]
		}
		c.q, c.head = nq, 0
	}
	c.q[(c.head+c.n)%len(c.q)] = e
	c.n++
	c.qbytes += e.size
	c.qmu.Unlock()
	if !e.lazy {
		c.wake()
	}
}

// wake tells the writer there is something to write; never blocks.
func (c *conn) wake() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func (c *conn) slow() {
	c.qmu.Lock()
	already := c.closing
	c.qmu.Unlock()
	if !already {
		c.s.m.slowDisconnects.Inc()
		c.close(closeSlow, "slow consumer")
		// Unblock a write stuck on a full socket.
		if c.ws != nil {
			_ = c.ws.NetConn().SetWriteDeadline(time.Now().Add(closeGrace))
		}
	}
}

// close asks the writer to send a close frame (code 0: none) and stop.
func (c *conn) close(code int, text string) {
	c.qmu.Lock()
	if !c.closing {
		c.closing, c.closeCode, c.closeText = true, code, text
	}
	c.qmu.Unlock()
	c.wake()
}

func (c *conn) pop() (qentry, bool, bool) {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if c.closing {
		return qentry{}, false, true
	}
	if c.n == 0 {
		return qentry{}, false, false
	}
	e := c.q[c.head]
	c.q[c.head] = qentry{}
	c.head++
	if c.head == len(c.q) {
		c.head = 0
	}
	c.n--
	c.qbytes -= e.size
	c.inflight += e.size
	return e, true, false
}

// writeLoop writes what is queued. Everything queued at a time goes out in
// one write(2) (up to maxBatch): on loopback and busy hosts the syscall per
// message per viewer is what costs, so a connection that fell behind
// catches up in one write. Frames are built here (server frames are
// unmasked text frames); gorilla writes only control frames, and a Write on
// the net.Conn is atomic, so the two never interleave inside a frame.
func (c *conn) writeLoop() {
	defer func() {
		_ = c.ws.Close()
		close(c.done)
	}()
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	nc := c.ws.NetConn()
	var batch []qentry
	for {
		select {
		case <-c.notify:
		case <-ping.C:
			if c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.s.WriteTimeout)) != nil {
				return
			}
			continue
		}
		for {
			c.buf, batch = c.buf[:0], batch[:0]
			closing := false
			for len(c.buf) < maxBatch {
				e, ok, cl := c.pop()
				if cl {
					closing = true
					break
				}
				if !ok {
					break
				}
				batch = append(batch, e)
				if e.data != nil {
					c.buf = appendTextFrame(c.buf, e.data)
				} else {
					c.buf = appendTextFrame(c.buf, strconv.AppendUint(append(c.skip[:0], `{"type":"skip","seq":`...), e.seq, 10), '}')
				}
			}
			if len(c.buf) > 0 {
				c.s.m.writes.Inc()
				_ = nc.SetWriteDeadline(time.Now().Add(c.s.WriteTimeout))
				if _, err := nc.Write(c.buf); err != nil {
					// A write that outlasts WriteTimeout is a slow consumer
					// too (counted once: slow() knows when it is closing).
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						c.slow()
					}
					c.close(0, "")
					return
				}
				c.qmu.Lock()
				c.inflight = 0
				c.qmu.Unlock()
				for _, e := range batch {
					c.s.m.sent.Inc()
					c.s.m.pushDelay.Observe(time.Since(e.at).Seconds())
				}
			}
			if closing {
				c.qmu.Lock()
				code, text := c.closeCode, c.closeText
				c.qmu.Unlock()
				if code != 0 {
					_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(closeGrace))
				}
				return
			}
			if len(batch) == 0 {
				break
			}
		}
	}
}

// appendTextFrame appends a final, unmasked text frame carrying p and then
// the extra bytes (RFC 6455 §5.2).
func appendTextFrame(b, p []byte, extra ...byte) []byte {
	n := len(p) + len(extra)
	b = append(b, 0x81)
	switch {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xFFFF:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(append(b, p...), extra...)
}
