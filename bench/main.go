// Command bench measures streamd through its public protocols only (WHIP,
// WHEP, the overlay WebSocket, the JSON API, /metrics): video fan-out, overlay
// fan-out, a flash-sale checkout and browser glass-to-glass latency.
//
//	go run ./bench                       # short run of every scenario
//	go run ./bench -scenario fanout -n 50,150,300 -duration 20s
//
// Results go to bench-results/<timestamp>/ (results.jsonl, results.md, *.svg).
// See docs/bench.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Options are the command's flags; tests fill them directly.
type Options struct {
	Scenarios []string
	Out       string // results dir
	Cache     string // encoded clip cache
	Streamd   string // prebuilt streamd binary; empty: go build ./cmd/streamd
	// Compare: more streamd binaries measured by fanout in the same run,
	// each after this tree's, as "label=path" (rows carry the label in
	// their server column; this tree's is "streamd").
	Compare []string
	PProf   bool // start the server with --pprof

	ProgressOut io.Writer // the progress line (nil: stderr)

	// An external server (side-by-side runs). Empty WHIP (RTSP with
	// -ingest rtsp): start streamd.
	WHIP, WHEP, Token, Metrics string
	RTSP                       string // RTSP publish URL (-ingest rtsp)
	PID                        int
	Base, Staff                string // API base URL and staff token of an external streamd (overlay, checkout)

	// fanout
	Subscribers []int
	Duration    time.Duration
	Width       int
	Height      int
	Bitrate     string
	Ingest      string
	SubNACK     bool // subscribers send NACKs (pion's default interceptors)

	// overlay
	Viewers         []int
	OverlayDuration time.Duration
	CardInterval    time.Duration

	// chat
	ChatViewers  int
	Chatters     int
	ReactRate    int
	ChatDuration time.Duration

	// checkout
	Stock  int
	Buyers int
	Conns  int
	Redis  string // "" skips the Redis run

	// glass
	Codecs        []string
	GlassDuration time.Duration
	HLS           bool // glass: play over LL-HLS instead of WebRTC
	Cards         int
	Chromium      string
}

func defaultOptions() Options {
	return Options{
		Scenarios:   []string{"fanout", "overlay", "checkout", "glass"},
		Subscribers: []int{50, 150, 300}, Duration: 10 * time.Second,
		Width: 1280, Height: 720, SubNACK: true, Bitrate: "2500k", Ingest: "whip",
		Viewers: []int{1000, 10000}, OverlayDuration: 30 * time.Second, CardInterval: time.Second,
		ChatViewers: 5000, Chatters: 50, ReactRate: 200, ChatDuration: 20 * time.Second,
		Stock: 100, Buyers: 5000, Conns: 256, Redis: "redis://127.0.0.1:6379/12",
		Codecs: []string{"vp8", "h264"}, GlassDuration: 6 * time.Second, Cards: 5,
	}
}

func main() {
	o := defaultOptions()
	var scen, subs, viewers, codecs string
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	fs.StringVar(&scen, "scenario", strings.Join(o.Scenarios, ","), "scenarios to run: fanout,overlay,checkout,glass,chat,fanout-simulcast")
	fs.StringVar(&o.Out, "out", "", "results folder (default bench-results/<timestamp>)")
	fs.StringVar(&o.Cache, "cache", "bench-results/cache", "cache folder for the encoded clip")
	fs.StringVar(&o.Streamd, "streamd", "", "streamd binary to start (default: go build ./cmd/streamd)")
	compare := fs.String("compare", "", "fanout: also measure these streamd binaries in the same run, label=path[,label=path]")
	fs.BoolVar(&o.PProf, "pprof", false, "start streamd with --pprof (/debug/pprof on its HTTP port)")
	fs.StringVar(&o.WHIP, "whip", "", "fanout against another server: its WHIP endpoint URL")
	fs.StringVar(&o.WHEP, "whep", "", "fanout against another server: its WHEP endpoint URL")
	fs.StringVar(&o.Token, "token", "", "publish token (Bearer) for -whip; RTSP password for a -rtsp URL without one")
	fs.StringVar(&o.Metrics, "metrics", "", "Prometheus /metrics URL of the server (default: <whip host>/metrics, <whep host> with -ingest rtsp)")
	fs.IntVar(&o.PID, "pid", 0, "server process id for CPU/RSS (same machine)")
	fs.StringVar(&o.Base, "base", "", "overlay/checkout against a running streamd: its base URL (needs -staff-token)")
	fs.StringVar(&o.Staff, "staff-token", "", "staff token of the -base server")
	fs.StringVar(&subs, "n", joinInts(o.Subscribers), "fanout: WHEP subscriber counts, ramped")
	fs.DurationVar(&o.Duration, "duration", o.Duration, "fanout: measuring window per step")
	fs.IntVar(&o.Width, "width", o.Width, "fanout: video width")
	fs.IntVar(&o.Height, "height", o.Height, "fanout: video height")
	fs.StringVar(&o.Bitrate, "bitrate", o.Bitrate, "fanout: video bitrate (ffmpeg -b:v)")
	fs.StringVar(&o.Ingest, "ingest", o.Ingest, "fanout: ingest protocol: whip, or rtsp (ANNOUNCE/RECORD over TCP)")
	fs.StringVar(&o.RTSP, "rtsp", "", "fanout -ingest rtsp against another server: its RTSP publish URL (rtsp://user:key@host:port/stream)")
	simulcast := fs.Bool("simulcast", false, "fanout: the publisher sends three simulcast layers (320x180, 640x360, 1280x720) and viewer i joins with ?layer= low, medium, high by i%3 (scenario fanout-simulcast)")
	fs.BoolVar(&o.SubNACK, "sub-nack", o.SubNACK, "fanout: subscribers ask for retransmissions (false: no NACK generator)")
	fs.StringVar(&viewers, "m", joinInts(o.Viewers), "overlay: WebSocket viewer counts, ramped")
	fs.DurationVar(&o.OverlayDuration, "overlay-duration", o.OverlayDuration, "overlay: card pushes per step last this long")
	fs.DurationVar(&o.CardInterval, "card-interval", o.CardInterval, "overlay: time between card pushes")
	fs.IntVar(&o.ChatViewers, "chat-viewers", o.ChatViewers, "chat: overlay viewers reading the chat")
	fs.IntVar(&o.Chatters, "chatters", o.Chatters, "chat: chatters, each sending 1 message/s (through two viewer identities in turn)")
	fs.IntVar(&o.ReactRate, "reactions", o.ReactRate, "chat: reactions per second (one socket each, 1/s)")
	fs.DurationVar(&o.ChatDuration, "chat-duration", o.ChatDuration, "chat: how long the chatters talk")
	fs.IntVar(&o.Stock, "stock", o.Stock, "checkout: units on sale")
	fs.IntVar(&o.Buyers, "buyers", o.Buyers, "checkout: concurrent buyers")
	fs.IntVar(&o.Conns, "conns", o.Conns, "checkout: max HTTP connections")
	fs.StringVar(&o.Redis, "redis", o.Redis, "checkout: Redis URL for the Redis run (its DB is flushed; empty skips)")
	fs.StringVar(&codecs, "codecs", strings.Join(o.Codecs, ","), "glass: codecs")
	fs.DurationVar(&o.GlassDuration, "glass-duration", o.GlassDuration, "glass: sampling time per codec")
	fs.IntVar(&o.Cards, "cards", o.Cards, "glass: cards pushed per codec for the sync error")
	fs.BoolVar(&o.HLS, "hls", false, "glass: the player plays LL-HLS (/watch/{stream}?hls=1) instead of WebRTC (H.264 only: use -codecs h264)")
	fs.StringVar(&o.Chromium, "chromium", "", "glass: Chromium binary (default $STREAMD_CHROMIUM or /usr/bin/chromium)")
	report := fs.String("report", "", "only re-render results.md and the charts of this results folder from its results.jsonl")
	_ = fs.Parse(os.Args[1:])
	if *report != "" {
		rows, err := rerender(*report)
		if err != nil {
			fatal("%v", err)
		}
		fmt.Println(Markdown(rows))
		return
	}
	o.Scenarios = splitList(scen)
	if *simulcast {
		for i, sc := range o.Scenarios {
			if sc == "fanout" {
				o.Scenarios[i] = "fanout-simulcast"
			}
		}
	}
	o.Compare = splitList(*compare)
	o.Codecs = splitList(codecs)
	var err error
	if o.Subscribers, err = parseInts(subs); err != nil {
		fatal("-n: %v", err)
	}
	if o.Viewers, err = parseInts(viewers); err != nil {
		fatal("-m: %v", err)
	}
	if o.Out == "" {
		o.Out = filepath.Join("bench-results", time.Now().UTC().Format("20060102-150405"))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rows, err := Run(ctx, o)
	if len(rows) > 0 {
		fmt.Println(Markdown(rows))
		fmt.Fprintf(os.Stderr, "results in %s\n", o.Out)
	}
	if err != nil {
		fatal("%v", err)
	}
}

// Run runs the chosen scenarios and writes the results folder.
func Run(ctx context.Context, o Options) ([]Row, error) {
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	raiseFileLimit()
	e := newEnv(o)
	defer e.Close()
	var all []Row
	var firstErr error
	for _, s := range o.Scenarios {
		var rows []Row
		var err error
		start := time.Now()
		e.Progress.Set("%s: starting", s)
		switch s {
		case "fanout":
			rows, err = runFanoutCompare(ctx, e, false)
		case "fanout-simulcast":
			rows, err = runFanoutCompare(ctx, e, true)
		case "overlay":
			rows, err = runOverlay(ctx, e)
		case "checkout":
			rows, err = runCheckout(ctx, e)
		case "chat":
			rows, err = runChat(ctx, e)
		case "glass":
			rows, err = runGlass(ctx, e)
		default:
			err = fmt.Errorf("unknown scenario %q", s)
		}
		e.Progress.Done()
		all = append(all, rows...)
		if werr := writeResults(o.Out, all); werr != nil && err == nil {
			err = werr
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", s, err)
			if firstErr == nil {
				firstErr = fmt.Errorf("%s: %w", s, err)
			}
		} else {
			fmt.Fprintf(os.Stderr, "%s: done in %s\n", s, time.Since(start).Round(time.Second))
		}
		if ctx.Err() != nil {
			break
		}
	}
	return all, firstErr
}

func fatal(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+f+"\n", a...)
	os.Exit(1)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, p := range splitList(s) {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad count %q", p)
		}
		out = append(out, n)
	}
	return out, nil
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}
