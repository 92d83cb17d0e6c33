// A connection's send queue and its writer: queueing never blocks the
// broadcast; a consumer that falls too far behind is closed as slow.

package overlay

import (
	"strconv"
	"time"

	"github.com/gorilla/websocket"
)

type qentry struct {
	pm   *websocket.PreparedMessage // shared broadcast message
	raw  []byte                     // or a message for this connection only
	seq  uint64                     // skip marker when pm and raw are nil
	size int
	key  string
	at   time.Time
}

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
			if q := &c.q[j]; q.key == e.key && q.pm != nil {
				c.qbytes += skipEntrySize - q.size
				q.pm, q.raw, q.key, q.size = nil, nil, "", skipEntrySize
				c.s.m.dropped.Inc()
			}
			if j++; j == len(c.q) {
				j = 0
			}
		}
	}
	if c.n > 0 && c.qbytes+e.size > c.s.QueueBytes {
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
	select {
	case c.notify <- struct{}{}:
	default:
	}
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
	return e, true, false
}

func (c *conn) writeLoop() {
	defer func() {
		_ = c.ws.Close()
		close(c.done)
	}()
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
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
			e, ok, closing := c.pop()
			if closing {
				c.qmu.Lock()
				code, text := c.closeCode, c.closeText
				c.qmu.Unlock()
				if code != 0 {
					_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(closeGrace))
				}
				return
			}
			if !ok {
				break
			}
			_ = c.ws.SetWriteDeadline(time.Now().Add(c.s.WriteTimeout))
			var err error
			switch {
			case e.pm != nil:
				err = c.ws.WritePreparedMessage(e.pm)
			case e.raw != nil:
				err = c.ws.WriteMessage(websocket.TextMessage, e.raw)
			default:
				c.buf = append(c.buf[:0], `{"type":"skip","seq":`...)
				c.buf = strconv.AppendUint(c.buf, e.seq, 10)
				c.buf = append(c.buf, '}')
				err = c.ws.WriteMessage(websocket.TextMessage, c.buf)
			}
			if err != nil {
				c.close(0, "")
				return
			}
			c.s.m.sent.Inc()
			c.s.m.pushDelay.Observe(time.Since(e.at).Seconds())
		}
	}
}
