package rtctest

import (
	"bytes"
	"context"
	"net"
	"sync"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// ViewerReport is one second of what a watching viewer (Watch) would have
// put on screen. The first report, T 0, carries only the session URL.
type ViewerReport struct {
	T int `json:"t"` // seconds since the viewer connected
	// Frames is the frames shown: complete, with their chain since the
	// last keyframe complete.
	Frames int `json:"frames"`
	// MaxGapMS is the longest time between consecutive shown frames that
	// ended in this second, or the time since the last one (the
	// connection, before the first) when that is longer: a frozen second
	// reports at least 1000.
	MaxGapMS int `json:"max_gap_ms"`
	// Width and Height are the newest SPS's among the shown frames.
	Width  int `json:"width"`
	Height int `json:"height"`
	// Kbps is the RTP read (headers and payload, all tracks): a
	// retransmission that fills a hole counts, a duplicate does not (SRTP
	// replay protection drops it first).
	Kbps int `json:"kbps"`
	// Lost is the video packets given up on after waiting for them.
	Lost int `json:"lost"`
	// AtMS is when the second ended (Unix milliseconds), to line up the
	// reports of viewers that connected at different times.
	AtMS    int64  `json:"at_ms"`
	Session string `json:"session,omitempty"`
}

// Summarize folds per-second reports (T 0 skipped) into one: T the
// seconds, Frames and Lost summed, MaxGapMS the largest, Kbps the mean,
// Width and Height the last seen.
func Summarize(reports []ViewerReport) ViewerReport {
	var s ViewerReport
	for _, r := range reports {
		if r.T == 0 {
			continue
		}
		s.T++
		s.Frames += r.Frames
		s.Lost += r.Lost
		s.Kbps += r.Kbps
		s.MaxGapMS = max(s.MaxGapMS, r.MaxGapMS)
		if r.Width != 0 {
			s.Width, s.Height = r.Width, r.Height
		}
	}
	if s.T > 0 {
		s.Kbps /= s.T
	}
	return s
}

// OnIP is a setting engine that gathers only ip, over UDP (a viewer in a
// network namespace of a test), with a browser's SRTP replay window (1024
// packets, as libwebrtc's: pion's default 64 would drop retransmissions
// that come late behind a queue).
func OnIP(ip string) webrtc.SettingEngine {
	want := net.ParseIP(ip)
	se := webrtc.SettingEngine{}
	se.SetSRTPReplayProtectionWindow(1024)
	se.SetIncludeLoopbackCandidate(want.IsLoopback())
	se.SetIPFilter(want.Equal)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	se.SetICEMulticastDNSMode(0)
	return se
}

const (
	// nackWait is how long a missing video packet is waited for (its
	// retransmission) before the frame it belongs to is given up.
	nackWait = 250 * time.Millisecond
	// pliInterval spaces the keyframe requests of a viewer whose
	// reference chain is broken, as a browser's decoder does.
	pliInterval = 300 * time.Millisecond
)

// Watch connects a WHEP viewer made on api (pion's default interceptors
// send NACKs and transport-wide feedback) to endpoint and, until ctx ends,
// calls report once a second with what a player would have shown. It
// requests a keyframe when a lost frame breaks the picture.
func Watch(ctx context.Context, api *webrtc.API, endpoint string, report func(ViewerReport)) error {
	w := &watcher{}
	w.asm = newFrameAssembler(nackWait, w.shown)
	pc, err := NewViewer(api, w.read)
	if err != nil {
		return err
	}
	w.pc = pc
	defer w.close()
	session, err := Connect(ctx, pc, endpoint, "")
	if err != nil {
		return err
	}
	defer func() { _ = Delete(session, "") }()
	w.mu.Lock()
	w.lastTick = time.Now()
	if w.lastFrame.IsZero() { // black from the connection to the first frame
		w.lastFrame = w.lastTick
	}
	w.mu.Unlock()
	report(ViewerReport{Session: session})
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for sec := 1; ; sec++ {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			report(w.second(sec, now))
		}
	}
}

// watcher is Watch's state; mu guards all of it.
type watcher struct {
	pc *webrtc.PeerConnection
	wg sync.WaitGroup

	mu         sync.Mutex
	closed     bool
	asm        *frameAssembler
	now        time.Time // of the packet being pushed
	lastFrame  time.Time // the last shown frame (at first: the connection)
	lastTick   time.Time
	lastPLI    time.Time
	width      int
	height     int
	lostBefore int // the assembler's lost at the last report
	// this second's
	frames, bytes int
	maxGap        time.Duration
}

// read reads one remote track until the connection closes (on pion's
// goroutine, joined to w.wg).
func (w *watcher) read(t *webrtc.TrackRemote) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.wg.Add(1)
	w.mu.Unlock()
	defer w.wg.Done()
	video := t.Kind() == webrtc.RTPCodecTypeVideo
	for {
		p, _, err := t.ReadRTP()
		if err != nil {
			return
		}
		now := time.Now()
		w.mu.Lock()
		w.bytes += p.MarshalSize()
		if video {
			w.now = now
			w.asm.push(p, now)
		}
		pli := video && w.asm.needKey && now.Sub(w.lastPLI) >= pliInterval
		if pli {
			w.lastPLI = now
		}
		w.mu.Unlock()
		if pli {
			_ = w.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(t.SSRC())}})
		}
	}
}

// shown is the assembler's show: a frame on screen at w.now (w.mu held).
func (w *watcher) shown(au []byte) {
	w.frames++
	if !w.lastFrame.IsZero() {
		w.maxGap = max(w.maxGap, w.now.Sub(w.lastFrame))
	}
	w.lastFrame = w.now
	for i, nal := range bytes.Split(au, []byte{0, 0, 1}) {
		if i == 0 || len(nal) == 0 || nal[0]&0x1f != 7 {
			continue
		}
		var sps h264.SPS
		if sps.Unmarshal(nal) == nil {
			w.width, w.height = sps.Width(), sps.Height()
		}
	}
}

// second ends second sec at now: its report, and the counters reset.
func (w *watcher) second(sec int, now time.Time) ViewerReport {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.now = now
	w.asm.flush(now)
	r := ViewerReport{T: sec, AtMS: now.UnixMilli(), Frames: w.frames, Width: w.width, Height: w.height, Lost: w.asm.lost - w.lostBefore,
		MaxGapMS: int(max(w.maxGap, now.Sub(w.lastFrame)) / time.Millisecond)}
	if d := now.Sub(w.lastTick); d > 0 {
		r.Kbps = int(float64(w.bytes*8) / d.Seconds() / 1000)
	}
	w.lostBefore, w.lastTick = w.asm.lost, now
	w.frames, w.bytes, w.maxGap = 0, 0, 0
	return r
}

// close ends the peer connection and waits for the track readers.
func (w *watcher) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	_ = w.pc.GracefulClose()
	w.wg.Wait()
}
