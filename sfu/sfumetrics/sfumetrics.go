// Package sfumetrics exports the sfu's metrics (sfu.Stats) to Prometheus.
// It is apart from the sfu so that the media core does not import the
// Prometheus client, and with it net/http.
package sfumetrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd/sfu"
)

// Register adds a collector of s's metrics to reg (nil: nothing).
func Register(reg prometheus.Registerer, s *sfu.SFU) {
	if reg != nil {
		reg.MustRegister(&collector{s: s})
	}
}

var (
	kinds = [2]string{"audio", "video"}

	publishers   = prometheus.NewDesc("streamd_sfu_publishers", "Live publishers.", nil, nil)
	subscribers  = prometheus.NewDesc("streamd_sfu_subscribers", "Connected WHEP subscribers.", nil, nil)
	packetsIn    = prometheus.NewDesc("streamd_sfu_packets_in_total", "RTP packets received from publishers.", []string{"kind"}, nil)
	bytesIn      = prometheus.NewDesc("streamd_sfu_bytes_in_total", "RTP payload bytes received from publishers.", []string{"kind"}, nil)
	packetsOut   = prometheus.NewDesc("streamd_sfu_packets_out_total", "RTP packets written to subscribers.", []string{"kind"}, nil)
	bytesOut     = prometheus.NewDesc("streamd_sfu_bytes_out_total", "RTP payload bytes written to subscribers.", []string{"kind"}, nil)
	drops        = prometheus.NewDesc("streamd_sfu_dropped_packets_total", "Packets not forwarded, by reason.", []string{"reason"}, nil)
	forwardDelay = prometheus.NewDesc("streamd_sfu_forward_delay_seconds", "Time from a packet's arrival at the sfu to its write to the subscribers (sampled: one packet in 16, observed once per fan-out chunk, at its last subscriber).", nil, nil)
	pliReceived  = prometheus.NewDesc("streamd_sfu_pli_received_total", "PLI/FIR requests received from subscribers.", nil, nil)
	pliSent      = prometheus.NewDesc("streamd_sfu_pli_sent_total", "Keyframe requests sent to publishers (after merging).", nil, nil)
	nackReceived = prometheus.NewDesc("streamd_sfu_nack_received_total", "Packets asked for in subscriber NACKs.", nil, nil)
	nackRetx     = prometheus.NewDesc("streamd_sfu_nack_retransmitted_total", "Packets retransmitted from the cache.", nil, nil)
	nackMissed   = prometheus.NewDesc("streamd_sfu_nack_missed_total", "NACKed packets no longer in the cache.", nil, nil)
	replays      = prometheus.NewDesc("streamd_sfu_keyframe_cache_replays_total", "Joiners started from the keyframe cache.", nil, nil)
	replayPkts   = prometheus.NewDesc("streamd_sfu_keyframe_cache_replay_packets_total", "Packets sent from the keyframe cache.", nil, nil)
	gopBytes     = prometheus.NewDesc("streamd_sfu_keyframe_cache_bytes", "Bytes held by keyframe (GOP) caches.", nil, nil)
	gopOverflows = prometheus.NewDesc("streamd_sfu_keyframe_cache_overflows_total", "GOPs larger than the cache bound.", nil, nil)
	layerViewers = prometheus.NewDesc("streamd_sfu_layer_viewers", "Video viewers by the simulcast layer they get now (single: a one-layer stream).", []string{"layer"}, nil)
	layerSwitch  = prometheus.NewDesc("streamd_sfu_layer_switches_total", "Viewers moved from one simulcast layer to another.", nil, nil)
	padding      = prometheus.NewDesc("streamd_sfu_padding_packets_total", "Padding-only packets sent for bandwidth probes.", nil, nil)
	realigns     = prometheus.NewDesc("streamd_sfu_layer_realigns_total", "Simulcast layers moved onto the reference layer's timeline by sender reports.", nil, nil)
)

type collector struct{ s *sfu.SFU }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{publishers, subscribers, packetsIn, bytesIn, packetsOut, bytesOut, drops, forwardDelay,
		pliReceived, pliSent, nackReceived, nackRetx, nackMissed, replays, replayPkts, gopBytes, gopOverflows, layerViewers, layerSwitch, padding, realigns} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	count := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(publishers, st.Publishers)
	gauge(subscribers, st.Subscribers)
	for i, k := range kinds {
		count(packetsIn, st.PacketsIn[i], k)
		count(bytesIn, st.BytesIn[i], k)
		count(packetsOut, st.PacketsOut[i], k)
		count(bytesOut, st.BytesOut[i], k)
	}
	for reason, n := range st.Drops {
		count(drops, n, reason)
	}
	h := st.ForwardDelay
	ch <- prometheus.MustNewConstHistogram(forwardDelay, h.Count, h.Sum, h.Buckets)
	count(pliReceived, st.PLIReceived)
	count(pliSent, st.PLISent)
	count(nackReceived, st.NACKReceived)
	count(nackRetx, st.NACKRetransmitted)
	count(nackMissed, st.NACKMissed)
	count(replays, st.CacheReplays)
	count(replayPkts, st.CacheReplayPackets)
	gauge(gopBytes, st.KeyframeCacheBytes)
	count(gopOverflows, st.KeyframeCacheOverflows)
	for _, l := range []string{"low", "medium", "high", "single"} {
		ch <- prometheus.MustNewConstMetric(layerViewers, prometheus.GaugeValue, float64(st.ViewersPerLayer[l]), l)
	}
	count(layerSwitch, st.LayerSwitches)
	count(padding, st.PaddingPackets)
	count(realigns, st.LayerRealigns)
}
