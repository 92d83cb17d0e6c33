package sfu

import (
	"math"
	"sync/atomic"
	"time"
)

// metrics are plain atomics: the per-packet path only does atomic adds, and
// the sfu stays free of the Prometheus client (which pulls in net/http).
// sfu/sfumetrics exports them (Stats) to a Prometheus registry.
type metrics struct {
	publishers, subscribers gauge
	packetsIn, bytesIn      [2]counter // [audio, video]
	packetsOut, bytesOut    [2]counter
	forwardDelay            histogram
	pliReceived, pliSent    counter
	nackReceived            counter
	nackRetransmitted       counter
	nackMissed              counter
	dropWaitingKeyframe     counter
	dropWriteError          counter
	dropNoCodec             counter
	dropBeforeKeyframe      counter
	dropTooLarge            counter
	dropStale               counter
	cacheReplays            counter
	cacheReplayPackets      counter
	gopCacheBytes           gauge
	gopCacheOverflows       counter
	layerSwitches           counter
	paddingPackets          counter
	layerRealigns           counter
}

// forwardDelayBuckets are the upper bounds (seconds) of the forward delay histogram.
var forwardDelayBuckets = [...]float64{10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3}

func newMetrics() *metrics { return &metrics{} }

type counter struct{ n atomic.Uint64 }

func (c *counter) Inc()          { c.n.Add(1) }
func (c *counter) Add(v float64) { c.n.Add(uint64(v)) }
func (c *counter) get() uint64   { return c.n.Load() }

type gauge struct{ n atomic.Int64 }

func (g *gauge) Inc()          { g.n.Add(1) }
func (g *gauge) Dec()          { g.n.Add(-1) }
func (g *gauge) Add(v float64) { g.n.Add(int64(v)) }
func (g *gauge) Sub(v float64) { g.n.Add(-int64(v)) }
func (g *gauge) get() float64  { return float64(g.n.Load()) }

// histogram counts observations per bucket of forwardDelayBuckets (+Inf last).
type histogram struct {
	counts   [len(forwardDelayBuckets) + 1]atomic.Uint64
	sumNanos atomic.Int64
}

func (h *histogram) Observe(sec float64) {
	i := 0
	for i < len(forwardDelayBuckets) && sec > forwardDelayBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNanos.Add(int64(sec * float64(time.Second)))
}

// Histogram is a snapshot of a histogram: cumulative counts per upper bound.
type Histogram struct {
	Count   uint64
	Sum     float64 // seconds
	Buckets map[float64]uint64
}

func (h *histogram) snapshot() Histogram {
	out := Histogram{Buckets: make(map[float64]uint64, len(forwardDelayBuckets)), Sum: float64(h.sumNanos.Load()) / float64(time.Second)}
	var cum uint64
	for i := range h.counts {
		cum += h.counts[i].Load()
		if i < len(forwardDelayBuckets) {
			out.Buckets[forwardDelayBuckets[i]] = cum
		}
	}
	out.Count = cum
	return out
}

// Stats is a snapshot of the sfu's metrics.
type Stats struct {
	Publishers, Subscribers float64
	// [0] audio, [1] video.
	PacketsIn, BytesIn, PacketsOut, BytesOut [2]uint64
	ForwardDelay                             Histogram
	PLIReceived, PLISent                     uint64
	NACKReceived, NACKRetransmitted          uint64
	NACKMissed                               uint64
	// Drops by reason.
	Drops                            map[string]uint64
	CacheReplays, CacheReplayPackets uint64
	KeyframeCacheBytes               float64
	KeyframeCacheOverflows           uint64
	// LayerSwitches counts viewers moved from one simulcast layer to another.
	LayerSwitches uint64
	// PaddingPackets counts padding-only packets sent for bandwidth probes.
	PaddingPackets uint64
	// LayerRealigns counts layers moved onto the reference's timeline by
	// sender reports after being aligned by arrival time.
	LayerRealigns uint64
	// ViewersPerLayer counts video viewers by the quality of the layer they
	// get now ("low", "medium", "high"; "single" for a one-layer stream).
	ViewersPerLayer map[string]int
}

// Stats reads the sfu's metrics.
func (s *SFU) Stats() Stats {
	m := s.m
	st := Stats{
		Publishers: m.publishers.get(), Subscribers: m.subscribers.get(),
		ForwardDelay: m.forwardDelay.snapshot(),
		PLIReceived:  m.pliReceived.get(), PLISent: m.pliSent.get(),
		NACKReceived: m.nackReceived.get(), NACKRetransmitted: m.nackRetransmitted.get(), NACKMissed: m.nackMissed.get(),
		Drops: map[string]uint64{
			"waiting_keyframe":       m.dropWaitingKeyframe.get(),
			"write_error":            m.dropWriteError.get(),
			"codec_not_negotiated":   m.dropNoCodec.get(),
			"source_before_keyframe": m.dropBeforeKeyframe.get(),
			"too_large":              m.dropTooLarge.get(),
			"stale":                  m.dropStale.get(),
		},
		CacheReplays: m.cacheReplays.get(), CacheReplayPackets: m.cacheReplayPackets.get(),
		KeyframeCacheBytes: math.Max(0, m.gopCacheBytes.get()), KeyframeCacheOverflows: m.gopCacheOverflows.get(),
		LayerSwitches: m.layerSwitches.get(), PaddingPackets: m.paddingPackets.get(), LayerRealigns: m.layerRealigns.get(), ViewersPerLayer: s.viewersPerLayer(),
	}
	for i := range 2 {
		st.PacketsIn[i], st.BytesIn[i] = m.packetsIn[i].get(), m.bytesIn[i].get()
		st.PacketsOut[i], st.BytesOut[i] = m.packetsOut[i].get(), m.bytesOut[i].get()
	}
	return st
}
