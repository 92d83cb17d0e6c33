package sfu

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are resolved to their label children once, so the per-packet path
// only does atomic adds.
type metrics struct {
	publishers, subscribers prometheus.Gauge
	packetsIn, bytesIn      [2]prometheus.Counter // [audio, video]
	packetsOut, bytesOut    [2]prometheus.Counter
	forwardDelay            prometheus.Observer
	pliReceived, pliSent    prometheus.Counter
	nackReceived            prometheus.Counter
	nackRetransmitted       prometheus.Counter
	nackMissed              prometheus.Counter
	dropWaitingKeyframe     prometheus.Counter
	dropWriteError          prometheus.Counter
	dropNoCodec             prometheus.Counter
	dropBeforeKeyframe      prometheus.Counter
	dropTooLarge            prometheus.Counter
	dropStale               prometheus.Counter
	cacheReplays            prometheus.Counter
	cacheReplayPackets      prometheus.Counter
	gopCacheBytes           prometheus.Gauge
	gopCacheOverflows       prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	kinds := []string{"audio", "video"}
	pin := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamd_sfu_packets_in_total", Help: "RTP packets received from publishers."}, []string{"kind"})
	bin := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamd_sfu_bytes_in_total", Help: "RTP payload bytes received from publishers."}, []string{"kind"})
	pout := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamd_sfu_packets_out_total", Help: "RTP packets written to subscribers."}, []string{"kind"})
	bout := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamd_sfu_bytes_out_total", Help: "RTP payload bytes written to subscribers."}, []string{"kind"})
	drops := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamd_sfu_dropped_packets_total", Help: "Packets not forwarded, by reason."}, []string{"reason"})
	delay := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "streamd_sfu_forward_delay_seconds",
		Help:    "Time from a packet's arrival at the sfu to its write to each subscriber.",
		Buckets: []float64{10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3},
	})
	m := &metrics{
		publishers:          prometheus.NewGauge(prometheus.GaugeOpts{Name: "streamd_sfu_publishers", Help: "Live publishers."}),
		subscribers:         prometheus.NewGauge(prometheus.GaugeOpts{Name: "streamd_sfu_subscribers", Help: "Connected WHEP subscribers."}),
		forwardDelay:        delay,
		pliReceived:         prometheus.NewCounter(prometheus.CounterOpts{Name: "streamd_sfu_pli_received_total", Help: "PLI/FIR requests received from subscribers."}),
		pliSent:             prometheus.NewCounter(prometheus.CounterOpts{Name: "streamd_sfu_pli_sent_total", Help: "Keyframe requests sent to publishers (after merging)."}),
		nackReceived:        prometheus.NewCounter(prometheus.CounterOpts{Name: "streamd_sfu_nack_received_total", Help: "Packets asked for in subscriber NACKs."}),
		nackRetransmitted:   prometheus.NewCounter(prometheus.CounterOpts{Name: "streamd_sfu_nack_retransmitted_total", Help: "Packets retransmitted from the cache."}),
		nackMissed:          prometheus.NewCounter(prometheus.CounterOpts{Name: "streamd_sfu_nack_missed_total", Help: "NACKed packets no longer in the cache."}),
		cacheReplays:        prometheus.NewCounter(prometheus.CounterOpts{Name: "streamd_sfu_keyframe_cache_replays_total", Help: "Joiners started from the keyframe cache."}),
		cacheReplayPackets:  prometheus.NewCounter(prometheus.CounterOpts{Name: "streamd_sfu_keyframe_cache_replay_packets_total", Help: "Packets sent from the keyframe cache."}),
		gopCacheBytes:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "streamd_sfu_keyframe_cache_bytes", Help: "Bytes held by keyframe (GOP) caches."}),
		gopCacheOverflows:   prometheus.NewCounter(prometheus.CounterOpts{Name: "streamd_sfu_keyframe_cache_overflows_total", Help: "GOPs larger than the cache bound."}),
		dropWaitingKeyframe: drops.WithLabelValues("waiting_keyframe"),
		dropWriteError:      drops.WithLabelValues("write_error"),
		dropNoCodec:         drops.WithLabelValues("codec_not_negotiated"),
		dropBeforeKeyframe:  drops.WithLabelValues("source_before_keyframe"),
		dropTooLarge:        drops.WithLabelValues("too_large"),
		dropStale:           drops.WithLabelValues("stale"),
	}
	for i, k := range kinds {
		m.packetsIn[i], m.bytesIn[i] = pin.WithLabelValues(k), bin.WithLabelValues(k)
		m.packetsOut[i], m.bytesOut[i] = pout.WithLabelValues(k), bout.WithLabelValues(k)
	}
	if reg != nil {
		reg.MustRegister(pin, bin, pout, bout, drops, delay, m.publishers, m.subscribers, m.pliReceived, m.pliSent,
			m.nackReceived, m.nackRetransmitted, m.nackMissed, m.cacheReplays, m.cacheReplayPackets, m.gopCacheBytes, m.gopCacheOverflows)
	}
	return m
}
