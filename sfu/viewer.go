package sfu

import (
	"sync"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// Viewer is one viewer's outgoing tracks on a stream, whatever the
// signalling: egress's WHEP makes one per session, adds Track(kind) to its
// peer connection, calls Start once connected and hands the tracks' RTCP
// to HandleRTCP.
type Viewer struct {
	st    *Stream
	video *downTrack
	audio *downTrack
	onEnd func()
	tcc   transportCC
	srs   [2]rtcp.SenderReport // SenderReports' reused reports

	startOnce sync.Once
	closeOnce sync.Once
}

// NewViewer registers a viewer with the tracks the session negotiated.
// onEnd ends the session from the sfu's side (stream deleted, shutdown); it
// must call Close.
func (st *Stream) NewViewer(video, audio bool, onEnd func()) (*Viewer, error) {
	v := &Viewer{st: st, onEnd: onEnd}
	msid := "streamd-" + st.id
	if video {
		v.video = newDownTrack("video", msid, webrtc.RTPCodecTypeVideo)
		v.video.want.Store(wantAuto)
		v.video.tcc = &v.tcc
	}
	if audio {
		v.audio = newDownTrack("audio", msid, webrtc.RTPCodecTypeAudio)
		v.audio.tcc = &v.tcc
	}
	s := st.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	s.viewers[v] = struct{}{}
	s.m.subscribers.Inc()
	return v, nil
}

// Track is the viewer's outgoing track of that kind (nil when not negotiated).
func (v *Viewer) Track(kind webrtc.RTPCodecType) webrtc.TrackLocal {
	if d := v.track(kind); d != nil {
		return d
	}
	return nil
}

func (v *Viewer) track(kind webrtc.RTPCodecType) *downTrack {
	if kind == webrtc.RTPCodecTypeVideo {
		return v.video
	}
	return v.audio
}

// Start admits the viewer's tracks (the peer is connected): video starts
// from the keyframe cache or the next keyframe.
func (v *Viewer) Start() {
	v.startOnce.Do(func() {
		for _, d := range []*downTrack{v.video, v.audio} {
			if d != nil {
				v.st.forwarder(d.kind).join(d)
			}
		}
	})
}

// HandleRTCP serves the viewer's feedback on its track of that kind:
// keyframe requests go to the stream (merged and throttled there), NACKs are
// answered from the shared cache. seqs is scratch space, returned for reuse.
func (v *Viewer) HandleRTCP(kind webrtc.RTPCodecType, pkts []rtcp.Packet, seqs []uint16) []uint16 {
	d := v.track(kind)
	if d == nil {
		return seqs
	}
	f := v.st.forwarder(kind)
	for _, p := range pkts {
		switch p := p.(type) {
		case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
			v.st.s.m.pliReceived.Inc()
			if f.video {
				v.st.requestKeyframe(max(int(d.current.Load()), 0))
			}
		case *rtcp.TransportLayerNack:
			seqs = seqs[:0]
			for i := range p.Nacks {
				p.Nacks[i].Range(func(s uint16) bool {
					seqs = append(seqs, s)
					return len(seqs) < 1024
				})
			}
			if len(seqs) > 0 {
				f.retransmit(d, seqs)
			}
		}
	}
	return seqs
}

// Close takes the viewer out of the stream.
func (v *Viewer) Close() {
	v.closeOnce.Do(func() {
		for _, d := range []*downTrack{v.video, v.audio} {
			if d != nil {
				v.st.forwarder(d.kind).remove(d)
			}
		}
		s := v.st.s
		s.mu.Lock()
		delete(s.viewers, v)
		s.mu.Unlock()
		s.m.subscribers.Dec()
	})
}

// end ends the session from the sfu's side.
func (v *Viewer) end() {
	if v.onEnd != nil {
		v.onEnd()
	}
	v.Close()
}
