package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd/sfu"
)

// Pull source states, as shown in GET /api/streams/{id}.
const (
	PullConnecting = "connecting"
	PullLive       = "live"
	PullRetrying   = "retrying"
	// PullStandby: another node of the cluster holds the source's lease
	// and pulls it (this node's viewers get the stream through the relay).
	PullStandby = "standby"
)

// PullLease makes one node of a cluster pull a given source at a time
// (declared here, implemented over Redis in internal/app). Acquire takes the
// lease of stream if no one holds it; Renew extends it and reports false
// once it is no longer this node's; Release gives it up if it is still ours.
type PullLease interface {
	Acquire(ctx context.Context, stream string) (bool, error)
	Renew(ctx context.Context, stream string) (bool, error)
	Release(ctx context.Context, stream string) error
}

// PullStatus is the state of a stream's pulled source.
type PullStatus struct {
	State    string
	Error    string // the last error, if any
	Warnings []string
}

// RTSPPull pulls the streams whose record names an rtsp:// source (IP
// cameras): while the stream exists it is kept connected, reconnecting with
// a capped exponential backoff when the camera drops. Configure the fields,
// then Initialize; Set and Remove follow the stream records.
type RTSPPull struct {
	SFU *sfu.SFU
	// MinBackoff and MaxBackoff bound the wait between attempts (defaults
	// 500 ms and 10 s); a session that stayed up for a while starts over
	// at MinBackoff.
	MinBackoff, MaxBackoff time.Duration
	// ReadTimeout ends a session whose camera sends nothing (default 10 s).
	ReadTimeout time.Duration
	// Lease, if set, makes a stream pulled only while this node holds its
	// lease; the others stand by and try to take it every LeaseTTL/5. nil:
	// every stream with a source is pulled (a single node).
	Lease PullLease
	// LeaseTTL is the lease's time to live (default 5 s): the holder
	// renews it every LeaseTTL/3 and stops pulling when it could not renew
	// it in time.
	LeaseTTL   time.Duration
	Registerer prometheus.Registerer
	Logger     *slog.Logger

	reconnects prometheus.Counter
	live       prometheus.Gauge

	mu     sync.Mutex
	pulls  map[string]*pull
	closed bool
	wg     sync.WaitGroup
}

// Initialize prepares the manager.
func (m *RTSPPull) Initialize() error {
	if m.MinBackoff == 0 {
		m.MinBackoff = 500 * time.Millisecond
	}
	if m.MaxBackoff == 0 {
		m.MaxBackoff = 10 * time.Second
	}
	if m.ReadTimeout == 0 {
		m.ReadTimeout = 10 * time.Second
	}
	if m.LeaseTTL == 0 {
		m.LeaseTTL = 5 * time.Second
	}
	if m.Logger == nil {
		m.Logger = slog.New(slog.DiscardHandler)
	}
	m.reconnects = prometheus.NewCounter(prometheus.CounterOpts{Name: "streamd_rtsp_pull_reconnects_total", Help: "RTSP pull sessions retried after a failure or a camera drop."})
	m.live = prometheus.NewGauge(prometheus.GaugeOpts{Name: "streamd_rtsp_pull_live", Help: "RTSP pulled sources currently live."})
	if m.Registerer != nil {
		m.Registerer.MustRegister(m.reconnects, m.live)
	}
	m.pulls = map[string]*pull{}
	return nil
}

// Set pulls stream from source (replacing a previous source); an empty
// source stops pulling it.
func (m *RTSPPull) Set(stream, source string) {
	if source == "" {
		m.Remove(stream)
		return
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	old := m.pulls[stream]
	if old != nil && old.source == source {
		m.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	state := PullConnecting
	if m.Lease != nil {
		state = PullStandby
	}
	p := &pull{m: m, stream: stream, source: source, ctx: ctx, cancel: cancel, state: state}
	m.pulls[stream] = p
	m.wg.Add(1)
	m.mu.Unlock()
	if old != nil {
		old.cancel()
	}
	m.Logger.Info("rtsp pull", "stream", stream, "source", redact(source))
	go func() {
		defer m.wg.Done()
		p.run()
	}()
}

// Remove stops pulling stream (its record was deleted).
func (m *RTSPPull) Remove(stream string) {
	m.mu.Lock()
	p := m.pulls[stream]
	delete(m.pulls, stream)
	m.mu.Unlock()
	if p != nil {
		p.cancel()
		m.Logger.Info("rtsp pull stopped", "stream", stream)
	}
}

// Status reports the pulled source of stream, if it has one.
func (m *RTSPPull) Status(stream string) (PullStatus, bool) {
	m.mu.Lock()
	p := m.pulls[stream]
	m.mu.Unlock()
	if p == nil {
		return PullStatus{}, false
	}
	return p.status(), true
}

// Streams lists the streams that have a source.
func (m *RTSPPull) Streams() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Collect(maps.Keys(m.pulls))
}

// Close stops every pull and waits for them.
func (m *RTSPPull) Close() {
	m.mu.Lock()
	m.closed = true
	all := slices.Collect(maps.Values(m.pulls))
	m.pulls = map[string]*pull{}
	m.mu.Unlock()
	for _, p := range all {
		p.cancel()
	}
	m.wg.Wait()
}

// redact hides a source URL's password in logs.
func redact(source string) string {
	u, err := url.Parse(source)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// pull is one stream's source and its reconnect loop.
type pull struct {
	m      *RTSPPull
	stream string
	source string
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	state   string
	lastErr string
	media   *rtspMedia
}

func (p *pull) status() PullStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := PullStatus{State: p.state, Error: p.lastErr}
	if p.media != nil {
		st.Warnings = p.media.Warnings()
	}
	return st
}

func (p *pull) set(state string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.state = state
	if err != nil {
		p.lastErr = err.Error()
	}
}

// setStandby shows the pull as waiting for the lease: no source error (the
// source is another node's business), unless the lease itself failed.
func (p *pull) setStandby(leaseErr error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.state = PullStandby
	p.lastErr = ""
	if leaseErr != nil {
		p.lastErr = "pull lease: " + leaseErr.Error()
	}
	p.media = nil
}

var errTakenOver = errors.New("another publisher took the stream over")

func (p *pull) run() {
	if p.m.Lease == nil {
		p.loop(p.ctx)
		return
	}
	for {
		acquired, ok := p.standby()
		if !ok {
			return
		}
		p.hold(acquired)
	}
}

// standby waits until this node takes the lease (false: the pull was
// stopped) and returns when the successful attempt started.
func (p *pull) standby() (time.Time, bool) {
	m := p.m
	for {
		start := time.Now()
		ctx, cancel := context.WithTimeout(p.ctx, m.LeaseTTL/3)
		ok, err := m.Lease.Acquire(ctx, p.stream)
		cancel()
		if p.ctx.Err() != nil {
			if ok {
				p.release()
			}
			return time.Time{}, false
		}
		if err == nil && ok {
			m.Logger.Info("rtsp pull: lease taken; pulling", "stream", p.stream)
			return start, true
		}
		if err != nil {
			m.Logger.Warn("rtsp pull: lease", "stream", p.stream, "err", err)
		}
		p.setStandby(err)
		if !sleep(p.ctx, m.LeaseTTL/5) {
			return time.Time{}, false
		}
	}
}

// hold pulls the source while the lease stays ours, then releases it.
func (p *pull) hold(acquired time.Time) {
	ctx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	renewed := make(chan time.Time, 1)
	go func() { renewed <- p.renew(ctx, cancel, acquired) }()
	p.loop(ctx)
	cancel()
	if last := <-renewed; time.Since(last) < p.m.LeaseTTL {
		p.release()
	}
	p.setStandby(nil)
}

// renew keeps the lease while ctx lasts; it cancels the pull when the lease
// is lost or could not be renewed in time. It returns when the last
// successful renewal started (zero if the lease went to someone else).
func (p *pull) renew(ctx context.Context, stop context.CancelFunc, last time.Time) time.Time {
	m := p.m
	period := m.LeaseTTL / 3
	t := time.NewTimer(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return last
		case <-t.C:
		}
		start := time.Now()
		rctx, cancel := context.WithTimeout(ctx, period)
		ok, err := m.Lease.Renew(rctx, p.stream)
		cancel()
		switch {
		case ctx.Err() != nil:
			return last
		case err == nil && ok:
			last = start
		case err == nil:
			m.Logger.Warn("rtsp pull: lease lost; standing by", "stream", p.stream)
			stop()
			return time.Time{}
		case time.Since(last)+period >= m.LeaseTTL:
			m.Logger.Warn("rtsp pull: lease not renewed in time; standing by", "stream", p.stream, "err", err)
			stop()
			return last
		default:
			m.Logger.Warn("rtsp pull: lease renewal", "stream", p.stream, "err", err)
		}
		t.Reset(period)
	}
}

func (p *pull) release() {
	ctx, cancel := context.WithTimeout(context.Background(), p.m.LeaseTTL/3)
	defer cancel()
	if err := p.m.Lease.Release(ctx, p.stream); err != nil {
		p.m.Logger.Warn("rtsp pull: lease release", "stream", p.stream, "err", err)
	}
}

// loop pulls the source, reconnecting, until ctx ends.
func (p *pull) loop(ctx context.Context) {
	m := p.m
	backoff := m.MinBackoff
	for {
		p.set(PullConnecting, nil)
		started := time.Now()
		err := p.session(ctx)
		if ctx.Err() != nil {
			return
		}
		m.reconnects.Inc()
		p.set(PullRetrying, err)
		m.Logger.Warn("rtsp pull: source failed; retrying", "stream", p.stream, "source", redact(p.source), "err", err, "in", backoff)
		if time.Since(started) > 10*time.Second {
			backoff = m.MinBackoff
		}
		if errors.Is(err, errTakenOver) {
			// Wait until the other publisher leaves, rather than taking
			// the stream back from it at once.
			for m.SFU.Live(p.stream) {
				if !sleep(ctx, backoff) {
					return
				}
			}
		}
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(backoff*2, m.MaxBackoff)
	}
}

// sleep waits d, or returns false when ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// session runs one connection to the source until it fails or ctx ends.
func (p *pull) session(ctx context.Context) error {
	m := p.m
	u, err := base.ParseURL(p.source)
	if err != nil {
		return fmt.Errorf("source URL: %w", err)
	}
	c := &gortsplib.Client{
		Scheme:            u.Scheme,
		Host:              u.Host,
		ReadTimeout:       m.ReadTimeout,
		OnTransportSwitch: func(err error) { m.Logger.Info("rtsp pull: transport switch", "stream", p.stream, "reason", err) },
		OnPacketsLost:     func(lost uint64) { m.Logger.Debug("rtsp pull: packets lost", "stream", p.stream, "lost", lost) },
		OnDecodeError:     func(err error) { m.Logger.Debug("rtsp pull: decode error", "stream", p.stream, "err", err) },
	}
	if err := c.Start2(); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	// Close the client when the pull is stopped (stream deleted, shutdown,
	// lease lost) or another publisher takes the stream over.
	src := &pullSource{closed: make(chan struct{})}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-ctx.Done():
		case <-src.closed:
		case <-done:
		}
		c.Close()
	}()
	defer func() {
		close(done)
		<-stopped
	}()

	desc, _, err := c.Describe(u)
	if err != nil {
		return fmt.Errorf("describe: %w", err)
	}
	media, err := planRTSPMedia(p.stream, desc, m.Logger)
	p.mu.Lock()
	p.media = media
	p.mu.Unlock()
	if err != nil {
		return err
	}
	if err := c.SetupAll(desc.BaseURL, media.medias()); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	var live atomic.Bool
	media.onPacket = func() {
		if !live.Load() && live.CompareAndSwap(false, true) {
			p.set(PullLive, nil)
			m.live.Inc()
			m.Logger.Info("rtsp pull live", "stream", p.stream)
		}
	}
	defer func() {
		if live.Load() {
			m.live.Dec()
		}
	}()
	for _, t := range media.tracks {
		c.OnPacketRTP(t.medi, t.forma, t.handle)
	}
	pub := m.SFU.Stream(p.stream).Publish(src)
	defer pub.Close()
	media.attach(pub)
	if _, err := c.Play(nil); err != nil {
		return fmt.Errorf("play: %w", err)
	}
	err = c.Wait()
	select {
	case <-src.closed:
		return errTakenOver
	default:
	}
	if err == nil {
		return errors.New("the source closed the session")
	}
	return fmt.Errorf("connection to the source lost: %w", err)
}

// pullSource is the sfu Source of one pull session.
type pullSource struct {
	once   sync.Once
	closed chan struct{}
}

// RequestKeyframe: RTSP has no way to ask a camera for a keyframe.
func (s *pullSource) RequestKeyframe() {}

// Close ends the session (another publisher took the stream over).
func (s *pullSource) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}
