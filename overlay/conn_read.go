// What a client may send (clock-sync pings, rate limited) and the replies
// queued for that connection only.

package overlay

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/gorilla/websocket"
)

type clientMsg struct {
	Type  string          `json:"type"`
	T     json.RawMessage `json:"t"`
	Text  string          `json:"text"`
	Emoji string          `json:"emoji"`
	Count int             `json:"count"`
}

func (c *conn) readLoop() {
	ws := c.ws
	c.limitControlFrames()
	tokens, last := clientBurst, time.Now()
	bad := 0
	for {
		_ = ws.SetReadDeadline(time.Now().Add(readTimeout))
		mt, data, err := ws.ReadMessage()
		if err != nil {
			return // also ErrReadLimit: gorilla already sent 1009
		}
		now := time.Now()
		tokens += now.Sub(last).Seconds() * clientRate
		last = now
		if tokens > clientBurst {
			tokens = clientBurst
		}
		if tokens < 1 {
			c.close(websocket.ClosePolicyViolation, "too many messages")
			return
		}
		tokens--
		if mt != websocket.TextMessage {
			c.close(websocket.CloseUnsupportedData, "text frames only")
			return
		}
		var m clientMsg
		if err := json.Unmarshal(data, &m); err != nil || m.Type == "" {
			bad++
			c.replyError("bad_message", "send a JSON object with a type")
		} else if m.Type == "ping" {
			var t float64
			if json.Unmarshal(m.T, &t) != nil {
				bad++
				c.replyError("bad_ping", "ping needs a numeric t (client ms)")
			} else {
				c.reply("pong", `"t":`+strconv.FormatFloat(t, 'f', -1, 64)+`,"server_time":`+strconv.FormatInt(time.Now().UnixMilli(), 10), true)
			}
		} else if m.Type == "chat" {
			c.chat(m.Text)
		} else if m.Type == "react" {
			c.react(m.Emoji, m.Count)
		} else {
			bad++
			c.replyError("unknown_type", "the server accepts ping, chat and react")
		}
		if bad > maxBadMessages {
			c.close(websocket.ClosePolicyViolation, "too many bad messages")
			return
		}
	}
}

// reply queues a message for this connection only, after what is queued;
// its seq is the last seq queued on the connection and, withEpoch, its
// epoch is the last member (both read under r.mu, like the queue order).
func (c *conn) reply(typ, members string, withEpoch bool) {
	r := c.r
	r.mu.Lock()
	defer r.mu.Unlock()
	b := make([]byte, 0, len(members)+len(c.epoch)+64)
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, c.sentSeq, 10)
	b = append(b, ',')
	b = append(b, members...)
	if withEpoch {
		b = append(b, `,"epoch":`...)
		b = strconv.AppendQuote(b, c.epoch)
	}
	b = append(b, '}')
	c.enqueue(qentry{data: b, size: len(b), at: time.Now()})
}
