package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/streamd/streamd/internal/rtctest"
)

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

// runFanoutCompare runs fanout against this tree's streamd (or the external
// server) and then against each -compare binary, one after the other in
// the same run, so their rows are measured under the same conditions.
func runFanoutCompare(ctx context.Context, e *Env, simulcast bool) ([]Row, error) {
	rows, err := runFanout(ctx, e, simulcast)
	for _, c := range e.Opts.Compare {
		if err != nil || ctx.Err() != nil {
			break
		}
		label, bin, ok := strings.Cut(c, "=")
		if !ok {
			return rows, fmt.Errorf("-compare %q: want label=path", c)
		}
		e.label, e.binOver = label, bin
		var more []Row
		more, err = runFanout(ctx, e, simulcast)
		rows = append(rows, more...)
	}
	e.label, e.binOver = "", ""
	return rows, err
}

// serverLabel names the server measured now.
func (e *Env) serverLabel() string {
	switch {
	case e.label != "":
		return e.label
	case e.Opts.WHIP != "" || e.Opts.RTSP != "":
		return "external"
	}
	return "streamd"
}

// startFanoutSource connects the publisher: the single-layer clip over WHIP
// or RTSP, or (simulcast) three layers over WHIP.
func startFanoutSource(ctx context.Context, e *Env, ffmpeg, ingest, whip, rtspURL, token string, simulcast bool) (fanoutSource, error) {
	o := e.Opts
	if simulcast {
		layers, err := simulcastLayers(o.Width, o.Height, o.Bitrate)
		if err != nil {
			return nil, err
		}
		e.Progress.Set("fanout: encoding the simulcast layers with ffmpeg (cached in %s), publishing over WHIP", o.Cache)
		p, err := publishSimulcast(ctx, ffmpeg, o.Cache, whip, token, layers)
		if err != nil {
			return nil, fmt.Errorf("publish (simulcast): %w", err)
		}
		return p, nil
	}
	e.Progress.Set("fanout: encoding %dx%d clip with ffmpeg (cached in %s)", o.Width, o.Height, o.Cache)
	aus, err := rtctest.EncodeH264(ffmpeg, o.Cache, o.Width, o.Height, 30, 10, 30, o.Bitrate)
	if err != nil {
		return nil, err
	}
	if len(aus) == 0 || !rtctest.IsIDR(aus[0]) {
		return nil, errors.New("encoded clip does not start with an IDR")
	}
	if ingest == "rtsp" {
		e.Progress.Set("fanout: publishing over RTSP")
		pub, err := publishRTSP(ctx, rtspURL, aus[0])
		if err != nil {
			return nil, fmt.Errorf("publish (rtsp): %w", err)
		}
		return startFanoutPublisher(ctx, pub, pub.Close, aus), nil
	}
	e.Progress.Set("fanout: publishing over WHIP")
	api, err := rtctest.NewAPI() // pion's default interceptors
	if err != nil {
		return nil, err
	}
	pub, err := rtctest.Publish(ctx, api, whip, token, webrtc.MimeTypeH264)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	return startFanoutPublisher(ctx, whipSink{pub}, pub.Close, aus), nil
}

func runFanout(ctx context.Context, e *Env, simulcast bool) ([]Row, error) {
	o := e.Opts
	scenario := "fanout"
	if simulcast {
		scenario = "fanout-simulcast"
	}
	ingest := o.Ingest
	if ingest == "" {
		ingest = "whip"
	}
	if ingest != "whip" && ingest != "rtsp" {
		return nil, fmt.Errorf("ingest %q: whip or rtsp", ingest)
	}
	if simulcast && ingest != "whip" {
		return nil, errors.New("-simulcast publishes over WHIP (-ingest whip)")
	}
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		return nil, errors.New("ffmpeg not found (apt-get install -y ffmpeg)")
	}
	if err := os.MkdirAll(o.Cache, 0o755); err != nil {
		return nil, err
	}

	whip, rtspURL, whep, token, metrics, pid := o.WHIP, o.RTSP, o.WHEP, o.Token, o.Metrics, o.PID
	if external := (ingest == "whip" && whip != "") || (ingest == "rtsp" && rtspURL != ""); !external {
		var extra []string
		rtspPort := 0
		if ingest == "rtsp" {
			if rtspPort, err = freeRTSPPort(); err != nil {
				return nil, err
			}
			extra = []string{"--rtsp", fmt.Sprintf("127.0.0.1:%d", rtspPort)}
		}
		srv, err := e.StartServer(ctx, scenario, extra...)
		if err != nil {
			return nil, err
		}
		defer srv.Stop()
		if token, err = srv.CreateStream(ctx, "bench-fanout"); err != nil {
			return nil, err
		}
		whip, whep, pid = srv.Base+"/whip/bench-fanout", srv.Base+"/whep/bench-fanout", srv.PID
		if ingest == "rtsp" {
			rtspURL = rtspPublishURL(fmt.Sprintf("127.0.0.1:%d", rtspPort), "bench-fanout", token)
		}
	} else if ingest == "rtsp" && token != "" {
		if u, err := url.Parse(rtspURL); err == nil && u.User == nil {
			u.User = url.UserPassword("pub", token)
			rtspURL = u.String()
		}
	}
	if ingest == "rtsp" && whep == "" {
		return nil, errors.New("-rtsp needs -whep (subscribers are WHEP)")
	}
	if metrics == "" {
		src := whip
		if ingest == "rtsp" {
			src = whep
		}
		if u, err := url.Parse(src); err == nil && u.Host != "" {
			metrics = u.Scheme + "://" + u.Host + "/metrics"
		}
	}
	// Subscribers: pion's default interceptors, or (-sub-nack=false) RTCP
	// reports but no NACK generator: viewers never ask for retransmissions.
	subAPI, err := rtctest.NewAPIOptions(o.SubNACK)
	if err != nil {
		return nil, err
	}
	pub, err := startFanoutSource(ctx, e, ffmpeg, ingest, whip, rtspURL, token, simulcast)
	if err != nil {
		return nil, err
	}
	defer pub.close()

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
		// Join the new subscribers, a few at a time. With simulcast,
		// viewer i asks for layer i%3 at join.
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
				endpoint, want := whep, 0
				if simulcast {
					want = i % len(layerNames())
					endpoint = layerURL(whep, layerNames()[want])
				}
				s, err := newFanoutSub(jctx, subAPI, endpoint, want)
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
		for time.Now().Before(deadline) && slices.ContainsFunc(subs[first:], func(s *fanoutSub) bool { return s.joinTime() == 0 }) {
			time.Sleep(100 * time.Millisecond)
		}
		joinNs := make([]int64, len(subs))
		for i, s := range subs {
			joinNs[i] = s.joinTime()
		}
		time.Sleep(time.Second) // settle

		// Measure a window: per publisher layer, the frames from two
		// after now to the last one sent at its end.
		var ws []span
		for _, c := range pub.next() {
			ws = append(ws, span{from: c + 2})
		}
		for _, s := range subs {
			s.mark(ws)
		}
		plis0 := layerPLIs(pub)
		m0, merr := scrape(ctx, metrics)
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
				pub.next()[0], in, rss>>20, pub.state())
		}
		cores, cpu, self := u.end()
		wall := time.Since(t0).Seconds()
		m1, merr2 := scrape(ctx, metrics)
		rss, rssOK := procRSS(pid)
		for i, c := range pub.next() {
			ws[i].to = c - 1
		}
		plis1 := layerPLIs(pub)
		time.Sleep(700 * time.Millisecond) // in-flight frames land
		wins := make([]subWindow, len(subs))
		for i, s := range subs {
			wins[i] = s.window(ws)
			wins[i].joinNs = joinNs[i]
		}

		rate := func(name string) float64 {
			if merr != nil || merr2 != nil {
				return -1
			}
			return (m1[name] - m0[name]) / wall
		}
		srv := stepServer{
			inMB: rate("streamd_sfu_bytes_in_total") / 1e6, inPkt: rate("streamd_sfu_packets_in_total"),
			outMB: rate("streamd_sfu_bytes_out_total") / 1e6, outPkt: rate("streamd_sfu_packets_out_total"),
			allocs: -1, cores: cores, cpuPerSub: -1, rssMB: -1, rssPerSub: -1, bench: self,
			plis: rate("streamd_sfu_pli_sent_total") * wall, nacks: rate("streamd_sfu_nack_received_total") * wall,
			retx: rate("streamd_sfu_nack_retransmitted_total") * wall, drops: rate("streamd_sfu_dropped_packets_total") * wall,
			stalled: float64(stalled), writeErrs: float64(pub.writeErrs()), late: float64(pub.lateFrames()), state: pub.state(),
		}
		// Heap allocations of the whole server per packet written to a
		// viewer (Go runtime counter from /metrics): the fan-out's own share
		// is 0; what remains is pion's SRTP/ICE path and everything else.
		if out := rate("streamd_sfu_packets_out_total"); out > 0 && m1["go_memstats_mallocs_total"] > 0 {
			srv.allocs = rate("go_memstats_mallocs_total") / out
		}
		if cores >= 0 {
			srv.cpuPerSub = float64(cpu.Milliseconds()) / (float64(n) * wall)
		}
		if rssOK {
			srv.rssMB = float64(rss) / (1 << 20)
			srv.rssPerSub = float64(rss-rssBase) / (1 << 20) / float64(n)
		}
		head := []Col{{"N", n}, {"server", e.serverLabel()}, {"ingest", ingest}}
		all := viewersOf(subs, wins, first, func(*fanoutSub) bool { return true })
		if !simulcast {
			rows = append(rows, fanoutRow(scenario, head, all, srv))
			continue
		}
		// Simulcast: a row for all viewers (the server's figures), then
		// one per layer asked for (what its viewers got).
		layerViewers := func(name string) float64 {
			v, ok := m1[`streamd_sfu_layer_viewers{layer="`+name+`"}`]
			if merr2 != nil || !ok {
				return -1
			}
			return v
		}
		layers, _ := simulcastLayers(o.Width, o.Height, o.Bitrate) // checked when the publisher started
		var px []string
		srvAll := 0.0
		for i, name := range layerNames() {
			px = append(px, strconv.Itoa(layers[i].Width))
			if v := layerViewers(name); v >= 0 && srvAll >= 0 {
				srvAll += v
			} else {
				srvAll = -1
			}
		}
		switches := -1.0
		if _, ok := m1["streamd_sfu_layer_switches_total"]; ok {
			switches = rate("streamd_sfu_layer_switches_total") * wall
		}
		r := fanoutRow(scenario, append(head, simulcastCols("all", all, strings.Join(px, "/"), srvAll, switches)...), all, srv)
		rows = append(rows, r)
		for i, name := range layerNames() {
			v := viewersOf(subs, wins, first, func(s *fanoutSub) bool { return s.want == i })
			ls := naServer()
			if plis0[i] >= 0 {
				ls.plis = float64(plis1[i] - plis0[i])
			}
			rows = append(rows, fanoutRow(scenario, append(slices.Clone(head), simulcastCols(name, v, px[i], layerViewers(name), math.NaN())...), v, ls))
		}
	}
	return rows, nil
}

// layerPLIs is the publisher's count of keyframe requests per layer.
func layerPLIs(pub fanoutSource) []int {
	out := make([]int, len(pub.next()))
	for i := range out {
		out[i] = pub.plis(i)
	}
	return out
}

// stepServer is a step's server-wide figures (-1 or NaN: n/a).
type stepServer struct {
	inMB, inPkt, outMB, outPkt, allocs, cores, cpuPerSub, rssMB, rssPerSub, bench float64
	plis, nacks, retx, drops, stalled, writeErrs, late                            float64
	state                                                                         string
}

// naServer is a row's server-wide figures where they do not apply (a
// simulcast layer's row).
func naServer() stepServer {
	na := math.NaN()
	return stepServer{na, na, na, na, na, na, na, na, na, na, na, na, na, na, na, na, na, "n/a"}
}

// viewerStats is what a set of viewers got of a window.
type viewerStats struct {
	subs, onLayer               int
	delays, joins               []float64 // sorted
	got, expected, gaps, failed int
	joined, added               int
	widths                      map[string]int // viewers per picture widths seen ("320", "320/1280", "none")
}

// viewersOf sums the windows of the viewers keep selects; joins are of
// those added in this step (subs[first:]).
func viewersOf(subs []*fanoutSub, wins []subWindow, first int, keep func(*fanoutSub) bool) viewerStats {
	v := viewerStats{widths: map[string]int{}}
	for i, s := range subs {
		if !keep(s) {
			continue
		}
		w := wins[i]
		v.subs++
		v.delays = append(v.delays, w.delays...)
		v.got += w.got
		v.expected += w.expected
		v.gaps += w.gaps
		v.widths[w.widthsText()]++
		if w.onLayer(s.want) {
			v.onLayer++
		}
		if s.failed.Load() {
			v.failed++
		}
		if i >= first {
			v.added++
			if j := w.joinNs; j > 0 {
				v.joined++
				v.joins = append(v.joins, float64(j)/1e6)
			}
		}
	}
	v.delays, v.joins = sortedCopy(v.delays), sortedCopy(v.joins)
	return v
}

// simulcastCols are the columns a simulcast row adds after ingest.
func simulcastCols(layer string, v viewerStats, px string, srvViewers, switches float64) []Col {
	var got []string
	for w, k := range v.widths {
		got = append(got, fmt.Sprintf("%s (%d)", w, k))
	}
	slices.Sort(got)
	return []Col{{"layer", layer}, {"viewers", v.subs}, {"layer_px", px}, {"got_px", strings.Join(got, ", ")},
		{"on_layer", fmt.Sprintf("%d/%d", v.onLayer, v.subs)}, {"srv_layer_viewers", srvViewers}, {"layer_switches", switches}}
}

// fanoutRow is one fanout row: head, then the server's and the viewers'
// figures in the table's column order.
func fanoutRow(scenario string, head []Col, v viewerStats, s stepServer) Row {
	r := Row{Scenario: scenario, Cols: head}
	r.add("in_MB_s", s.inMB)
	r.add("in_pkt_s", s.inPkt)
	r.add("out_MB_s", s.outMB)
	r.add("out_pkt_s", s.outPkt)
	r.add("server_allocs_per_pkt_out", s.allocs)
	r.add("server_cores", s.cores)
	r.add("server_cpu_ms_per_sub_s", s.cpuPerSub)
	r.add("server_rss_MB", s.rssMB)
	r.add("rss_MB_per_sub", s.rssPerSub)
	r.add("bench_cores", s.bench)
	r.add("delay_p50_ms", percentile(v.delays, 0.5))
	r.add("delay_p95_ms", percentile(v.delays, 0.95))
	r.add("delay_p99_ms", percentile(v.delays, 0.99))
	r.add("delay_max_ms", percentile(v.delays, 1))
	lossPct := 0.0
	if v.expected > 0 {
		lossPct = 100 * float64(v.expected-v.got) / float64(v.expected)
	}
	r.add("frame_loss_pct", lossPct)
	r.add("frames", v.got)
	r.add("pkt_gaps", v.gaps)
	r.add("join_p50_ms", percentile(v.joins, 0.5))
	r.add("join_p95_ms", percentile(v.joins, 0.95))
	r.add("joined", fmt.Sprintf("%d/%d", v.joined, v.added))
	r.add("plis", s.plis)
	r.add("nacks", s.nacks)
	r.add("retransmits", s.retx)
	r.add("failed", v.failed)
	r.add("drops", s.drops)
	r.add("ingest_stalled_s", s.stalled)
	r.add("pub_write_errs", s.writeErrs)
	r.add("pub_late_frames", s.late)
	r.add("pub_state", s.state)
	return r
}
