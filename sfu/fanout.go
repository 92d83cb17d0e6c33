package sfu

import (
	"sync"
	"sync/atomic"
	"time"
)

// Batcher groups the UDP writes of one pass into few system calls (declared
// here; rtc.BatchConn implements it with sendmmsg; wired in internal/app).
// Begin and End may be called by several goroutines at once.
type Batcher interface {
	Begin()
	End()
}

// fanout writes one packet to every subscriber of a forwarder. Up to
// Tuning.ParallelAbove subscribers the publisher's goroutine does it alone;
// above, the list is cut into one contiguous chunk per worker and the
// workers (about one per core, shared by all streams) write their chunks at
// once while the publisher's goroutine writes the first. The pass ends when
// every chunk is written, so each viewer's packets stay in order and the
// payload is not used after write returns (the caller may reuse it).
type fanout struct {
	batch   Batcher
	above   int
	workers int
	chunks  chan chunk
	wg      sync.WaitGroup
	// mu makes close wait for passes in flight; after it, passes run on
	// the caller alone (an ingest reader may outlive the sfu by a packet).
	mu     sync.RWMutex
	closed bool
}

type chunk struct {
	p      *pass
	lo, hi int
}

// pass is one packet on its way to the subscribers.
type pass struct {
	f          *forwarder
	subs       []*downTrack
	slot       int // the packet's layer
	now        time.Time
	seq        uint16
	ts         uint32
	marker     bool
	payload    []byte
	frameStart bool
	arrival    time.Time
	sample     bool
	done       sync.WaitGroup
	sent       atomic.Int64
}

func newFanout(batch Batcher, above, workers int) *fanout {
	fo := &fanout{batch: batch, above: above, workers: workers}
	if workers > 1 {
		fo.chunks = make(chan chunk, workers*4)
		for i := 1; i < workers; i++ {
			fo.wg.Add(1)
			go func() {
				defer fo.wg.Done()
				for c := range fo.chunks {
					c.p.write(c.lo, c.hi)
					c.p.done.Done()
				}
			}()
		}
	}
	return fo
}

// close stops the workers (after every forwarder has stopped writing).
func (fo *fanout) close() {
	fo.mu.Lock()
	if !fo.closed && fo.chunks != nil {
		close(fo.chunks)
	}
	fo.closed = true
	fo.mu.Unlock()
	fo.wg.Wait()
}

func (fo *fanout) begin() {
	if fo.batch != nil {
		fo.batch.Begin()
	}
}

func (fo *fanout) end() {
	if fo.batch != nil {
		fo.batch.End()
	}
}

// run writes p to subs and returns how many writes succeeded.
func (fo *fanout) run(p *pass, subs []*downTrack) int {
	p.subs = subs
	p.sent.Store(0)
	n := len(subs)
	fo.mu.RLock()
	if n <= fo.above || fo.chunks == nil || fo.closed {
		p.write(0, n)
	} else {
		size := (n + fo.workers - 1) / fo.workers
		p.done.Add((n - 1) / size)
		for lo := size; lo < n; lo += size {
			fo.chunks <- chunk{p, lo, min(lo+size, n)}
		}
		p.write(0, size)
		p.done.Wait()
	}
	fo.mu.RUnlock()
	p.subs = nil
	return int(p.sent.Load())
}

// write sends the packet to subs[lo:hi].
func (p *pass) write(lo, hi int) {
	f := p.f
	f.fan.begin()
	sent, waiting, noCodec, failed, switched := 0, 0, 0, 0, 0
	for _, d := range p.subs[lo:hi] {
		if d.layer != p.slot || d.needKeyframe {
			// Not on this layer (or waiting): start or switch here only at
			// a keyframe of the layer the track should get.
			if d.target != p.slot {
				continue
			}
			if !p.frameStart {
				waiting++
				continue
			}
			if d.layer >= 0 && d.layer != p.slot {
				switched++
			}
			d.switchTo(p.slot, p.seq)
		}
		if !d.ptOK {
			noCodec++
			continue
		}
		seq := p.seq + d.seqOff
		if d.sinceSwitch < switchGuard {
			if int16(seq-d.switchSeq) < 0 {
				continue // a late packet from before the switch to this layer
			}
			d.sinceSwitch++
		}
		if err := d.write(seq, p.ts, p.marker, p.payload, p.now); err != nil {
			failed++
			d.needKeyframe = f.video
			continue
		}
		d.lastSeq, d.haveSeq = seq, true
		sent++
	}
	if switched > 0 {
		f.m.layerSwitches.Add(float64(switched))
	}
	f.fan.end()
	if p.sample && sent > 0 {
		// The delay to the last viewer of this chunk, once its packet is
		// handed to the socket (a batching socket may hold a video frame's
		// packets until its last one, at most a few ms).
		f.m.forwardDelay.Observe(time.Since(p.arrival).Seconds())
	}
	if waiting > 0 {
		f.m.dropWaitingKeyframe.Add(float64(waiting))
	}
	if noCodec > 0 {
		f.m.dropNoCodec.Add(float64(noCodec))
	}
	if failed > 0 {
		f.m.dropWriteError.Add(float64(failed))
	}
	p.sent.Add(int64(sent))
}
