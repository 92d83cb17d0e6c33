package ingest

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamd/streamd/sfu"
)

// leases is an in-memory PullLease store shared by the "nodes" of a test.
type leases struct {
	mu     sync.Mutex
	holder map[string]string
	down   map[string]bool // nodes that cannot reach the store
}

type nodeLease struct {
	l    *leases
	node string
}

var errStoreDown = errors.New("store unreachable")

func (n nodeLease) Acquire(_ context.Context, stream string) (bool, error) {
	n.l.mu.Lock()
	defer n.l.mu.Unlock()
	if n.l.down[n.node] {
		return false, errStoreDown
	}
	if n.l.holder[stream] != "" {
		return false, nil
	}
	n.l.holder[stream] = n.node
	return true, nil
}

func (n nodeLease) Renew(_ context.Context, stream string) (bool, error) {
	n.l.mu.Lock()
	defer n.l.mu.Unlock()
	if n.l.down[n.node] {
		return false, errStoreDown
	}
	return n.l.holder[stream] == n.node, nil
}

func (n nodeLease) Release(_ context.Context, stream string) error {
	n.l.mu.Lock()
	defer n.l.mu.Unlock()
	if n.l.down[n.node] {
		return errStoreDown
	}
	if n.l.holder[stream] == n.node {
		delete(n.l.holder, stream)
	}
	return nil
}

func (l *leases) get(stream string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.holder[stream]
}

func (l *leases) set(stream, node string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.holder[stream] = node
}

func (l *leases) setDown(node string, down bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down[node] = down
}

// TestRTSPPullLease: of two managers sharing a lease store, only the holder
// tries the source; the other stands by without a source error, reports a
// lease failure, and takes over when the holder loses, gives up or cannot
// renew the lease.
func TestRTSPPullLease(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	source := "rtsp://" + ln.Addr().String() + "/cam" // refused: the holder retries
	ln.Close()

	l := &leases{holder: map[string]string{}, down: map[string]bool{}}
	node := func(name string) *RTSPPull {
		s := &sfu.SFU{}
		if err := s.Initialize(); err != nil {
			t.Fatal(err)
		}
		m := &RTSPPull{SFU: s, MinBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
			Lease: nodeLease{l, name}, LeaseTTL: 300 * time.Millisecond}
		if err := m.Initialize(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Close)
		return m
	}
	a, b := node("a"), node("b")
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				st, _ := a.Status("cam")
				sb, _ := b.Status("cam")
				t.Fatalf("timed out waiting for %s (a %+v, b %+v, holder %q)", what, st, sb, l.get("cam"))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	state := func(m *RTSPPull) PullStatus { st, _ := m.Status("cam"); return st }
	pulling := func(m *RTSPPull) bool { st := state(m); return st.State == PullRetrying && st.Error != "" }
	standby := func(m *RTSPPull) bool { st := state(m); return st.State == PullStandby && st.Error == "" }

	a.Set("cam", source)
	wait("a pulls", func() bool { return pulling(a) })
	b.Set("cam", source)
	wait("b stands by", func() bool { return standby(b) })
	if h := l.get("cam"); h != "a" {
		t.Fatalf("holder %q, want a", h)
	}
	time.Sleep(400 * time.Millisecond) // more than a TTL: a keeps renewing
	if !pulling(a) || !standby(b) {
		t.Fatalf("a %+v, b %+v", state(a), state(b))
	}

	// A third node took the lease (a's expired): a stops; then it expires.
	l.set("cam", "c")
	wait("both stand by", func() bool { return standby(a) && standby(b) })
	l.set("cam", "")
	wait("one pulls again", func() bool { return pulling(a) || pulling(b) })
	holder, other, hname := a, b, "a"
	if l.get("cam") == "b" {
		holder, other, hname = b, a, "b"
	}
	time.Sleep(100 * time.Millisecond)
	if !pulling(holder) || !standby(other) {
		t.Fatalf("holder %+v, other %+v", state(holder), state(other))
	}

	// The holder gives the source up: it releases the lease, the other
	// takes it.
	holder.Remove("cam")
	wait("the other pulls", func() bool { return pulling(other) && l.get("cam") != hname })
	holder, other = other, holder
	hname = l.get("cam")
	oname := map[string]string{"a": "b", "b": "a"}[hname]

	// The other cannot reach the store: standby, with the lease error shown.
	l.setDown(oname, true)
	other.Set("cam", source)
	wait("the lease error", func() bool {
		st := state(other)
		return st.State == PullStandby && strings.Contains(st.Error, errStoreDown.Error())
	})
	l.setDown(oname, false)
	wait("standby", func() bool { return standby(other) })

	// The holder cannot renew for a TTL: it stops pulling, without
	// releasing what it no longer knows to hold.
	l.setDown(hname, true)
	wait("holder stands by", func() bool { return state(holder).State == PullStandby })
	if h := l.get("cam"); h != hname {
		t.Fatalf("holder %q, want %s's stale lease", h, hname)
	}
	l.set("cam", "") // the stale lease expires
	wait("the other pulls", func() bool { return pulling(other) && l.get("cam") == oname })

	// Closing the new holder releases its lease.
	l.setDown(hname, false)
	other.Close()
	if h := l.get("cam"); h == oname {
		t.Fatal("the lease was kept after Close")
	}
	wait("the first pulls", func() bool { return pulling(holder) })
}
