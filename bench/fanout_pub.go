// The fan-out scenario's publisher: a looped clip at a fixed frame rate,
// each frame stamped with a bench SEI, sent over WHIP (pion) or RTSP
// (gortsplib, fanout_rtsp.go).

package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/streamd/streamd/internal/rtctest"
)

// fanoutSink is where the publisher's media goes. run calls the writes
// from one goroutine; state may be called from any.
type fanoutSink interface {
	writeVideo(au []byte, dur time.Duration) error // an Annex-B access unit
	writeAudio(frame []byte, dur time.Duration) error
	state() string
}

// whipSink publishes through a pion WHIP publisher.
type whipSink struct{ pub *rtctest.Publisher }

func (w whipSink) writeVideo(au []byte, dur time.Duration) error {
	return w.pub.Video.WriteSample(media.Sample{Data: au, Duration: dur})
}

func (w whipSink) writeAudio(frame []byte, dur time.Duration) error {
	return w.pub.Audio.WriteSample(media.Sample{Data: frame, Duration: dur})
}

func (w whipSink) state() string { return w.pub.PC.ConnectionState().String() }

// fanoutSource is what a fanout step needs of its publisher:
// fanoutPublisher (one layer) or simulcastPub.
type fanoutSource interface {
	next() []uint64     // per layer, the number of its next frame
	plis(layer int) int // keyframe requests the publisher got for a layer (-1: not counted)
	lateFrames() int64  // frames sent more than a frame late, since the last call
	writeErrs() int64   // send errors since the last call (-1: not counted)
	state() string
	close() // stop sending, then disconnect
}

type fanoutPublisher struct {
	sink      fanoutSink
	closeSink func()
	counter   atomic.Uint64 // next frame number
	errs      atomic.Int64
	late      atomic.Int64 // frames sent more than one frame time late
	stop      context.CancelFunc
	wg        sync.WaitGroup
}

// startFanoutPublisher sends aus through sink (run) until close.
func startFanoutPublisher(ctx context.Context, sink fanoutSink, closeSink func(), aus [][]byte) *fanoutPublisher {
	pctx, stop := context.WithCancel(ctx)
	p := &fanoutPublisher{sink: sink, closeSink: closeSink, stop: stop}
	p.wg.Add(1)
	go func() { defer p.wg.Done(); p.run(pctx, aus, 30) }()
	return p
}

func (p *fanoutPublisher) next() []uint64    { return []uint64{p.counter.Load()} }
func (p *fanoutPublisher) plis(int) int      { return -1 }
func (p *fanoutPublisher) lateFrames() int64 { return p.late.Swap(0) }
func (p *fanoutPublisher) writeErrs() int64  { return p.errs.Swap(0) }
func (p *fanoutPublisher) state() string     { return p.sink.state() }

func (p *fanoutPublisher) close() {
	p.stop()
	p.wg.Wait()
	p.closeSink()
}

// run sends the clip in a loop at fps (with Opus every 20 ms) until ctx ends.
func (p *fanoutPublisher) run(ctx context.Context, aus [][]byte, fps int) {
	dur := time.Second / time.Duration(fps)
	start := time.Now()
	audio := time.NewTicker(20 * time.Millisecond)
	defer audio.Stop()
	next := start
	for i := 0; ; i++ {
		next = next.Add(dur)
		for {
			wait := time.Until(next)
			if wait <= 0 {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-audio.C:
				_ = p.sink.writeAudio(rtctest.OpusSilence, 20*time.Millisecond)
			case <-time.After(wait):
			}
		}
		c := p.counter.Load()
		now := time.Now()
		if now.Sub(next) > dur {
			p.late.Add(1)
		}
		au := withSEI(aus[i%len(aus)], seiNAL(c, now.UnixNano()))
		if err := p.sink.writeVideo(au, dur); err != nil {
			p.errs.Add(1)
		}
		p.counter.Add(1)
	}
}
