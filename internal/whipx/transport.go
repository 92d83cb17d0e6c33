package whipx

import (
	"net/http"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// AddLinks puts the ICE servers (TURN, with fresh credentials) offered to
// WHIP/WHEP clients in Link headers (RFC 9725 §4.6), on the 201 answer and
// on OPTIONS, so a client can learn them before it makes its offer.
func AddLinks(w http.ResponseWriter, r *http.Request, links func(*http.Request) []string) {
	if links == nil {
		return
	}
	for _, l := range links(r) {
		w.Header().Add("Link", l)
	}
}

// Transport names how a connected peer's media travels: "relay" (through
// a TURN server), "tcp" (ICE over TCP) or "udp"; "" before a pair is chosen.
func Transport(pc *webrtc.PeerConnection) string {
	sctp := pc.SCTP()
	if sctp == nil || sctp.Transport() == nil || sctp.Transport().ICETransport() == nil {
		return ""
	}
	pair, err := sctp.Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil || pair.Local == nil || pair.Remote == nil {
		return ""
	}
	switch {
	case pair.Local.Typ == webrtc.ICECandidateTypeRelay || pair.Remote.Typ == webrtc.ICECandidateTypeRelay:
		return "relay"
	case pair.Local.Protocol == webrtc.ICEProtocolTCP:
		return "tcp"
	}
	return "udp"
}

// Transports counts WebRTC sessions by role (viewer, publisher) and
// transport. A nil *Transports counts nothing.
type Transports struct {
	sessions *prometheus.GaugeVec
	total    *prometheus.CounterVec
}

// NewTransports makes the metrics and registers them on reg (nil: not registered).
func NewTransports(reg prometheus.Registerer) *Transports {
	t := &Transports{
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "streamd_webrtc_sessions", Help: "Connected WebRTC sessions, by role and transport (udp, tcp, relay)."}, []string{"role", "transport"}),
		total:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamd_webrtc_connections_total", Help: "WebRTC sessions that connected, by role and transport (udp, tcp, relay)."}, []string{"role", "transport"}),
	}
	if reg != nil {
		reg.MustRegister(t.sessions, t.total)
	}
	return t
}

// Connected counts a session of role that has just connected on pc; the
// returned func uncounts it when the session ends.
func (t *Transports) Connected(role string, pc *webrtc.PeerConnection) (release func()) {
	if t == nil {
		return func() {}
	}
	tr := Transport(pc)
	if tr == "" {
		tr = "unknown"
	}
	t.total.WithLabelValues(role, tr).Inc()
	g := t.sessions.WithLabelValues(role, tr)
	g.Inc()
	return g.Dec
}
