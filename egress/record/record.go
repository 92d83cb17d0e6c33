// Package record records every show — one live session of a stream,
// surviving publisher reconnects and takeovers — as fMP4 segments with the
// stream's overlay events (cards, stock, orders) on the same media timeline,
// and keeps the shows on disk for replay until their retention ends.
package record

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd/internal/httpx"
	"github.com/streamd/streamd/sfu"
)

// Source is a live stream's media (the sfu's Stream).
type Source interface {
	AddSink(s sfu.Sink) (remove func())
	// RequestKeyframe asks the publisher for a keyframe: WebRTC encoders
	// send them only on demand, and segments are cut at keyframes.
	RequestKeyframe()
}

// Events delivers a stream's overlay events as they are published (the
// overlay bus). fn must not block.
type Events interface {
	Subscribe(ctx context.Context, stream string, fn func(typ string, data []byte)) (cancel func(), err error)
}

// Recorder records shows. Set the fields, Initialize, Close.
type Recorder struct {
	Dir    string        // where shows live
	Keep   time.Duration // retention after a show ends; 0 keeps forever
	Events Events        // nil: no events are recorded
	// ShowGap: a stream off the air for longer ends its show; a publisher
	// back within it continues the same show. Default 2 minutes.
	ShowGap time.Duration
	// SegmentDuration is the length segments are cut at (at the next
	// keyframe). Default 2 s.
	SegmentDuration time.Duration
	QueuePackets    int // per show; default 4096
	StaffToken      string
	// OnShow is told of each new show (a cluster indexes where it lives).
	// Called with the recorder's lock held: it must not block.
	OnShow     func(stream, show string)
	Registerer prometheus.Registerer
	Logger     *slog.Logger

	log   *slog.Logger
	m     *metrics
	mu    sync.Mutex
	shows map[string]*show // open shows by stream
	ctx   context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup
}

// Initialize closes the shows a crash left open and starts the retention sweeper.
func (r *Recorder) Initialize() error {
	if r.ShowGap <= 0 {
		r.ShowGap = 2 * time.Minute
	}
	if r.SegmentDuration <= 0 {
		r.SegmentDuration = 2 * time.Second
	}
	if r.QueuePackets <= 0 {
		r.QueuePackets = 4096
	}
	r.log = r.Logger
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.m = newMetrics(r.Registerer)
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return fmt.Errorf("record dir: %w", err)
	}
	if err := r.repair(); err != nil {
		return err
	}
	r.shows = map[string]*show{}
	r.ctx, r.stop = context.WithCancel(context.Background())
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(time.Hour)
		defer t.Stop()
		for {
			r.sweep(time.Now())
			select {
			case <-r.ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

// Close ends every open show (with its real end) and stops.
func (r *Recorder) Close() {
	if r.stop == nil {
		return
	}
	r.stop()
	r.mu.Lock()
	open := r.shows
	r.shows = map[string]*show{}
	r.mu.Unlock()
	for _, s := range open {
		s.end()
	}
	r.wg.Wait()
}

// Live is told when a stream goes live or off the air. Live within ShowGap
// of going off continues the open show.
func (r *Recorder) Live(stream string, src Source, live bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctx == nil || r.ctx.Err() != nil {
		return
	}
	s := r.shows[stream]
	if !live {
		if s != nil && s.gapTimer == nil {
			s.gapTimer = time.AfterFunc(r.ShowGap, func() { r.endIfIdle(stream, s) })
		}
		return
	}
	if s != nil {
		if s.gapTimer != nil {
			s.gapTimer.Stop()
			s.gapTimer = nil
		}
		return
	}
	s, err := r.start(stream, src)
	if err != nil {
		r.log.Error("recording could not start", "stream", stream, "err", err)
		return
	}
	r.shows[stream] = s
}

func (r *Recorder) endIfIdle(stream string, s *show) {
	r.mu.Lock()
	if r.shows[stream] != s || s.gapTimer == nil {
		r.mu.Unlock()
		return
	}
	delete(r.shows, stream)
	r.mu.Unlock()
	s.end()
}

// EndShow ends a stream's open show now (e.g. the stream was deleted).
func (r *Recorder) EndShow(stream string) {
	r.mu.Lock()
	s := r.shows[stream]
	delete(r.shows, stream)
	r.mu.Unlock()
	if s != nil {
		if s.gapTimer != nil {
			s.gapTimer.Stop()
		}
		s.end()
	}
}

// Current is the id of the stream's open show, if any.
func (r *Recorder) Current(stream string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.shows[stream]; s != nil {
		return s.meta.ID, true
	}
	return "", false
}

// Warnings are the stream's recording warnings (e.g. a codec fMP4 recording
// does not take), for the stream's status.
func (r *Recorder) Warnings(stream string) []string {
	r.mu.Lock()
	s := r.shows[stream]
	r.mu.Unlock()
	if s == nil {
		return nil
	}
	return s.warnings()
}

func newShowID(now time.Time) string {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

func (r *Recorder) start(stream string, src Source) (*show, error) {
	if !validName(stream) {
		return nil, fmt.Errorf("stream id %q cannot name a directory", stream)
	}
	now := time.Now().UTC()
	m := Meta{ID: newShowID(now), Stream: stream, StartedAt: now}
	dir := filepath.Join(r.Dir, stream, m.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("show dir: %w", err)
	}
	if err := writeMeta(dir, m); err != nil {
		return nil, err
	}
	s, err := newShow(r, dir, m, src)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	r.log.Info("recording a new show", "stream", stream, "show", m.ID)
	if r.OnShow != nil {
		r.OnShow(stream, m.ID)
	}
	return s, nil
}

// Register mounts the staff API: GET /api/streams/{id}/shows, DELETE /api/streams/{id}/shows/{show}.
func (r *Recorder) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/streams/{id}/shows", func(w http.ResponseWriter, req *http.Request) {
		if !httpx.RequireStaff(w, req, r.StaffToken) {
			return
		}
		shows, err := r.Shows(req.PathValue("id"))
		if errors.Is(err, ErrNotFound) {
			httpx.WriteError(w, http.StatusNotFound, "unknown_stream", "no shows for that stream id")
			return
		}
		if err != nil {
			r.log.Error("list shows", "err", err)
			httpx.WriteError(w, http.StatusInternalServerError, "internal", "could not list the shows; see the server log")
			return
		}
		httpx.WriteJSON(w, http.StatusOK, shows)
	})
	mux.HandleFunc("DELETE /api/streams/{id}/shows/{show}", func(w http.ResponseWriter, req *http.Request) {
		if !httpx.RequireStaff(w, req, r.StaffToken) {
			return
		}
		stream, id := req.PathValue("id"), req.PathValue("show")
		if cur, ok := r.Current(stream); ok && cur == id {
			httpx.WriteError(w, http.StatusConflict, "show_live", "the show is still being recorded; delete it after it ends")
			return
		}
		dir, err := r.showDir(stream, id)
		if err == nil {
			_, err = readMeta(dir)
		}
		if err != nil {
			httpx.WriteError(w, http.StatusNotFound, "unknown_show", "no show "+id+" on stream "+stream)
			return
		}
		if err := os.RemoveAll(dir); err != nil {
			r.log.Error("delete show", "dir", dir, "err", err)
			httpx.WriteError(w, http.StatusInternalServerError, "internal", "could not delete the show; see the server log")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

type metrics struct {
	dropped  prometheus.Counter
	segments prometheus.Counter
	bytes    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		dropped:  prometheus.NewCounter(prometheus.CounterOpts{Name: "streamd_record_dropped_packets_total", Help: "Packets the recorder dropped because its queue was full."}),
		segments: prometheus.NewCounter(prometheus.CounterOpts{Name: "streamd_record_segments_total", Help: "fMP4 segments recorded."}),
		bytes:    prometheus.NewCounter(prometheus.CounterOpts{Name: "streamd_record_bytes_total", Help: "Bytes of media recorded."}),
	}
	if reg != nil {
		reg.MustRegister(m.dropped, m.segments, m.bytes)
	}
	return m
}
