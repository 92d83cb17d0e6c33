package overlay

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	dto "github.com/prometheus/client_model/go"
)

// TestBusChatConformance: chat state (kept messages with their audience,
// deletes, the pin, the chat mode) and the reactions gate agree on both buses.
func TestBusChatConformance(t *testing.T) {
	ctx := context.Background()
	forEachBus(t, 3, func(t *testing.T, impl busImpl) {
		b := impl.newBus(t, 256)
		chat := func(i int, aud string) Event {
			return pub(t, b, "c", Publication{Type: "chat", Audience: aud, Rest: []byte(fmt.Sprintf(`"id":"m%d","text":"t%d"}`, i, i)),
				Change: Change{Kind: AddChat, ChatID: fmt.Sprintf("m%d", i)}})
		}
		for i := 1; i <= MaxChatPerStream+5; i++ {
			aud := ""
			if i%10 == 0 {
				aud = "v1"
			}
			chat(i, aud)
		}
		st, err := b.State(ctx, "c")
		if err != nil || len(st.Chat) != MaxChatPerStream || st.Chat[0].ID != "m6" || st.Chat[MaxChatPerStream-1].ID != "m55" {
			t.Fatalf("kept chat: %d %v (%+v)", len(st.Chat), err, st.Chat[:1])
		}
		if e := st.Chat[4]; e.ID != "m10" || e.Audience != "v1" || string(e.Data) != `{"type":"chat","seq":10,"id":"m10","text":"t10"}` {
			t.Fatalf("entry: %+v %s", e, e.Data)
		}
		evs, ok, _ := b.Since(ctx, "c", st.Epoch, 18)
		if !ok || evs[1].Seq != 20 || evs[1].Audience != "v1" || evs[0].Audience != "" {
			t.Fatalf("audience in history: %+v", evs[:2])
		}
		pin := json.RawMessage(`{"type":"chat","seq":12,"id":"m12"}`)
		pub(t, b, "c", Publication{Type: "chat_pin", Rest: []byte(`"message":null}`), Change: Change{Kind: SetPin, ChatID: "m12", Pin: pin}})
		pub(t, b, "c", Publication{Type: "chat_mode", Rest: []byte(`"x":1}`), Change: Change{Kind: SetChatMode, ChatMode: json.RawMessage(`{"enabled":false,"slow_s":5}`)}})
		if st, _ = b.State(ctx, "c"); string(st.Pin) != string(pin) || st.PinID != "m12" || string(st.ChatMode) != `{"enabled":false,"slow_s":5}` {
			t.Fatalf("pin/mode: %+v", st)
		}
		pub(t, b, "c", Publication{Type: "chat_delete", Rest: []byte(`"id":"m12"}`), Change: Change{Kind: DelChat, ChatID: "m12"}})
		st, _ = b.State(ctx, "c")
		for _, e := range st.Chat {
			if e.ID == "m12" {
				t.Fatal("deleted message kept")
			}
		}
		if len(st.Chat) != MaxChatPerStream-1 || st.Pin != nil || st.PinID != "" {
			t.Fatalf("after delete: %d pin %s", len(st.Chat), st.Pin)
		}
		pub(t, b, "c", Publication{Type: "chat_pin", Rest: []byte(`"message":null}`), Change: Change{Kind: SetPin, ChatID: "m13", Pin: pin}})
		pub(t, b, "c", Publication{Type: "chat_pin", Rest: []byte(`"message":null}`), Change: Change{Kind: SetPin}})
		if st, _ = b.State(ctx, "c"); st.Pin != nil {
			t.Fatalf("unpin: %s", st.Pin)
		}

		// Reactions: published at once, then gated for the period; the
		// counts wait and add up.
		var rec recorder
		cancel, err := b.Subscribe(ctx, "r", rec.fn)
		if err != nil {
			t.Fatal(err)
		}
		defer cancel()
		if ev, pending, err := b.React(ctx, "r", nil, 300*time.Millisecond); err != nil || pending || ev.Seq != 0 {
			t.Fatalf("nothing to react: %+v %v %v", ev, pending, err)
		}
		ev, pending, err := b.React(ctx, "r", map[string]int{"🔥": 2}, 300*time.Millisecond)
		if err != nil || pending || ev.Seq != 1 {
			t.Fatalf("first react: %+v %v %v", ev, pending, err)
		}
		if _, pending, _ := b.React(ctx, "r", map[string]int{"🔥": 1, "❤️": 4}, 300*time.Millisecond); !pending {
			t.Fatal("second react within the period was published")
		}
		if _, pending, _ := b.React(ctx, "r", nil, 300*time.Millisecond); !pending {
			t.Fatal("retry within the period was published")
		}
		time.Sleep(320 * time.Millisecond)
		if ev, pending, _ = b.React(ctx, "r", map[string]int{"😮": 1}, 300*time.Millisecond); pending || ev.Seq != 2 {
			t.Fatalf("after the period: %+v %v", ev, pending)
		}
		got := rec.waitN(t, 2)
		if !strings.HasPrefix(string(got[0].Data), `{"type":"reactions","seq":1,"counts":{"🔥":2},"server_time":1`) {
			t.Fatalf("reactions 1: %s", got[0].Data)
		}
		var m0, m1 struct {
			Counts     map[string]int
			ServerTime int64 `json:"server_time"`
		}
		_ = json.Unmarshal(got[0].Data, &m0)
		if err := json.Unmarshal(got[1].Data, &m1); err != nil || len(m1.Counts) != 3 || m1.Counts["🔥"] != 1 || m1.Counts["❤️"] != 4 || m1.Counts["😮"] != 1 {
			t.Fatalf("reactions 2: %s", got[1].Data)
		}
		if d := m1.ServerTime - m0.ServerTime; d < 300 || d > 2000 {
			t.Fatalf("reactions stamped %d ms apart", d)
		}
	})
}

// queryPolicy: the viewer is ?viewer=id; "hide…" texts are hidden, "long…" too long.
type queryPolicy struct{}

func (queryPolicy) Viewer(r *http.Request) (Viewer, bool) {
	id := r.URL.Query().Get("viewer")
	return Viewer{ID: id, Name: "name-" + id}, id != ""
}

func (queryPolicy) Check(_ context.Context, _ string, _ Viewer, ok bool, text string) (bool, error) {
	switch {
	case !ok:
		return false, &ChatError{Code: "no_viewer", Message: "pick a name first"}
	case strings.HasPrefix(text, "long"):
		return false, &ChatError{Code: "too_long", Message: "280 characters at most"}
	}
	return strings.HasPrefix(text, "hide"), nil
}

func send(t *testing.T, c *client, v any) {
	t.Helper()
	b, _ := json.Marshal(v)
	if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		t.Fatal(err)
	}
}

// TestHubChat: chat on the socket: one seq for everyone, errors to the
// sender only (socket open), a hidden message for its author only (skips
// for the others, in live delivery, snapshots and resumes), delete, pin.
func TestHubChat(t *testing.T) {
	forEachBus(t, 1, func(t *testing.T, impl busImpl) {
		s, ts := testServer(t, impl.newBus(t, 64), func(s *Server) { s.Chat = queryPolicy{} })
		mustCard(t, s, "c", "show", `{"a":1}`) // seq 1
		a, b, anon := dial(t, ts, "c", "viewer=a"), dial(t, ts, "c", "viewer=b"), dial(t, ts, "c", "")
		var epoch string
		for _, c := range []*client{a, b, anon} {
			m := c.next(t)
			if m.Type != "snapshot" || len(m.Chat) != 0 || string(m.Pin) != "null" {
				t.Fatalf("snapshot: %s", m.raw)
			}
			epoch = m.Epoch
		}
		send(t, a, map[string]string{"type": "chat", "text": "does it come in M?"})
		var first wireMsg
		for _, c := range []*client{a, b, anon} {
			m := c.nextOfType(t, "chat")
			if m.Seq != 2 || m.Text != "does it come in M?" || m.Author == nil || m.Author.ID != "a" || m.Author.Name != "name-a" || m.Author.Staff || m.ID == "" {
				t.Fatalf("chat: %s", m.raw)
			}
			first = m
		}
		// Errors: to the sender only; the socket stays open.
		send(t, anon, map[string]string{"type": "chat", "text": "hello"})
		if m := anon.next(t); m.Type != "error" || m.Code != "no_viewer" || m.Error != "no_viewer" {
			t.Fatalf("anonymous: %s", m.raw)
		}
		send(t, b, map[string]string{"type": "chat", "text": "long text"})
		if m := b.next(t); m.Type != "error" || m.Code != "too_long" {
			t.Fatalf("too long: %s", m.raw)
		}
		// Hidden: the author sees it, the others a skip of the same seq.
		send(t, b, map[string]string{"type": "chat", "text": "hide me"})
		if m := b.nextOfType(t, "chat"); m.Seq != 3 || m.Text != "hide me" {
			t.Fatalf("author of hidden: %s", m.raw)
		}
		for _, c := range []*client{a, anon} {
			if m := c.next(t); m.Type != "skip" || m.Seq != 3 {
				t.Fatalf("other viewer of hidden: %s", m.raw)
			}
		}
		send(t, anon, map[string]any{"type": "ping", "t": 1})
		if m := anon.next(t); m.Type != "pong" || m.Seq != 3 {
			t.Fatalf("socket after errors: %s", m.raw)
		}
		// Snapshots and resumes keep the audience.
		for _, tc := range []struct {
			q    string
			want int
		}{{"viewer=b", 2}, {"viewer=a", 1}, {"", 1}} {
			c := dial(t, ts, "c", tc.q)
			if m := c.next(t); len(m.Chat) != tc.want || m.Chat[0].Text != "does it come in M?" {
				t.Fatalf("snapshot for %q: %s", tc.q, m.raw)
			}
			c.close()
			c = dial(t, ts, "c", tc.q+"&since=2&epoch="+epoch)
			m := c.next(t)
			if tc.want == 2 && (m.Type != "chat" || m.Text != "hide me") || tc.want == 1 && m.Type != "skip" {
				t.Fatalf("resume for %q: %s", tc.q, m.raw)
			}
			c.close()
		}
		// Pin, then delete: both reach everyone, the snapshot follows.
		if _, err := s.PinChat(bg, "c", first.ID, first.raw); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*client{a, b, anon} {
			if m := c.nextOfType(t, "chat_pin"); !strings.Contains(string(m.Message), first.ID) {
				t.Fatalf("pin: %s", m.raw)
			}
		}
		if _, err := s.DeleteChat(bg, "c", first.ID); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*client{a, b, anon} {
			if m := c.nextOfType(t, "chat_delete"); m.ID != first.ID {
				t.Fatalf("delete: %s", m.raw)
			}
		}
		c := dial(t, ts, "c", "viewer=a")
		if m := c.next(t); len(m.Chat) != 0 || string(m.Pin) != "null" {
			t.Fatalf("snapshot after delete: %s", m.raw)
		}
		msgs, pin, err := s.ChatHistory(bg, "c")
		if err != nil || len(msgs) != 0 || pin != nil {
			t.Fatalf("history: %s %s %v", msgs, pin, err)
		}
		// Staff messages come from the API.
		if _, err := s.PublishChat(bg, "c", ChatMessage{Author: ChatAuthor{ID: "staff", Name: "Host", Staff: true}, Text: "Yes, S to XL",
			ReplyTo: &ChatRef{ID: first.ID, Name: "name-a", Text: first.Text}}); err != nil {
			t.Fatal(err)
		}
		if m := a.nextOfType(t, "chat"); !m.Author.Staff || !strings.Contains(string(m.raw), `"reply_to":{"id":"`+first.ID) {
			t.Fatalf("staff: %s", m.raw)
		}
		if _, err := s.SetChatMode(bg, "c", ChatMode{Enabled: false, SlowS: 10}); err != nil {
			t.Fatal(err)
		}
		if m := b.nextOfType(t, "chat_mode"); !strings.Contains(string(m.raw), `"enabled":false,"slow_s":10,"server_time":`) {
			t.Fatalf("mode: %s", m.raw)
		}
	})
}

// TestHubReactions: 100 taps from five sockets become at most one
// reactions event per 250 ms, whose counts add up to the taps; an
// unknown emoji is an error that leaves the socket open.
func TestHubReactions(t *testing.T) {
	forEachBus(t, 1, func(t *testing.T, impl busImpl) {
		_, ts := testServer(t, impl.newBus(t, 256), nil)
		watcher := dial(t, ts, "r", "")
		watcher.next(t)
		var tappers []*client
		for i := 0; i < 5; i++ {
			c := dial(t, ts, "r", "")
			c.next(t)
			tappers = append(tappers, c)
		}
		start := time.Now()
		for i := 0; i < 20; i++ {
			for j, c := range tappers {
				send(t, c, map[string]string{"type": "react", "emoji": Reactions[j]})
			}
			time.Sleep(40 * time.Millisecond)
		}
		send(t, tappers[0], map[string]string{"type": "react", "emoji": "🍕"})
		if m := tappers[0].nextOfType(t, "error"); m.Code != "bad_reaction" {
			t.Fatalf("bad emoji: %s", m.raw)
		}
		total, events := 0, 0
		var times []time.Time
		for total < 100 {
			m := watcher.nextOfType(t, "reactions")
			events++
			times = append(times, m.at)
			for _, n := range m.Counts {
				total += n
			}
		}
		elapsed := time.Since(start)
		if total != 100 {
			t.Fatalf("counted %d taps, want 100", total)
		}
		if max := int(elapsed/(250*time.Millisecond)) + 1; events > max {
			t.Fatalf("%d reactions events in %v (at most %d)", events, elapsed, max)
		}
		for i := 1; i < len(times); i++ {
			if d := times[i].Sub(times[i-1]); d < 200*time.Millisecond {
				t.Fatalf("reactions events %v apart", d)
			}
		}
		t.Logf("100 taps in %v → %d reactions events", elapsed.Round(time.Millisecond), events)
	})
}

// A busy chat goes out a few messages per write, not one write per message
// per viewer; a card does not wait for the linger and takes the chat
// queued before it along, in seq order.
func TestChatLingerCoalesces(t *testing.T) {
	leakCheck(t)
	const linger = 300 * time.Millisecond
	s, ts := testServer(t, nil, func(s *Server) { s.ChatLinger, s.ChatLingerConns = linger, 2 })
	v := dial(t, ts, "c", "")
	if m := v.next(t); m.Type != "snapshot" {
		t.Fatalf("snapshot: %s", m.raw)
	}
	// One viewer: below ChatLingerConns, chat goes out at once.
	t0 := time.Now()
	if _, err := s.PublishChat(bg, "c", ChatMessage{Author: ChatAuthor{ID: "a", Name: "A"}, Text: "first"}); err != nil {
		t.Fatal(err)
	}
	if m := v.next(t); m.Type != "chat" || time.Since(t0) > linger/2 {
		t.Fatalf("chat in a small room after %v: %s", time.Since(t0), m.raw)
	}
	v2 := dial(t, ts, "c", "")
	if m := v2.next(t); m.Type != "snapshot" {
		t.Fatalf("snapshot: %s", m.raw)
	}
	writes := func() int {
		var m dto.Metric
		if err := s.m.writes.Write(&m); err != nil {
			t.Fatal(err)
		}
		return int(m.GetCounter().GetValue())
	}
	chat := func(i int) {
		if _, err := s.PublishChat(bg, "c", ChatMessage{Author: ChatAuthor{ID: "a", Name: "A"}, Text: fmt.Sprint("m", i)}); err != nil {
			t.Fatal(err)
		}
	}
	w0 := writes()
	t0 = time.Now()
	for i := range 10 {
		chat(i)
	}
	for i := range 10 {
		if m := v.next(t); m.Type != "chat" || m.Text != fmt.Sprint("m", i) {
			t.Fatalf("chat %d: %s", i, m.raw)
		}
	}
	if d := time.Since(t0); d < linger*2/3 || d > linger+time.Second {
		t.Errorf("10 chat messages arrived after %v, want about the linger (%v)", d, linger)
	}
	for i := range 10 { // the other viewer's write is counted once it is read
		if m := v2.next(t); m.Type != "chat" || m.Text != fmt.Sprint("m", i) {
			t.Fatalf("second viewer, chat %d: %s", i, m.raw)
		}
	}
	if n := writes() - w0; n != 2 {
		t.Errorf("10 chat messages to 2 viewers took %d writes, want 2", n)
	}
	// Chat, then a card at once: the card wakes the writer.
	w0, t0 = writes(), time.Now()
	for i := 10; i < 13; i++ {
		chat(i)
	}
	mustCard(t, s, "c", "show", `{"a":1}`)
	for i := 10; i < 13; i++ {
		if m := v.next(t); m.Type != "chat" || m.Text != fmt.Sprint("m", i) {
			t.Fatalf("chat %d before the card: %s", i, m.raw)
		}
	}
	if m := v.next(t); m.Type != "card" {
		t.Fatalf("card: %s", m.raw)
	}
	if d := time.Since(t0); d > linger/2 {
		t.Errorf("a card behind lingering chat arrived after %v (linger %v)", d, linger)
	}
	for i := range 4 {
		if m := v2.next(t); m.Type != "chat" && m.Type != "card" {
			t.Fatalf("second viewer, message %d after the first ten: %s", i, m.raw)
		}
	}
	if n := writes() - w0; n > 4 {
		t.Errorf("3 chat messages and a card to 2 viewers took %d writes", n)
	}
}
