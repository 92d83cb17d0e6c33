// Chat and reactions on the overlay socket: viewers send {"type":"chat"}
// and {"type":"react"}; chat messages, deletes, pins and the chat settings
// are events of the stream's one seq'd sequence (so snapshot, resume, the
// Redis bus and recorders treat them like cards); reactions are counted and
// published at most once per ReactInterval per stream.

package overlay

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// Viewer is the chat identity of a socket, read once from its upgrade
// request (the viewer cookie).
type Viewer struct {
	ID   string
	Name string
}

// ChatPolicy decides on viewers' chat messages. Implemented by showroom
// (viewer cookie, chat on/off, bans, rate limits, blocked words).
type ChatPolicy interface {
	// Viewer reads the viewer of an upgrade request; ok false: anonymous.
	Viewer(r *http.Request) (v Viewer, ok bool)
	// Check decides on text sent by v (ok false: anonymous) on stream: a
	// *ChatError refuses it (told to the sender only); hidden publishes it
	// for its author alone (shadow ban, blocked words).
	Check(ctx context.Context, stream string, v Viewer, ok bool, text string) (hidden bool, err error)
}

// ChatError refuses a client message; it is sent to that client only as
// {"type":"error","code":Code,"error":Code,"message":Message}.
type ChatError struct{ Code, Message string }

func (e *ChatError) Error() string { return e.Code + ": " + e.Message }

// Reactions is the fixed set of emoji viewers can react with.
var Reactions = [...]string{"❤️", "🔥", "😂", "👏", "😮"}

// ErrNoChat is returned when the Server has no ChatPolicy.
var ErrNoChat = errors.New("overlay: chat is not enabled on this server")

// ChatAuthor is who wrote a chat message.
type ChatAuthor struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Staff bool   `json:"staff"`
}

// ChatRef names the message a reply answers.
type ChatRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Text string `json:"text"`
}

// ChatMessage is one message to publish.
type ChatMessage struct {
	Author  ChatAuthor
	Text    string
	ReplyTo *ChatRef
	// Hidden: only the author's connections see it (the others get a skip).
	Hidden bool
}

type chatWire struct {
	ID         string     `json:"id"`
	Author     ChatAuthor `json:"author"`
	Text       string     `json:"text"`
	ReplyTo    *ChatRef   `json:"reply_to,omitempty"`
	ServerTime int64      `json:"server_time"`
}

// members strips the braces of a JSON object: `"a":1,"b":2}` stays with
// its closing brace, as Publication.Rest wants.
func members(v any) []byte {
	b, _ := json.Marshal(v)
	return b[1:]
}

// PublishChat publishes a chat message on stream and keeps it among the
// last MaxChatPerStream for snapshots. The returned Event has ID set.
func (s *Server) PublishChat(ctx context.Context, stream string, m ChatMessage) (Event, error) {
	now := time.Now().UnixMilli()
	id := newID()
	p := Publication{Type: "chat", Rest: members(chatWire{ID: id, Author: m.Author, Text: m.Text, ReplyTo: m.ReplyTo, ServerTime: now}),
		Change: Change{Kind: AddChat, ChatID: id}}
	if m.Hidden {
		p.Audience = m.Author.ID
	}
	ev, err := s.publish(ctx, stream, p)
	ev.ID, ev.ServerTime = id, now
	return ev, err
}

// DeleteChat publishes {"type":"chat_delete","id"} and forgets the message
// (and unpins it).
func (s *Server) DeleteChat(ctx context.Context, stream, id string) (Event, error) {
	now := time.Now().UnixMilli()
	rest := members(struct {
		ID         string `json:"id"`
		ServerTime int64  `json:"server_time"`
	}{id, now})
	return s.publish(ctx, stream, Publication{Type: "chat_delete", Rest: rest, Change: Change{Kind: DelChat, ChatID: id}})
}

// PinChat publishes {"type":"chat_pin","message":<the chat message>|null}:
// message is the message's wire JSON (nil unpins), id its id.
func (s *Server) PinChat(ctx context.Context, stream, id string, message json.RawMessage) (Event, error) {
	now := time.Now().UnixMilli()
	if len(message) == 0 {
		id, message = "", nil
	}
	rest := members(struct {
		Message    json.RawMessage `json:"message"`
		ServerTime int64           `json:"server_time"`
	}{message, now})
	return s.publish(ctx, stream, Publication{Type: "chat_pin", Key: "chat_pin", Rest: rest, Change: Change{Kind: SetPin, ChatID: id, Pin: message}})
}

// ChatMode is the chat's settings as viewers see them.
type ChatMode struct {
	Enabled bool `json:"enabled"`
	SlowS   int  `json:"slow_s"`
}

// SetChatMode publishes {"type":"chat_mode","enabled","slow_s"} and keeps
// it for snapshots.
func (s *Server) SetChatMode(ctx context.Context, stream string, m ChatMode) (Event, error) {
	mode, _ := json.Marshal(m)
	rest := appendServerTime(append(mode[1:len(mode)-1:len(mode)-1], ','), time.Now().UnixMilli())
	return s.publish(ctx, stream, Publication{Type: "chat_mode", Key: "chat_mode", Rest: rest, Change: Change{Kind: SetChatMode, ChatMode: mode}})
}

// ChatHistory returns the stream's last chat messages visible to everyone
// (oldest first) and the pinned one.
func (s *Server) ChatHistory(ctx context.Context, stream string) (msgs []json.RawMessage, pin json.RawMessage, err error) {
	st, err := s.Bus.State(ctx, stream)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range st.Chat {
		if e.Audience == "" {
			msgs = append(msgs, e.Data)
		}
	}
	return msgs, st.Pin, nil
}

// chat handles {"type":"chat","text"} from c.
func (c *conn) chat(text string) {
	s := c.s
	if s.Chat == nil {
		c.replyError("chat_off", "chat is not enabled on this server")
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	hidden, err := s.Chat.Check(ctx, c.r.stream, c.viewer, c.hasViewer, text)
	var ce *ChatError
	if errors.As(err, &ce) {
		c.replyError(ce.Code, ce.Message)
		return
	}
	if err == nil {
		_, err = s.PublishChat(ctx, c.r.stream, ChatMessage{Author: ChatAuthor{ID: c.viewer.ID, Name: c.viewer.Name}, Text: text, Hidden: hidden})
	}
	if err != nil {
		s.log.Warn("overlay: chat", "stream", c.r.stream, "err", err)
		c.replyError("unavailable", "the message was not sent; try again")
	}
}

// react handles {"type":"react","emoji","count"?}: counts add up on this
// node and reactLoop hands them to the Bus.
func (c *conn) react(emoji string, count int) {
	known := false
	for _, r := range Reactions {
		known = known || r == emoji
	}
	if !known {
		c.replyError("bad_reaction", "react with one of ❤️ 🔥 😂 👏 😮")
		return
	}
	count = min(max(count, 1), maxReactCount)
	s := c.s
	s.reactMu.Lock()
	m := s.reactPending[c.r.stream]
	if m == nil {
		m = map[string]int{}
		s.reactPending[c.r.stream] = m
	}
	m[emoji] += count
	s.reactMu.Unlock()
	select {
	case s.reactWake <- struct{}{}:
	default:
	}
}

const maxReactCount = 10 // taps one react message may carry (clients batch)

// reactLoop hands pending reactions to the Bus, which publishes at most one
// reactions event per ReactInterval per stream across all nodes; a stream
// whose counts wait is retried every ReactInterval/5.
func (s *Server) reactLoop() {
	defer s.wg.Done()
	waiting := map[string]bool{}
	retry := time.NewTicker(s.ReactInterval / 5)
	defer retry.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.reactWake:
		case <-retry.C:
			if len(waiting) == 0 {
				continue
			}
		}
		s.reactMu.Lock()
		pending := s.reactPending
		s.reactPending = map[string]map[string]int{}
		s.reactMu.Unlock()
		for stream := range pending {
			waiting[stream] = true
		}
		for stream := range waiting {
			ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
			_, still, err := s.Bus.React(ctx, stream, pending[stream], s.ReactInterval)
			cancel()
			if err != nil {
				s.log.Warn("overlay: reactions", "stream", stream, "err", err)
			}
			if !still && err == nil {
				delete(waiting, stream)
			}
		}
	}
}

// replyError queues an error for this connection only; the socket stays.
func (c *conn) replyError(code, message string) {
	b := make([]byte, 0, 64+len(message))
	b = append(b, `"code":`...)
	b = strconv.AppendQuote(b, code)
	b = append(b, `,"error":`...)
	b = strconv.AppendQuote(b, code)
	b = append(b, `,"message":`...)
	msg, _ := json.Marshal(message)
	b = append(b, msg...)
	c.reply("error", string(b), false)
}
