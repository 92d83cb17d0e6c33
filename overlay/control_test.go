package overlay

import (
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestControlFrameFlood: ping or pong frames sent faster than the control
// rate close the socket with 1008; a burst a real client could send (and
// the pings it answers) leaves it open.
func TestControlFrameFlood(t *testing.T) {
	_, ts := testServer(t, NewMemoryBus(64), nil)
	for _, kind := range []struct {
		name string
		op   int
	}{{"ping", websocket.PingMessage}, {"pong", websocket.PongMessage}} {
		t.Run(kind.name, func(t *testing.T) {
			c := dial(t, ts, "c", "")
			c.next(t) // snapshot
			// A burst within the limit: the socket stays and answers.
			for i := 0; i < 10; i++ {
				if err := c.ws.WriteControl(kind.op, []byte("x"), time.Now().Add(time.Second)); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","t":1}`)); err != nil {
				t.Fatal(err)
			}
			if m := c.nextOfType(t, "pong"); m.T != 1 {
				t.Fatalf("pong: %s", m.raw)
			}
			// A flood: closed with 1008.
			for i := 0; i < 500; i++ {
				if c.ws.WriteControl(kind.op, []byte("flood"), time.Now().Add(time.Second)) != nil {
					break
				}
			}
			if err := c.closed(t); closeCode(err) != websocket.ClosePolicyViolation {
				t.Fatalf("%s flood: %v, want close 1008", kind.name, err)
			}
		})
	}
}
