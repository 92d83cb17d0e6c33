package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
func runFanoutCompare(ctx context.Context, e *Env) ([]Row, error) {
	rows, err := runFanout(ctx, e)
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
		more, err = runFanout(ctx, e)
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

func runFanout(ctx context.Context, e *Env) ([]Row, error) {
	o := e.Opts
	ingest := o.Ingest
	if ingest == "" {
		ingest = "whip"
	}
	if ingest != "whip" && ingest != "rtsp" {
		return nil, fmt.Errorf("ingest %q: whip or rtsp", ingest)
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
		srv, err := e.StartServer(ctx, "fanout", extra...)
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
	api, err := rtctest.NewAPI() // publisher and (default) subscribers: pion's default interceptors
	if err != nil {
		return nil, err
	}
	subAPI := api
	if !o.SubNACK {
		// RTCP reports but no NACK generator: viewers never ask for retransmissions.
		if subAPI, err = rtctest.NewAPIOptions(false); err != nil {
			return nil, err
		}
	}
	pctx, stopPub := context.WithCancel(ctx)
	defer stopPub()
	fp := &fanoutPublisher{}
	if ingest == "rtsp" {
		e.Progress.Set("fanout: publishing over RTSP")
		pub, err := publishRTSP(ctx, rtspURL, aus[0])
		if err != nil {
			return nil, fmt.Errorf("publish (rtsp): %w", err)
		}
		defer pub.Close()
		fp.sink = pub
	} else {
		e.Progress.Set("fanout: publishing over WHIP")
		pub, err := rtctest.Publish(ctx, api, whip, token, webrtc.MimeTypeH264)
		if err != nil {
			return nil, fmt.Errorf("publish: %w", err)
		}
		defer pub.Close()
		fp.sink = whipSink{pub}
	}
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
		for time.Now().Before(deadline) && slices.ContainsFunc(subs[first:], func(s *fanoutSub) bool { return s.joinTime() == 0 }) {
			time.Sleep(100 * time.Millisecond)
		}
		var joins []float64
		for _, s := range subs[first:] {
			if j := s.joinTime(); j > 0 {
				joins = append(joins, float64(j)/1e6)
			}
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
			gaps0[i] = s.gapCount()
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
				fp.counter.Load(), in, rss>>20, fp.sink.state())
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
		r.add("server", e.serverLabel())
		r.add("ingest", ingest)
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
		r.add("pub_state", fp.sink.state())
		rows = append(rows, r)
	}
	return rows, nil
}
