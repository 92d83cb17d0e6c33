package sfu

import (
	"sync"
	"sync/atomic"
)

// fanoutPool spreads one packet's fan-out over several cores when a stream
// has many viewers: the viewer list is cut into chunks, the publisher's
// goroutine sends one chunk and the pool's workers the others, and the
// packet is done when all are. Each viewer is in exactly one chunk, so its
// per-viewer state is still touched by one goroutine at a time. The workers
// are shared by all streams and owned by the SFU.
type fanoutPool struct {
	workers int
	tasks   chan fanTask
	quit    chan struct{}
	wg      sync.WaitGroup
}

type fanTask struct {
	f    *forwarder
	subs []*downTrack
	p    *outPacket
	done *sync.WaitGroup
	sent *atomic.Int64
}

func newFanoutPool(workers int) *fanoutPool {
	p := &fanoutPool{workers: workers, tasks: make(chan fanTask, 4*workers), quit: make(chan struct{})}
	for i := 0; i < workers; i++ {
		p.wg.Add(1)
		go p.run()
	}
	return p
}

func (p *fanoutPool) run() {
	defer p.wg.Done()
	for {
		select {
		case t := <-p.tasks:
			t.sent.Add(int64(t.f.sendTo(t.subs, t.p)))
			t.done.Done()
		case <-p.quit:
			return
		}
	}
}

// fanout sends out to subs using the calling goroutine and the workers. The
// caller holds f.wmu; f.fanDone and f.fanSent are only used under it.
func (p *fanoutPool) fanout(f *forwarder, subs []*downTrack, out *outPacket) int {
	chunks := p.workers + 1
	size := (len(subs) + chunks - 1) / chunks
	f.fanSent.Store(0)
	for i := size; i < len(subs); i += size {
		end := min(i+size, len(subs))
		f.fanDone.Add(1)
		select {
		case p.tasks <- fanTask{f: f, subs: subs[i:end], p: out, done: &f.fanDone, sent: &f.fanSent}:
		case <-p.quit: // shutting down: send it ourselves
			f.fanSent.Add(int64(f.sendTo(subs[i:end], out)))
			f.fanDone.Done()
		}
	}
	sent := f.sendTo(subs[:min(size, len(subs))], out)
	f.fanDone.Wait()
	return sent + int(f.fanSent.Load())
}

func (p *fanoutPool) close() {
	close(p.quit)
	p.wg.Wait()
}
