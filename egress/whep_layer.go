package egress

import (
	"net/http"

	"github.com/streamd/streamd/internal/httpx"
	"github.com/streamd/streamd/internal/whipx"
	"github.com/streamd/streamd/sfu"
)

// layerState is the answer of GET/POST <session>/layer: what the viewer
// asked for, what it gets now and what the publisher sends.
type layerState struct {
	Layer       string   `json:"layer"`
	Current     string   `json:"current"`
	Layers      []string `json:"layers"`
	EstimateBPS int      `json:"estimate_bps,omitempty"`
}

// handleLayer reads (GET) or sets (POST {"layer":"auto"|"low"|"medium"|
// "high"}) a viewer session's simulcast layer. The switch happens at the
// new layer's next keyframe (asked for at once), so the answer's current
// layer may still be the old one.
func (h *WHEP) handleLayer(w http.ResponseWriter, r *http.Request) {
	if whipx.CORS(w, r) {
		return
	}
	s, ok := h.sessions.Get(r.PathValue("session"))
	if !ok || s.stream != r.PathValue("stream") || s.viewer == nil {
		httpx.WriteError(w, http.StatusNotFound, "unknown_session", "no such whep session (it ended or never existed)")
		return
	}
	if r.Method == http.MethodPost {
		var body struct {
			Layer string `json:"layer"`
		}
		if !httpx.DecodeJSON(w, r, 1<<10, &body) {
			return
		}
		q, ok := sfu.ParseQuality(body.Layer)
		if !ok || body.Layer == "" {
			httpx.WriteError(w, http.StatusUnprocessableEntity, "bad_layer", "layer must be auto, low, medium or high")
			return
		}
		s.viewer.SetQuality(q)
	}
	httpx.WriteJSON(w, http.StatusOK, s.layerState())
}

func (s *whepSession) layerState() layerState {
	ls := s.viewer.Layers()
	out := layerState{Layer: ls.Want.String(), Layers: ls.Names}
	if out.Layers == nil {
		out.Layers = []string{}
	}
	if ls.Current >= 0 && ls.Current < len(ls.Names) {
		out.Current = ls.Names[ls.Current]
	}
	out.EstimateBPS = s.estimate()
	return out
}
