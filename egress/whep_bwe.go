package egress

import (
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd/internal/bwe"
	"github.com/streamd/streamd/sfu"
)

// A viewer's simulcast layer on Auto follows its bandwidth: every packet
// the sfu sends it carries the transport-wide congestion control extension
// and is recorded by the session's bwe.Estimator; the viewer's feedback
// (RTCP TransportLayerCC, ~every 50–100 ms from browsers) updates the
// estimate, and the session's bwe.Chooser turns it into a layer rank for
// the sfu (Viewer.SetAutoRank), stepping down on congestion and up only on
// sustained headroom or after a padding probe (see internal/bwe for the
// rules and why they are ours rather than pion's GCC).

// sessionBWE is one viewer's estimator and chooser.
type sessionBWE struct {
	est *bwe.Estimator

	mu       sync.Mutex // the chooser and the fields below (both RTCP readers)
	chooser  *bwe.Chooser
	target   int // the rank last given to the sfu (-1: none)
	observed time.Time
	logged   time.Time
	probing  bool
}

func newSessionBWE() *sessionBWE {
	return &sessionBWE{est: bwe.New(bwe.Config{}), chooser: bwe.NewChooser(chooserConfig()), target: -1}
}

// chooserConfig: an Auto viewer starts on the smallest layer (its join
// burst, the keyframe cache, is then small enough for a weak link) and
// climbs by probes, which start after 2 s without congestion rather than
// bwe's default 5 s, so a viewer on a good network is on the large layer
// within a few seconds.
func chooserConfig() bwe.ChooserConfig { return bwe.ChooserConfig{QuietFor: 2 * time.Second} }

// start puts an Auto viewer whose feedback will come (transport-wide CC
// negotiated) on the smallest layer before it joins.
func (s *whepSession) startBWE() {
	if s.viewer.TransportCC() && s.quality == sfu.QualityAuto {
		s.bwe.mu.Lock()
		s.bwe.target = 0
		s.bwe.mu.Unlock()
		s.viewer.SetAutoRank(0)
	}
}

// bweMetrics are the WHEP side's bandwidth metrics.
type bweMetrics struct {
	estimate *prometheus.HistogramVec
}

func newBWEMetrics(reg prometheus.Registerer) *bweMetrics {
	m := &bweMetrics{estimate: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "streamd_viewer_bandwidth_estimate_bits",
		Help:    "Viewers' send-side bandwidth estimates (bits/s), observed once a second per viewer.",
		Buckets: []float64{150e3, 300e3, 500e3, 700e3, 1e6, 1.5e6, 2e6, 3e6, 5e6, 10e6, 20e6},
	}, nil)}
	if reg != nil {
		reg.MustRegister(m.estimate)
	}
	return m
}

// feedback takes the viewer's RTCP: transport-wide feedback updates the
// estimate and, for a viewer on Auto, the layer it should get.
func (s *whepSession) feedback(pkts []rtcp.Packet) {
	b := s.bwe
	for _, p := range pkts {
		fb, ok := p.(*rtcp.TransportLayerCC)
		if !ok {
			continue
		}
		now := time.Now()
		b.est.Feedback(fb, now)
		s.choose(now)
	}
}

// choose runs the chooser on the newest estimate.
func (s *whepSession) choose(now time.Time) {
	b := s.bwe
	est := b.est.Estimate()
	ls := s.viewer.Layers()
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Sub(b.observed) >= time.Second && est.Ready {
		b.observed = now
		s.h.bweMetrics.estimate.WithLabelValues().Observe(float64(est.Bitrate))
		s.viewer.SetBandwidth(est.Bitrate)
	}
	if ls.Want != sfu.QualityAuto || len(ls.Bitrates) < 2 {
		return
	}
	cur := b.target
	if cur >= len(ls.Bitrates) {
		cur = len(ls.Bitrates) - 1
	}
	if cur < 0 && ls.Current >= 0 {
		cur = ls.Current
	}
	d := b.chooser.Choose(now, est, ls.Bitrates, cur)
	if now.Sub(b.logged) >= 500*time.Millisecond || d.Target != b.target || d.ProbeRate > 0 {
		b.logged = now
		s.h.Logger.Debug("bwe", "session", s.id, "bitrate", est.Bitrate, "delivered", est.Delivered, "loss", est.Loss,
			"queue", est.QueueDelay, "congested", est.Congested, "cur", cur, "target", d.Target, "probe", d.ProbeRate, "current", ls.Current, "layers", ls.Bitrates)
	}
	if d.Target != b.target {
		b.target = d.Target
		s.viewer.SetAutoRank(d.Target)
	}
	if d.ProbeRate > 0 && !b.probing {
		b.est.StartProbe(d.ProbeRate, d.ProbeFor, now)
		b.probing = true
		media := ls.Bitrates[min(max(d.Target, 0), len(ls.Bitrates)-1)]
		s.h.sessions.Go(func() { s.probe(d.ProbeRate-media, d.ProbeFor) })
	}
}

// probe pads the viewer's video up to the probe rate (rate: the padding
// bits/s on top of the media) while the estimator's probe runs.
func (s *whepSession) probe(rate int, d time.Duration) {
	defer func() {
		s.bwe.mu.Lock()
		s.bwe.probing = false
		s.bwe.mu.Unlock()
	}()
	const tick = 10 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	perPacket := 255 + 44 // padding and header/transport overhead, bits as bytes below
	owed := 0.0
	for end := time.Now().Add(d + 50*time.Millisecond); time.Now().Before(end) && s.bwe.est.Probing(time.Now()); {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		owed += float64(rate) / 8 * tick.Seconds()
		if n := int(owed) / perPacket; n > 0 {
			owed -= float64(s.viewer.Pad(n) * perPacket)
			if owed > float64(4*perPacket) {
				owed = 0 // the track could not take it (waiting for a keyframe)
			}
		}
	}
}

// estimate is the viewer's bandwidth estimate in bits/s (0: none yet).
func (s *whepSession) estimate() int {
	if s.bwe == nil {
		return 0
	}
	if e := s.bwe.est.Estimate(); e.Ready {
		return e.Bitrate
	}
	return 0
}
