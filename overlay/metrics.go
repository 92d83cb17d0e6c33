package overlay

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	connections     prometheus.Gauge
	sent            prometheus.Counter
	writes          prometheus.Counter
	dropped         prometheus.Counter
	slowDisconnects prometheus.Counter
	pushDelay       prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "streamd_overlay_connections", Help: "Open overlay WebSocket connections on this node.",
		}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamd_overlay_messages_sent_total", Help: "Overlay messages written to WebSocket connections.",
		}),
		writes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamd_overlay_writes_total", Help: "write(2) calls on overlay connections (several queued messages go out in one; chat lingers for company, see ChatLinger).",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamd_overlay_messages_dropped_total", Help: "Queued overlay messages superseded by a newer one of the same key (slow connections) and sent as skip markers.",
		}),
		slowDisconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamd_overlay_slow_disconnects_total", Help: "Connections closed because their queue passed QueueBytes or a write took longer than WriteTimeout.",
		}),
		pushDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "streamd_overlay_push_delay_seconds",
			Help:    "Time from an event reaching this node's hub to its write on a connection.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .075, .1, .15, .2, .25, .5, 1, 2.5},
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.connections, m.sent, m.writes, m.dropped, m.slowDisconnects, m.pushDelay} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("overlay: metrics already registered (one Registerer per Server): %w", err)
			}
			return nil, fmt.Errorf("overlay: register metrics: %w", err)
		}
	}
	return m, nil
}
