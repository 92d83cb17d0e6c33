package rtc

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/streamd/streamd/internal/testenv"
)

// Writes inside a pass are held until End and then arrive, in order, with
// far fewer system calls than datagrams; outside a pass they go at once.
func TestBatchConnQueuesAPassAndKeepsOrder(t *testing.T) {
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	b := NewBatchConn(udp)
	b.EnableGSO()
	const viewers, perViewer = 5, 300 // more than one queue's worth
	var rx []*net.UDPConn
	for range viewers {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadBuffer(4 << 20)
		defer c.Close()
		rx = append(rx, c)
	}
	// Outside a pass: sent at once.
	if _, err := b.WriteTo([]byte{0xff}, rx[0].LocalAddr()); err != nil {
		t.Fatal(err)
	}
	readOne(t, rx[0], []byte{0xff})

	b.hold = time.Hour
	b.Begin()
	if _, err := b.WriteTo([]byte{0, 0}, rx[0].LocalAddr()); err != nil {
		t.Fatal(err)
	}
	_ = rx[0].SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, _, err := rx[0].ReadFrom(make([]byte, 10)); err == nil {
		t.Fatalf("a write inside a pass went out before End (%d bytes)", n)
	}
	b.End()
	readOne(t, rx[0], []byte{0, 0})

	// A frame's equal-size packets to one viewer (and a shorter last one),
	// interleaved with another viewer's, arrive as they were written.
	b.Begin()
	frame := func(v, i int) []byte {
		p := make([]byte, 1200)
		if i == 9 {
			p = p[:500]
		}
		p[0], p[1] = byte(v), byte(i)
		return p
	}
	for i := range 10 {
		for v := range 2 {
			_, _ = b.WriteTo(frame(v, i), rx[v].LocalAddr())
		}
	}
	b.End()
	for i := range 10 {
		for v := range 2 {
			readOne(t, rx[v], frame(v, i))
		}
	}
	if _, _, _, trains := b.Stats(); trains != 2 {
		t.Errorf("%d segmentation trains for two viewers' frames, want 2", trains)
	}

	// A batch left open is sent anyway after the hold time.
	b.hold = 5 * time.Millisecond
	b.Begin()
	_, _ = b.WriteTo([]byte{7}, rx[1].LocalAddr())
	readOne(t, rx[1], []byte{7})
	b.End()
	b.hold = time.Hour

	// Several goroutines in overlapping passes, each writing its own viewers.
	var wg sync.WaitGroup
	for v := range viewers {
		wg.Go(func() {
			for i := range perViewer {
				b.Begin()
				_, _ = b.WriteToAddrPort([]byte{byte(v), byte(i >> 8), byte(i)}, rx[v].LocalAddr().(*net.UDPAddr).AddrPort())
				if i%7 == 0 {
					b.End()
				} else {
					defer b.End()
				}
			}
		})
	}
	wg.Wait()
	for v, c := range rx {
		for i := range perViewer {
			readOne(t, c, []byte{byte(v), byte(i >> 8), byte(i)})
		}
	}
	sent, batches, errs, trains := b.Stats()
	if errs != 0 || sent < viewers*perViewer || batches >= sent {
		t.Fatalf("sent %d datagrams in %d batches, %d errors", sent, batches, errs)
	}
	t.Logf("%d datagrams in %d sendmmsg calls, %d segmentation trains", sent, batches, trains)
}

func readOne(t *testing.T, c *net.UDPConn, want []byte) {
	t.Helper()
	buf := make([]byte, 2000)
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, _, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatalf("read: %v (want %v)", err, want)
	}
	if string(buf[:n]) != string(want) {
		t.Fatalf("got %v, want %v", buf[:n], want)
	}
}

// BenchmarkSend sends a 8-packet frame (1,200 bytes each) to 50 viewers on
// loopback: one sendto per packet, sendmmsg batches, and sendmmsg with UDP
// segmentation offload. On loopback the receiving side's kernel work runs
// in the sender's system call, so this is what the server pays per packet.
func BenchmarkSend(b *testing.B) {
	const viewers, frame = 50, 8
	var dsts []net.Addr
	for range viewers {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		go func() { // drain, so the kernel never drops for a full buffer
			buf := make([]byte, 2048)
			for {
				if _, _, err := c.ReadFrom(buf); err != nil {
					return
				}
			}
		}()
		dsts = append(dsts, c.LocalAddr())
	}
	pkt := make([]byte, 1200)
	for _, mode := range []string{"sendto", "sendmmsg", "sendmmsg+gso"} {
		b.Run(mode, func(b *testing.B) {
			udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				b.Fatal(err)
			}
			defer udp.Close()
			_ = udp.SetWriteBuffer(4 << 20)
			c := NewBatchConn(udp)
			c.gso.Store(mode == "sendmmsg+gso")
			b.ResetTimer()
			for range b.N {
				if mode != "sendto" {
					c.Begin()
				}
				for range frame {
					for _, d := range dsts {
						_, _ = c.WriteTo(pkt, d)
					}
				}
				if mode != "sendto" {
					c.End()
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*frame*viewers), "ns/packet")
		})
	}
}

// A path the kernel cannot send segmentation trains on (here a route with
// a path MTU below the segment size, as through a tunnel: the kernel
// refuses the train with EMSGSIZE) turns GSO off for good; the refused
// train and everything after it still arrive, datagram by datagram.
func TestBatchConnGSOFallsBack(t *testing.T) {
	l := testenv.NewShapedLink(t)
	l.RouteMTU(1000)
	rx, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(l.HostIP())})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	_ = rx.SetReadBuffer(1 << 20)
	var b *BatchConn
	if err := l.Do(func() error {
		udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(l.NSIP())})
		b = NewBatchConn(udp)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !b.EnableGSO() {
		t.Fatal("EnableGSO: this kernel has no UDP_SEGMENT (Linux 4.18+ has)")
	}
	b.hold = time.Hour
	pkt := func(pass, i int) []byte {
		p := make([]byte, 1200)
		p[0], p[1] = byte(pass), byte(i)
		return p
	}
	dst := rx.LocalAddr()
	for pass := range 2 {
		b.Begin()
		for i := range 6 {
			if _, err := b.WriteTo(pkt(pass, i), dst); err != nil {
				t.Fatal(err)
			}
		}
		b.End()
		if b.GSO() {
			t.Fatalf("pass %d: GSO still on after the kernel refused a train", pass)
		}
		for i := range 6 {
			readOne(t, rx, pkt(pass, i))
		}
	}
	sent, _, errs, trains := b.Stats()
	if sent != 12 || errs != 0 || trains != 0 {
		t.Fatalf("sent %d, errors %d, trains %d; want 12 sent, no errors, no trains", sent, errs, trains)
	}
}
