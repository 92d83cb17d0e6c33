package app

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/streamd/streamd/internal/testenv"
)

// chatSock is a viewer's overlay socket in a test.
type chatSock struct {
	ws   *websocket.Conn
	msgs chan map[string]any
}

func dialChat(t *testing.T, base, stream string, cookie *http.Cookie) *chatSock {
	t.Helper()
	h := http.Header{}
	if cookie != nil {
		h.Set("Cookie", cookie.String())
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/ws/"+stream, h)
	if err != nil {
		t.Fatalf("dial %s: %v", base, err)
	}
	s := &chatSock{ws: ws, msgs: make(chan map[string]any, 1024)}
	go func() {
		defer close(s.msgs)
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				return
			}
			var m map[string]any
			if json.Unmarshal(b, &m) == nil {
				s.msgs <- m
			}
		}
	}()
	t.Cleanup(func() { _ = ws.Close() })
	return s
}

func (s *chatSock) send(t *testing.T, v any) {
	t.Helper()
	if err := s.ws.WriteJSON(v); err != nil {
		t.Fatal(err)
	}
}

// next returns the next message whose type is one of types.
func (s *chatSock) next(t *testing.T, types ...string) map[string]any {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-s.msgs:
			if !ok {
				t.Fatal("socket closed")
			}
			for _, typ := range types {
				if m["type"] == typ {
					return m
				}
			}
		case <-deadline:
			t.Fatalf("no %v within 10 s", types)
		}
	}
}

// viewerCookie signs in a chat viewer on base.
func viewerCookie(t *testing.T, base, name string) *http.Cookie {
	t.Helper()
	res, err := http.Post(base+"/api/viewer", "application/json", strings.NewReader(`{"name":"`+name+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	for _, c := range res.Cookies() {
		if c.Name == "streamd_viewer" {
			return c
		}
	}
	t.Fatalf("POST /api/viewer %d: no cookie", res.StatusCode)
	return nil
}

// TestChatCluster: two nodes on one Redis. Chat sent on node 1 and staff
// messages posted on node 2 reach a viewer on node 2 in one seq order; a
// cookie from node 1 is good on node 2; the rate limit and a mute set on
// one node hold on the other; reactions from both nodes make at most one
// reactions event per 250 ms.
func TestChatCluster(t *testing.T) {
	testenv.Redis(t, 11)
	n1, n2 := startClusterNode(t, 11), startClusterNode(t, 11)
	createStream(t, n1, "hall")
	ann := viewerCookie(t, n1.BaseURL(), "Ann")
	chatter := dialChat(t, n1.BaseURL(), "hall", ann)
	watcher := dialChat(t, n2.BaseURL(), "hall", nil)
	chatter.next(t, "snapshot")
	snap := watcher.next(t, "snapshot")
	last := snap["seq"].(float64)

	for i := 0; i < 3; i++ {
		chatter.send(t, map[string]string{"type": "chat", "text": "from node 1 #" + string(rune('a'+i))})
		if code := api(t, "POST", n2.BaseURL()+"/api/streams/hall/chat", testStaff, map[string]any{"text": "staff on node 2 #" + string(rune('a'+i))}, nil); code != 201 {
			t.Fatalf("staff message: %d", code)
		}
	}
	var got []string
	for len(got) < 6 {
		m := watcher.next(t, "chat", "skip")
		if m["seq"].(float64) != last+1 {
			t.Fatalf("seq %v after %v: not in order", m["seq"], last)
		}
		last = m["seq"].(float64)
		got = append(got, m["text"].(string))
		if strings.HasPrefix(m["text"].(string), "from node 1") {
			if a := m["author"].(map[string]any); a["name"] != "Ann" || a["staff"] != false {
				t.Fatalf("author %v", a)
			}
		}
	}
	t.Logf("node 2 viewer got, in seq order: %q", got)

	// The same viewer on node 2: the burst of 3 is spent (the bucket is in Redis).
	again := dialChat(t, n2.BaseURL(), "hall", ann)
	again.next(t, "snapshot")
	again.send(t, map[string]string{"type": "chat", "text": "one more"})
	if m := again.next(t, "error", "chat"); m["code"] != "rate_limited" {
		t.Fatalf("rate limit across nodes: %v", m)
	}
	// A mute set on node 1 holds on node 2.
	bea := viewerCookie(t, n2.BaseURL(), "Bea")
	var who map[string]any
	req, _ := http.NewRequest("GET", n1.BaseURL()+"/api/viewer", nil)
	req.AddCookie(bea)
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("node 2 cookie on node 1: %v %v", err, res)
	}
	_ = json.NewDecoder(res.Body).Decode(&who)
	res.Body.Close()
	if code := api(t, "POST", n1.BaseURL()+"/api/streams/hall/chat/bans", testStaff, map[string]any{"viewer": who["id"], "mode": "mute"}, nil); code != 201 {
		t.Fatalf("ban: %d", code)
	}
	bs := dialChat(t, n2.BaseURL(), "hall", bea)
	bs.next(t, "snapshot")
	bs.send(t, map[string]string{"type": "chat", "text": "hello"})
	if m := bs.next(t, "error", "chat"); m["code"] != "muted" {
		t.Fatalf("mute across nodes: %v", m)
	}

	// Reactions tapped on both nodes: one stream of reactions events.
	for i := 0; i < 10; i++ {
		chatter.send(t, map[string]any{"type": "react", "emoji": "❤️"})
		bs.send(t, map[string]any{"type": "react", "emoji": "🔥", "count": 2})
		time.Sleep(50 * time.Millisecond)
	}
	total, events := 0, 0
	var prev float64
	for total < 30 {
		m := watcher.next(t, "reactions")
		at := m["server_time"].(float64) // Redis' clock, which keeps the period
		if events > 0 && at-prev < 250 {
			t.Fatalf("reactions events %v ms apart", at-prev)
		}
		prev = at
		events++
		for _, n := range m["counts"].(map[string]any) {
			total += int(n.(float64))
		}
	}
	if total != 30 {
		t.Fatalf("counted %d taps, want 30", total)
	}
	t.Logf("30 taps on two nodes → %d reactions events", events)
}
