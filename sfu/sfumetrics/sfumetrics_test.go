package sfumetrics

import (
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd/sfu"
)

type src struct{}

func (src) RequestKeyframe() {}
func (src) Close() error     { return nil }

// The sfu's counters reach the registry under the names dashboards use.
func TestExportsSFUMetrics(t *testing.T) {
	s := &sfu.SFU{}
	if err := s.Initialize(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	reg := prometheus.NewRegistry()
	Register(reg, s)
	tw := s.Stream("x").Publish(src{}).Track(webrtc.RTPCodecTypeVideo, webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000})
	tw.WriteRTP(&rtp.Packet{Header: rtp.Header{SequenceNumber: 1, Timestamp: 1}, Payload: []byte{0x41, 1}}, time.Now()) // before a keyframe
	tw.WriteRTP(&rtp.Packet{Header: rtp.Header{SequenceNumber: 2, Timestamp: 2}, Payload: []byte{0x65, 1, 2}}, time.Now())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "/" + l.GetValue()
			}
			switch {
			case m.Counter != nil:
				got[name] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				got[name] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				got[name] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	for name, want := range map[string]float64{
		"streamd_sfu_publishers":                                   1,
		"streamd_sfu_packets_in_total/video":                       2,
		"streamd_sfu_bytes_in_total/video":                         5, // both packets arrived
		"streamd_sfu_dropped_packets_total/source_before_keyframe": 1,
		"streamd_sfu_keyframe_cache_bytes":                         3,
		"streamd_sfu_forward_delay_seconds":                        0,
		"streamd_sfu_packets_out_total/audio":                      0,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
}
