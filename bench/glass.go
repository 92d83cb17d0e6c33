package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/streamd/streamd/internal/browsertest"
	"github.com/streamd/streamd/internal/testenv"
)

type glassSample struct {
	Frame     int64  `json:"frame"`
	LatencyMS int    `json:"latency_ms"`
	RTP       *int64 `json:"rtp"`
}

type glassReveal struct {
	Seq      uint64 `json:"seq"`
	FrameRTP *int64 `json:"frame_rtp"`
}

type glassPush struct {
	Frame  int64  `json:"frame"`
	Seq    uint64 `json:"seq"`
	Status int    `json:"status"`
}

func runGlass(ctx context.Context, e *Env) ([]Row, error) {
	o := e.Opts
	exe := testenv.FindChromium(o.Chromium)
	if exe == "" {
		return nil, errors.New("chromium not found (apt-get install -y chromium, or -chromium PATH)")
	}
	srv, err := e.target(ctx, "glass")
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	const product = "bench-glass-card"
	if err := srv.EnsureProduct(ctx, product, 10); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "streamd-bench-chromium-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	e.Progress.Set("glass: starting chromium")
	b, err := browsertest.Start(exe, dir)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	var rows []Row
	for _, codec := range o.Codecs {
		if ctx.Err() != nil {
			break
		}
		r, err := glassOne(ctx, e, b, srv, codec, product)
		if err != nil {
			return rows, fmt.Errorf("%s: %w", codec, err)
		}
		rows = append(rows, r)
	}
	return rows, nil
}

func glassOne(ctx context.Context, e *Env, b *browsertest.Browser, srv *Server, codec, product string) (Row, error) {
	o := e.Opts
	stream := fmt.Sprintf("bench-glass-%s-%d", codec, time.Now().Unix())
	key, err := srv.CreateStream(ctx, stream)
	if err != nil {
		return Row{}, err
	}
	e.Progress.Set("glass %s: opening player and publisher", codec)
	player, closePlayer := b.NewTab()
	defer closePlayer()
	// Over LL-HLS the first frame and each reveal come seconds later.
	watch, firstFrame, lastReveal, transport := "/watch/"+stream, 15*time.Second, time.Second, "webrtc"
	if o.HLS {
		watch, firstFrame, lastReveal, transport = watch+"?hls=1", 45*time.Second, 5*time.Second, "llhls"
	}
	if err := browsertest.Open(player, srv.Base+watch, "#video"); err != nil {
		return Row{}, fmt.Errorf("open player: %w", err)
	}
	if err := browsertest.WaitFor(player, 10*time.Second, `!!window.streamdPlayer`); err != nil {
		return Row{}, err
	}
	if _, err := browsertest.Eval[bool](player, 10*time.Second, browsertest.GlassProbeJS); err != nil {
		return Row{}, fmt.Errorf("install probe: %w", err)
	}
	pub, closePub := b.NewTab()
	defer closePub()
	if err := browsertest.Open(pub, srv.Base+"/publish/"+stream, "#form"); err != nil {
		return Row{}, fmt.Errorf("open publisher: %w", err)
	}
	if _, err := browsertest.Eval[string](pub, 20*time.Second, fmt.Sprintf(`streamdPublish({key: %q, source: 'canvas', codec: %q})`, key, codec)); err != nil {
		return Row{}, fmt.Errorf("publish: %w", err)
	}
	if err := browsertest.WaitFor(player, firstFrame, `window.__glass.length > 0 && window.streamdPlayer.state === 'live'`); err != nil {
		return Row{}, fmt.Errorf("no decodable frame reached the player: %w", err)
	}
	time.Sleep(time.Second) // past the start-up frames
	from, err := browsertest.Eval[int](player, 5*time.Second, `window.__glass.length`)
	if err != nil {
		return Row{}, err
	}
	tFrom := time.Now()
	revFrom, err := browsertest.Eval[int](player, 5*time.Second, `window.streamdPlayer.reveals.length`)
	if err != nil {
		return Row{}, err
	}
	// Push cards spread over the window, reading the publisher's frame
	// number in the same task that sends the push.
	pushJS := fmt.Sprintf(`(async () => { const f = window.streamdPattern.frame;
  const r = await fetch('/api/streams/%s/cards', {method: 'POST', headers: {'Authorization': 'Bearer %s', 'Content-Type': 'application/json'}, body: JSON.stringify({action: 'show', product_id: %q})});
  const j = await r.json(); return {frame: f, seq: j.seq || 0, status: r.status}; })()`, stream, srv.Staff, product)
	var pushes []glassPush
	t0 := time.Now()
	interval := o.GlassDuration / time.Duration(o.Cards+1)
	for i := 0; i < o.Cards && ctx.Err() == nil; i++ {
		time.Sleep(time.Until(t0.Add(time.Duration(i+1) * interval)))
		p, err := browsertest.Eval[glassPush](pub, 5*time.Second, pushJS)
		if err != nil || p.Status != 201 {
			return Row{}, fmt.Errorf("push card from the publisher tab: %v (status %d)", err, p.Status)
		}
		pushes = append(pushes, p)
		e.Progress.Set("glass %s: card %d/%d pushed at frame %d", codec, i+1, o.Cards, p.Frame)
	}
	time.Sleep(time.Until(t0.Add(o.GlassDuration)))
	time.Sleep(lastReveal) // the last reveal
	elapsed := time.Since(tFrom).Seconds()
	samples, err := browsertest.Eval[[]glassSample](player, 10*time.Second, fmt.Sprintf(`window.__glass.slice(%d)`, from))
	if err != nil {
		return Row{}, err
	}
	reveals, err := browsertest.Eval[[]glassReveal](player, 5*time.Second, fmt.Sprintf(`window.streamdPlayer.reveals.slice(%d)`, revFrom))
	if err != nil {
		return Row{}, err
	}
	bad, _ := browsertest.Eval[int](player, 5*time.Second, `window.__glassBad`)
	_, _ = browsertest.Eval[bool](pub, 5*time.Second, `(window.streamdPublisher && window.streamdPublisher.close(), true)`)

	var lat []float64
	byRTP := map[int64]int64{}
	back := 0
	for i, s := range samples {
		lat = append(lat, float64(s.LatencyMS))
		if s.RTP != nil {
			if _, ok := byRTP[*s.RTP]; !ok {
				byRTP[*s.RTP] = s.Frame
			}
		}
		if i > 0 && s.Frame < samples[i-1].Frame {
			back++
		}
	}
	var syncErr []float64
	unmatched := 0
	for _, p := range pushes {
		found := false
		for _, rv := range reveals {
			if rv.Seq != p.Seq || rv.FrameRTP == nil {
				continue
			}
			if f, ok := byRTP[*rv.FrameRTP]; ok {
				syncErr = append(syncErr, math.Abs(float64(f-p.Frame)))
				found = true
			}
			break
		}
		if !found {
			unmatched++
		}
	}
	fps := float64(len(samples)) / elapsed
	sl, se := sortedCopy(lat), sortedCopy(syncErr)
	r := Row{Scenario: "glass"}
	r.add("codec", codec)
	r.add("transport", transport)
	r.add("frames", len(samples))
	r.add("fps", fps)
	r.add("glass_p50_ms", percentile(sl, 0.5))
	r.add("glass_p95_ms", percentile(sl, 0.95))
	r.add("glass_max_ms", percentile(sl, 1))
	r.add("undecodable", bad)
	r.add("frames_backwards", back)
	r.add("cards", len(pushes))
	r.add("sync_err_p50_frames", percentile(se, 0.5))
	r.add("sync_err_max_frames", percentile(se, 1))
	r.add("cards_unmatched", unmatched)
	return r, nil
}
