package record

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// packet is a copy of one forwarded packet, queued for the show's goroutine.
type packet struct {
	video   bool
	mime    string
	arrival int64 // unix ns, taken on the forwarding path
	ts      uint32
	seq     uint16
	marker  bool
	payload []byte
}

// event is an overlay event queued for the show's goroutine.
type event struct {
	arrival int64
	typ     string
	data    []byte
}

// show records one show. The sfu calls WriteRTP on its forwarding path: the
// packet is copied into a bounded queue (dropped and counted when full, never
// blocking viewers) and muxed on the show's own goroutine, which alone owns
// the files and the muxer state.
type show struct {
	r    *Recorder
	dir  string
	meta Meta
	src  Source

	packets chan packet
	events  chan event
	done    chan struct{}
	stopped chan struct{}
	endOnce sync.Once

	dropped  atomic.Int64
	lastWarn atomic.Int64

	warnMu sync.Mutex
	warns  []string

	// Owned by the recorder (under r.mu).
	gapTimer *time.Timer

	removeSink   func()
	cancelEvents func()
}

func newShow(r *Recorder, dir string, m Meta, src Source) (*show, error) {
	s := &show{r: r, dir: dir, meta: m, src: src,
		packets: make(chan packet, r.QueuePackets), events: make(chan event, 256),
		done: make(chan struct{}), stopped: make(chan struct{})}
	mx, err := newMuxer(s)
	if err != nil {
		return nil, err
	}
	if r.Events != nil {
		cancel, err := r.Events.Subscribe(context.Background(), m.Stream, s.onEvent)
		if err != nil {
			mx.close()
			return nil, fmt.Errorf("subscribe to the stream's events: %w", err)
		}
		s.cancelEvents = cancel
	}
	s.removeSink = src.AddSink(s)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(s.stopped)
		s.run(mx)
	}()
	return s, nil
}

// WriteRTP implements sfu.Sink.
func (s *show) WriteRTP(kind webrtc.RTPCodecType, codec webrtc.RTPCodecCapability, pkt *rtp.Packet) {
	p := packet{video: kind == webrtc.RTPCodecTypeVideo, mime: codec.MimeType, arrival: time.Now().UnixNano(),
		ts: pkt.Timestamp, seq: pkt.SequenceNumber, marker: pkt.Marker, payload: append([]byte(nil), pkt.Payload...)}
	select {
	case s.packets <- p:
	default:
		n := s.dropped.Add(1)
		s.r.m.dropped.Inc()
		// One warning per 5 s at most: an overloaded disk must not flood the log.
		if now := time.Now().UnixNano(); now-s.lastWarn.Load() > int64(5*time.Second) {
			s.lastWarn.Store(now)
			s.r.log.Warn("recording queue full: packets dropped", "stream", s.meta.Stream, "show", s.meta.ID, "dropped_total", n)
		}
	}
}

func (s *show) onEvent(typ string, data []byte) {
	switch typ {
	case "card", "stock", "order", "chat", "chat_delete", "chat_pin", "live":
	default:
		return
	}
	select {
	case s.events <- event{arrival: time.Now().UnixNano(), typ: typ, data: data}:
	default:
		s.r.log.Warn("recording event queue full: event not recorded", "stream", s.meta.Stream, "type", typ)
	}
}

func (s *show) warn(msg string) {
	s.warnMu.Lock()
	defer s.warnMu.Unlock()
	for _, w := range s.warns {
		if w == msg {
			return
		}
	}
	s.warns = append(s.warns, msg)
	s.r.log.Warn(msg, "stream", s.meta.Stream, "show", s.meta.ID)
}

func (s *show) warnings() []string {
	s.warnMu.Lock()
	defer s.warnMu.Unlock()
	return append([]string(nil), s.warns...)
}

// end stops the recording and closes the show with the real end of its media.
func (s *show) end() {
	s.endOnce.Do(func() {
		s.removeSink()
		if s.cancelEvents != nil {
			s.cancelEvents()
		}
		close(s.done)
		<-s.stopped
	})
}

func (s *show) run(mx *muxer) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case p := <-s.packets:
			mx.packet(p)
		case ev := <-s.events:
			mx.event(ev)
		case <-tick.C:
			mx.tick()
		case <-s.done:
			for {
				select {
				case p := <-s.packets:
					mx.packet(p)
					continue
				case ev := <-s.events:
					mx.event(ev)
					continue
				default:
				}
				break
			}
			mx.finish()
			return
		}
	}
}

// closeShow writes the show's end.
func (s *show) closeShow(end time.Time) {
	end = end.UTC()
	s.meta.EndedAt = &end
	if err := writeMeta(s.dir, s.meta); err != nil {
		s.r.log.Error("close show", "show", s.meta.ID, "err", err)
	}
}

// removeEmpty drops a show that recorded nothing (a publisher that never sent a keyframe).
func (s *show) removeEmpty() {
	s.r.log.Info("show recorded nothing; removed", "stream", s.meta.Stream, "show", s.meta.ID)
	_ = os.RemoveAll(s.dir)
}

func unsupportedWarning(mime string) string {
	codec := strings.TrimPrefix(strings.TrimPrefix(mime, "video/"), "audio/")
	if strings.HasPrefix(mime, "audio/") {
		return fmt.Sprintf("audio in %s is not recorded (replays take Opus): publish Opus to record sound", codec)
	}
	return fmt.Sprintf("video in %s is not recorded (replays take H.264): publish H.264 to get a replay of this show", codec)
}

func segName(n int) string { return fmt.Sprintf("%06d.m4s", n) }

func (s *show) path(name string) string { return filepath.Join(s.dir, name) }

// marshalEvent builds an events.jsonl line's data: the overlay message as is.
func marshalEvent(data []byte) json.RawMessage {
	if json.Valid(data) {
		return json.RawMessage(data)
	}
	b, _ := json.Marshal(string(data))
	return b
}
