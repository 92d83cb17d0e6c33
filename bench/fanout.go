package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/streamd/streamd/internal/rtctest"
)

// seiUUID marks the bench's user_data_unregistered SEI (no zero bytes, so
// the NAL needs no emulation prevention).
var seiUUID = [16]byte{0x5e, 0x7a, 0x3d, 0xb3, 0x4c, 0x11, 0x4e, 0x8f, 0x9a, 0x27, 0x61, 0xc4, 0xd2, 0x95, 0xbe, 0x1f}

const seiPayloadLen = 16 + 32 // uuid + 16 hex digits counter + 16 hex digits send time

// seiNAL builds the SEI NAL (type 6, payload type 5) carrying the frame
// counter and the send time in unix ns, both as hex text (no zero bytes).
func seiNAL(counter uint64, sendNs int64) []byte {
	n := make([]byte, 0, 3+seiPayloadLen+1)
	n = append(n, 0x06, 0x05, seiPayloadLen)
	n = append(n, seiUUID[:]...)
	var v [16]byte
	binary.BigEndian.PutUint64(v[:8], counter)
	binary.BigEndian.PutUint64(v[8:], uint64(sendNs))
	n = hex.AppendEncode(n, v[:])
	return append(n, 0x80) // rbsp trailing bits
}

// parseSEI reads a bench SEI NAL (starting at the NAL header).
func parseSEI(nal []byte) (counter uint64, sendNs int64, ok bool) {
	if len(nal) < 3+seiPayloadLen || nal[0]&0x1f != 6 || nal[1] != 5 || nal[2] != seiPayloadLen || !bytes.Equal(nal[3:19], seiUUID[:]) {
		return 0, 0, false
	}
	var v [16]byte
	if _, err := hex.Decode(v[:], nal[19:19+32]); err != nil {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(v[:8]), int64(binary.BigEndian.Uint64(v[8:])), true
}

// withSEI inserts sei (a NAL without start code) before the first slice NAL
// of an Annex-B access unit.
func withSEI(au, sei []byte) []byte {
	for i := 0; i+3 < len(au); i++ {
		if au[i] == 0 && au[i+1] == 0 && au[i+2] == 1 {
			if t := au[i+3] & 0x1f; t >= 1 && t <= 5 {
				s := i
				if s > 0 && au[s-1] == 0 {
					s--
				}
				out := make([]byte, 0, len(au)+len(sei)+4)
				out = append(out, au[:s]...)
				out = append(out, 0, 0, 0, 1)
				out = append(out, sei...)
				return append(out, au[s:]...)
			}
		}
	}
	return au
}

// ── publisher ──

type fanoutPublisher struct {
	pub       *rtctest.Publisher
	counter   atomic.Uint64 // next frame number
	writeErrs atomic.Int64
	late      atomic.Int64 // frames sent more than one frame time late
}

// run sends the clip in a loop at fps (with Opus every 20 ms) until ctx ends.
func (p *fanoutPublisher) run(ctx context.Context, aus [][]byte, fps int) {
	dur := time.Second / time.Duration(fps)
	start := time.Now()
	audio := time.NewTicker(20 * time.Millisecond)
	defer audio.Stop()
	next := start
	for i := 0; ; i++ {
		next = next.Add(dur)
		for {
			wait := time.Until(next)
			if wait <= 0 {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-audio.C:
				_ = p.pub.Audio.WriteSample(media.Sample{Data: rtctest.OpusSilence, Duration: 20 * time.Millisecond})
			case <-time.After(wait):
			}
		}
		c := p.counter.Load()
		now := time.Now()
		if now.Sub(next) > dur {
			p.late.Add(1)
		}
		au := withSEI(aus[i%len(aus)], seiNAL(c, now.UnixNano()))
		if err := p.pub.Video.WriteSample(media.Sample{Data: au, Duration: dur}); err != nil {
			p.writeErrs.Add(1)
		}
		p.counter.Add(1)
	}
}

// ── subscriber ──

type frameAcc struct {
	counter int64 // -1 until the SEI arrived
	sendNs  int64
	s0, s1  int32 // first (SEI) and last (marker) sequence numbers, -1 unknown
	count   int
	key     bool
	created int64
}

type frameRec struct {
	counter uint64
	delayUs int32
}

// fanoutSub is a WHEP viewer that measures per frame without decoding.
type fanoutSub struct {
	pc       *webrtc.PeerConnection
	session  string
	postedNs int64

	mu       sync.Mutex
	frames   map[uint32]*frameAcc
	recs     []frameRec
	joinNs   int64 // POST → first complete keyframe; 0 until then
	lastSeq  int32
	gaps     int // packets missing when seen (before any retransmission)
	packets  int
	lastGC   int64
	failed   atomic.Bool
	closeErr error
}

func newFanoutSub(ctx context.Context, api *webrtc.API, endpoint string) (*fanoutSub, error) {
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	s := &fanoutSub{pc: pc, frames: map[uint32]*frameAcc{}, lastSeq: -1}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			pc.Close()
			return nil, err
		}
	}
	pc.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		buf := make([]byte, 1600)
		var h rtp.Header
		video := t.Kind() == webrtc.RTPCodecTypeVideo
		for {
			n, _, err := t.Read(buf)
			if err != nil {
				return
			}
			if !video {
				continue
			}
			off, err := h.Unmarshal(buf[:n])
			if err != nil {
				continue
			}
			end := n
			if h.Padding && n > off {
				end -= int(buf[n-1])
			}
			if end < off {
				continue
			}
			s.onVideo(&h, buf[off:end], time.Now().UnixNano())
		}
	})
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateFailed {
			s.failed.Store(true)
		}
	})
	s.postedNs = time.Now().UnixNano()
	if s.session, err = rtctest.Exchange(ctx, pc, endpoint, ""); err != nil {
		pc.Close()
		return nil, err
	}
	if err := rtctest.WaitConnected(ctx, pc); err != nil {
		pc.Close()
		return nil, err
	}
	return s, nil
}

func (s *fanoutSub) onVideo(h *rtp.Header, payload []byte, now int64) {
	if len(payload) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.packets++
	seq := int32(h.SequenceNumber)
	if s.lastSeq >= 0 {
		if d := int16(h.SequenceNumber - uint16(s.lastSeq)); d > 0 {
			s.gaps += int(d) - 1
			s.lastSeq = seq
		}
	} else {
		s.lastSeq = seq
	}
	fa := s.frames[h.Timestamp]
	if fa == nil {
		fa = &frameAcc{counter: -1, s0: -1, s1: -1, created: now}
		s.frames[h.Timestamp] = fa
	}
	fa.count++
	inspect := func(nal []byte) {
		switch nal[0] & 0x1f {
		case 5, 7:
			fa.key = true
		case 6:
			if c, t, ok := parseSEI(nal); ok {
				fa.counter, fa.sendNs, fa.s0 = int64(c), t, seq
			}
		}
	}
	switch t := payload[0] & 0x1f; {
	case t == 24: // STAP-A
		for p := payload[1:]; len(p) > 2; {
			sz := int(binary.BigEndian.Uint16(p))
			p = p[2:]
			if sz == 0 || sz > len(p) {
				break
			}
			inspect(p[:sz])
			p = p[sz:]
		}
	case t == 28: // FU-A
		if len(payload) > 1 && payload[1]&0x80 != 0 && payload[1]&0x1f == 5 {
			fa.key = true
		}
	case t >= 1 && t <= 23:
		inspect(payload)
	}
	if h.Marker {
		fa.s1 = seq
	}
	if fa.counter >= 0 && fa.s0 >= 0 && fa.s1 >= 0 && fa.count >= int(uint16(fa.s1-fa.s0))+1 {
		delete(s.frames, h.Timestamp)
		s.recs = append(s.recs, frameRec{counter: uint64(fa.counter), delayUs: int32((now - fa.sendNs) / 1000)})
		if s.joinNs == 0 && fa.key {
			s.joinNs = now - s.postedNs
		}
	}
	if now-s.lastGC > int64(time.Second) {
		s.lastGC = now
		for ts, f := range s.frames {
			if now-f.created > int64(3*time.Second) {
				delete(s.frames, ts)
			}
		}
	}
}

// window returns the frames with counter in [c0, c1] and resets nothing.
func (s *fanoutSub) window(c0, c1 uint64) (recs []frameRec, gaps, packets int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.recs {
		if r.counter >= c0 && r.counter <= c1 {
			recs = append(recs, r)
		}
	}
	return recs, s.gaps, s.packets
}

// trim drops frame records before c0 (keeps memory flat across steps).
func (s *fanoutSub) trim(c0 uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.recs[:0]
	for _, r := range s.recs {
		if r.counter >= c0 {
			kept = append(kept, r)
		}
	}
	s.recs = kept
}

func (s *fanoutSub) counters() (gaps, packets int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gaps, s.packets
}

func (s *fanoutSub) close() {
	_ = rtctest.Delete(s.session, "")
	_ = s.pc.Close()
}

// noNackAPI is rtctest.NewAPI's loopback setup with RTCP reports but no
// NACK generator (-sub-nack=false): viewers never ask for retransmissions.
func noNackAPI() (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, err
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() && ip.To4() != nil })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(0)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// dumpGoroutines saves the server's goroutine stacks (needs --pprof).
func dumpGoroutines(ctx context.Context, base, file string) {
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/debug/pprof/goroutine?debug=2", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	_ = os.WriteFile(file, b, 0o644)
}

// ── scenario ──

func runFanout(ctx context.Context, e *Env) ([]Row, error) {
	o := e.Opts
	if o.Ingest != "" && o.Ingest != "whip" {
		return nil, fmt.Errorf("ingest %q: only whip is implemented", o.Ingest)
	}
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		return nil, errors.New("ffmpeg not found (apt-get install -y ffmpeg)")
	}
	if err := os.MkdirAll(o.Cache, 0o755); err != nil {
		return nil, err
	}
	e.Progress.Set("fanout: encoding %dx%d clip with ffmpeg (cached in %s)", o.Width, o.Height, o.Cache)
	aus, err := rtctest.EncodeH264(ffmpeg, o.Cache, o.Width, o.Height, 30, 10, 30, o.Bitrate)
	if err != nil {
		return nil, err
	}
	if len(aus) == 0 || !rtctest.IsIDR(aus[0]) {
		return nil, errors.New("encoded clip does not start with an IDR")
	}

	whip, whep, token, metrics, pid := o.WHIP, o.WHEP, o.Token, o.Metrics, o.PID
	if whip == "" {
		srv, err := e.StartServer(ctx, "fanout")
		if err != nil {
			return nil, err
		}
		defer srv.Stop()
		if token, err = srv.CreateStream(ctx, "bench-fanout"); err != nil {
			return nil, err
		}
		whip, whep, pid = srv.Base+"/whip/bench-fanout", srv.Base+"/whep/bench-fanout", srv.PID
	}
	if metrics == "" {
		if u, err := url.Parse(whip); err == nil {
			metrics = u.Scheme + "://" + u.Host + "/metrics"
		}
	}
	api, err := rtctest.NewAPI() // publisher and (default) subscribers: pion's default interceptors
	if err != nil {
		return nil, err
	}
	subAPI := api
	if !o.SubNACK {
		if subAPI, err = noNackAPI(); err != nil {
			return nil, err
		}
	}
	pctx, stopPub := context.WithCancel(ctx)
	defer stopPub()
	e.Progress.Set("fanout: publishing over WHIP")
	pub, err := rtctest.Publish(ctx, api, whip, token, webrtc.MimeTypeH264)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	defer pub.Close()
	fp := &fanoutPublisher{pub: pub}
	var pubWG sync.WaitGroup
	pubWG.Add(1)
	go func() { defer pubWG.Done(); fp.run(pctx, aus, 30) }()
	defer func() { stopPub(); pubWG.Wait() }()

	var subs []*fanoutSub
	defer func() {
		var wg sync.WaitGroup
		for _, s := range subs {
			wg.Add(1)
			go func() { defer wg.Done(); s.close() }()
		}
		wg.Wait()
	}()
	rssBase, _ := procRSS(pid)
	time.Sleep(500 * time.Millisecond) // the stream is live
	var rows []Row
	for _, n := range o.Subscribers {
		if ctx.Err() != nil {
			break
		}
		// Join the new subscribers, a few at a time.
		first := len(subs)
		var mu sync.Mutex
		var joinErr error
		sem := make(chan struct{}, 8)
		var wg sync.WaitGroup
		for i := len(subs); i < n; i++ {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
				s, err := newFanoutSub(jctx, subAPI, whep)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					if joinErr == nil {
						joinErr = err
					}
					return
				}
				subs = append(subs, s)
				e.Progress.Set("fanout: joining %d/%d subscribers", len(subs), n)
			}()
		}
		wg.Wait()
		if joinErr != nil {
			return rows, fmt.Errorf("subscribe (%d joined of %d): %w", len(subs), n, joinErr)
		}
		// Wait for every newcomer's first keyframe (GOP is 1 s).
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			all := true
			for _, s := range subs[first:] {
				s.mu.Lock()
				j := s.joinNs
				s.mu.Unlock()
				if j == 0 {
					all = false
					break
				}
			}
			if all {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		var joins []float64
		for _, s := range subs[first:] {
			s.mu.Lock()
			if s.joinNs > 0 {
				joins = append(joins, float64(s.joinNs)/1e6)
			}
			s.mu.Unlock()
		}
		time.Sleep(time.Second) // settle

		// Measure a window.
		c0 := fp.counter.Load() + 2
		for _, s := range subs {
			s.trim(c0)
		}
		m0, merr := scrape(ctx, metrics)
		gaps0 := make([]int, len(subs))
		for i, s := range subs {
			gaps0[i], _ = s.counters()
		}
		u := startUsage(pid)
		t0 := time.Now()
		const videoIn = `streamd_sfu_packets_in_total{kind="video"}`
		prevIn, prevT := m0[videoIn], time.Now()
		stalled := 0
		for time.Since(t0) < o.Duration && ctx.Err() == nil {
			time.Sleep(time.Second)
			rss, _ := procRSS(pid)
			in := -1.0
			if m, err := scrape(ctx, metrics); err == nil {
				in = (m[videoIn] - prevIn) / time.Since(prevT).Seconds()
				prevIn, prevT = m[videoIn], time.Now()
				if in < 30 { // ~230 pkt/s of video are sent
					stalled++
					if stalled == 2 && e.Opts.PProf && metrics != "" {
						dumpGoroutines(ctx, strings.TrimSuffix(metrics, "/metrics"), filepath.Join(o.Out, fmt.Sprintf("stall-goroutines-N%d.txt", n)))
					}
				}
			}
			e.Progress.Set("fanout: N=%d measuring %s/%s, frame %d, server video in %.0f pkt/s, RSS %d MB, publisher %s", n, time.Since(t0).Round(time.Second), o.Duration,
				fp.counter.Load(), in, rss>>20, pub.PC.ConnectionState())
		}
		cores, cpu, self := u.end()
		wall := time.Since(t0).Seconds()
		m1, merr2 := scrape(ctx, metrics)
		rss, rssOK := procRSS(pid)
		c1 := fp.counter.Load() - 1
		time.Sleep(700 * time.Millisecond) // in-flight frames land
		var delays []float64
		lost, expected, gaps, failed := 0, 0, 0, 0
		for i, s := range subs {
			recs, g, _ := s.window(c0, c1)
			seen := map[uint64]bool{}
			for _, r := range recs {
				if !seen[r.counter] {
					seen[r.counter] = true
					delays = append(delays, float64(r.delayUs)/1000)
				}
			}
			expected += int(c1 - c0 + 1)
			lost += int(c1-c0+1) - len(seen)
			gaps += g - gaps0[i]
			if s.failed.Load() {
				failed++
			}
		}
		sd := sortedCopy(delays)
		sj := sortedCopy(joins)
		r := Row{Scenario: "fanout"}
		r.add("N", n)
		r.add("ingest", "whip")
		rate := func(name string) float64 {
			if merr != nil || merr2 != nil {
				return -1
			}
			return (m1[name] - m0[name]) / wall
		}
		r.add("in_MB_s", rate("streamd_sfu_bytes_in_total")/1e6)
		r.add("in_pkt_s", rate("streamd_sfu_packets_in_total"))
		r.add("out_MB_s", rate("streamd_sfu_bytes_out_total")/1e6)
		r.add("out_pkt_s", rate("streamd_sfu_packets_out_total"))
		// Heap allocations of the whole server per packet written to a
		// viewer (Go runtime counter from /metrics): the fan-out's own share
		// is 0; what remains is pion's SRTP/ICE path and everything else.
		allocs := -1.0
		if out := rate("streamd_sfu_packets_out_total"); out > 0 && m1["go_memstats_mallocs_total"] > 0 {
			allocs = rate("go_memstats_mallocs_total") / out
		}
		r.add("server_allocs_per_pkt_out", allocs)
		r.add("server_cores", cores)
		perSub := -1.0
		if cores >= 0 {
			perSub = float64(cpu.Milliseconds()) / (float64(n) * wall)
		}
		r.add("server_cpu_ms_per_sub_s", perSub)
		rssMB, perSubMB := -1.0, -1.0
		if rssOK {
			rssMB = float64(rss) / (1 << 20)
			perSubMB = float64(rss-rssBase) / (1 << 20) / float64(n)
		}
		r.add("server_rss_MB", rssMB)
		r.add("rss_MB_per_sub", perSubMB)
		r.add("bench_cores", self)
		r.add("delay_p50_ms", percentile(sd, 0.5))
		r.add("delay_p95_ms", percentile(sd, 0.95))
		r.add("delay_p99_ms", percentile(sd, 0.99))
		r.add("delay_max_ms", percentile(sd, 1))
		lossPct := 0.0
		if expected > 0 {
			lossPct = 100 * float64(lost) / float64(expected)
		}
		r.add("frame_loss_pct", lossPct)
		r.add("frames", expected-lost)
		r.add("pkt_gaps", gaps)
		r.add("join_p50_ms", percentile(sj, 0.5))
		r.add("join_p95_ms", percentile(sj, 0.95))
		r.add("joined", fmt.Sprintf("%d/%d", len(joins), n-first))
		r.add("plis", rate("streamd_sfu_pli_sent_total")*wall)
		r.add("nacks", rate("streamd_sfu_nack_received_total")*wall)
		r.add("retransmits", rate("streamd_sfu_nack_retransmitted_total")*wall)
		r.add("failed", failed)
		r.add("drops", rate("streamd_sfu_dropped_packets_total")*wall)
		r.add("ingest_stalled_s", stalled)
		r.add("pub_write_errs", fp.writeErrs.Swap(0))
		r.add("pub_late_frames", fp.late.Swap(0))
		r.add("pub_state", pub.PC.ConnectionState().String())
		rows = append(rows, r)
	}
	return rows, nil
}
