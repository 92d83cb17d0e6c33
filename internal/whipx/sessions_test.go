package whipx

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

type fakeSession struct {
	stream string
	ended  atomic.Int32
}

func (f *fakeSession) StreamID() string                       { return f.stream }
func (f *fakeSession) PeerConnection() *webrtc.PeerConnection { return nil }
func (f *fakeSession) ETag() string                           { return `"e"` }
func (f *fakeSession) End()                                   { f.ended.Add(1) }

func TestSessionsResourceAndClose(t *testing.T) {
	var tab Sessions[*fakeSession]
	tab.Kind = "WHEP"
	mux := http.NewServeMux()
	posted := 0
	tab.Register(mux, "/whep", func(w http.ResponseWriter, r *http.Request) { posted++ })
	a := &fakeSession{stream: "s1"}
	if !tab.Add("a", a) || tab.Len() != 1 {
		t.Fatal("add")
	}
	do := func(method, path string) int {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		return rec.Code
	}
	if code := do("POST", "/whep/s1"); code != 200 || posted != 1 {
		t.Fatalf("POST: %d, posted %d", code, posted)
	}
	// Another stream's path never reaches the session.
	if code := do("DELETE", "/whep/s2/a"); code != http.StatusNotFound || a.ended.Load() != 0 {
		t.Fatalf("DELETE under another stream: %d, ended %d", code, a.ended.Load())
	}
	if code := do("DELETE", "/whep/s1/a"); code != 200 || a.ended.Load() != 1 {
		t.Fatalf("DELETE: %d, ended %d", code, a.ended.Load())
	}
	tab.Remove("a")
	if code := do("DELETE", "/whep/s1/a"); code != http.StatusNotFound {
		t.Fatalf("DELETE after remove: %d", code)
	}
	// Close ends what is left, waits for Go's goroutines, refuses more.
	b := &fakeSession{stream: "s1"}
	tab.Add("b", b)
	release := make(chan struct{})
	var finished atomic.Bool
	tab.Go(func() { <-release; finished.Store(true) })
	done := make(chan struct{})
	go func() { tab.Close(); close(done) }()
	select {
	case <-done:
		t.Fatal("Close returned while a goroutine of Go ran")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-done
	if !finished.Load() || b.ended.Load() != 1 || !tab.Closed() {
		t.Fatalf("after Close: finished %v, ended %d, closed %v", finished.Load(), b.ended.Load(), tab.Closed())
	}
	if tab.Add("c", &fakeSession{}) {
		t.Fatal("Add after Close")
	}
}
