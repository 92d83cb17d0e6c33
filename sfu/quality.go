package sfu

import "time"

// Quality is the layer a viewer asks for: a rank among the layers the
// publisher sends (Low is the smallest), or Auto — the viewer's bandwidth
// estimate decides (SetAutoRank).
type Quality int32

// Qualities.
const (
	QualityAuto   Quality = Quality(wantAuto)
	QualityLow    Quality = 0
	QualityMedium Quality = 1
	QualityHigh   Quality = 2
)

// ParseQuality reads "auto", "low", "medium" or "high".
func ParseQuality(s string) (Quality, bool) {
	switch s {
	case "auto", "":
		return QualityAuto, true
	case "low":
		return QualityLow, true
	case "medium":
		return QualityMedium, true
	case "high":
		return QualityHigh, true
	}
	return 0, false
}

func (q Quality) String() string {
	switch q {
	case QualityLow:
		return "low"
	case QualityMedium:
		return "medium"
	case QualityHigh:
		return "high"
	}
	return "auto"
}

// rankName names rank i of n layers: the top one is "high" and, with two,
// the other "low".
func rankName(i, n int) string {
	switch {
	case n <= 1:
		return "single"
	case i == n-1:
		return "high"
	case i == 0:
		return "low"
	}
	return "medium"
}

// LayerState is what a viewer's quality menu and bandwidth chooser need.
type LayerState struct {
	Want Quality
	// Current is the rank of the layer the viewer gets now (-1: none yet).
	Current int
	// Bitrates of the live layers, lowest first (bits/s, measured), and
	// their names: shared with other readers, never modify them.
	Bitrates []int
	Names    []string
}

// SetQuality pins the viewer to a layer rank, or gives the choice back to
// its bandwidth estimate (QualityAuto). The switch happens at the target
// layer's next keyframe, which is asked for.
func (v *Viewer) SetQuality(q Quality) {
	if v.video == nil {
		return
	}
	if q != QualityAuto && (q < QualityLow || q > QualityHigh) {
		q = QualityAuto
	}
	if v.video.want.Swap(int32(q)) != int32(q) {
		v.st.video.retarget.Store(true)
	}
}

// SetAutoRank is the bandwidth chooser's pick for an Auto viewer: a rank
// into the live layers (LayerState.Bitrates).
func (v *Viewer) SetAutoRank(rank int) {
	if v.video == nil {
		return
	}
	if v.video.autoRank.Swap(int32(rank)) != int32(rank) && v.video.want.Load() == wantAuto {
		v.st.video.retarget.Store(true)
	}
}

// Layers reports the viewer's wanted and current layer and the live layers.
func (v *Viewer) Layers() LayerState {
	ls := LayerState{Want: QualityAuto, Current: -1}
	if v.video == nil {
		return ls
	}
	ls.Want = Quality(v.video.want.Load())
	snap := v.st.video.snap.Load()
	if snap == nil {
		return ls
	}
	ls.Bitrates, ls.Names = snap.bps, snap.names
	ls.Current = snap.rankOf(v.video.current.Load())
	return ls
}

// SetSentRecorder makes the viewer's tracks carry the transport-wide
// congestion control extension (when negotiated) and report each packet
// sent to rec, the viewer's bandwidth estimator. Call before Start.
func (v *Viewer) SetSentRecorder(rec SentRecorder) {
	v.tcc.sent.Store(&rec)
}

// SetBandwidth tells the sfu the viewer's estimated bandwidth (bits/s):
// its NACK retransmissions are held to a quarter of it, so a viewer on a
// weak link is not flooded by resends of what its link already dropped.
func (v *Viewer) SetBandwidth(bps int) {
	pps := int64(bps / 4 / 8 / 1200)
	for _, d := range []*downTrack{v.video, v.audio} {
		if d != nil {
			d.rtxRate.Store(max(pps, 10))
		}
	}
}

// TransportCC reports whether the viewer's video carries the transport-wide
// congestion control extension (negotiated, and a recorder set): its
// bandwidth estimate will come.
func (v *Viewer) TransportCC() bool {
	return v.video != nil && v.video.tccID != 0 && v.tcc.sent.Load() != nil
}

// viewersPerLayer counts the video viewers by the layer they get now.
func (s *SFU) viewersPerLayer() map[string]int {
	s.mu.Lock()
	viewers := make([]*Viewer, 0, len(s.viewers))
	for v := range s.viewers {
		viewers = append(viewers, v)
	}
	s.mu.Unlock()
	out := map[string]int{}
	for _, v := range viewers {
		if v.video == nil {
			continue
		}
		snap := v.st.video.snap.Load()
		if snap == nil {
			continue
		}
		if r := snap.rankOf(v.video.current.Load()); r >= 0 {
			out[snap.names[r]]++
		}
	}
	return out
}

// Pad sends up to n padding-only packets on the viewer's video track, for
// a bandwidth probe, and returns how many went out. They take numbers in
// the viewer's sequence (media after them continues from there).
func (v *Viewer) Pad(n int) int {
	if v.video == nil || n <= 0 {
		return 0
	}
	return v.st.video.pad(v.video, n)
}

func (f *forwarder) pad(d *downTrack, n int) int {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if d.layer < 0 || d.needKeyframe || !d.ptOK || !d.haveSeq {
		return 0
	}
	now := time.Now() // stamped: a probe is measured by the estimate
	sent := 0
	d.pushRange(d.lastSeq+1, 0, -1)
	f.fan.begin()
	for range n {
		seq := d.lastSeq + 1
		if d.writePadding(seq, d.hdr.Timestamp, now) != nil {
			break
		}
		d.lastSeq = seq
		d.seqOff++
		sent++
	}
	f.fan.end()
	// Media goes on after the padding (the next number), from the same layer.
	d.switchSeq, d.sinceSwitch = d.lastSeq+1, 0
	d.pushRange(d.switchSeq, d.seqOff, d.layer)
	if sent > 0 {
		f.m.paddingPackets.Add(float64(sent))
	}
	return sent
}
