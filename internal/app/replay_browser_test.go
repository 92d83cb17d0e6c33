package app

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/streamd/streamd/internal/browsertest"
)

// replayProbeJS records, for every frame the replay page displays, the
// pattern frame number decoded from its pixels and its media time.
const replayProbeJS = `(async () => {
  const { decodeFrame } = await import('/static/testpattern.js');
  const video = window.streamdPlayer.video;
  const canvas = document.createElement('canvas');
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  window.__frames = [];
  const onFrame = (now, md) => {
    const w = video.videoWidth, h = video.videoHeight;
    if (w && h) {
      if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
      ctx.drawImage(video, 0, 0, w, h);
      const d = decodeFrame(ctx, w / 640, h / 360);
      if (d) window.__frames.push({ frame: d.frame, media: md.mediaTime + window.streamdPlayer.offset });
    }
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
  return true;
})()`

type replayFrame struct {
	Frame uint32  `json:"frame"`
	Media float64 `json:"media"`
}

type replayReveal struct {
	ID         *string  `json:"id"`
	T          *float64 `json:"t"`
	FrameMedia float64  `json:"frame_media"`
}

// TestBrowserReplay: Chromium publishes a 20 s canvas-coded H.264 show with
// three card pushes; the replay page reveals each card on the frame it was
// pushed on (±1 displayed frame), a chapter jumps to its card, and Buy on the
// replay makes an order attributed to source "replay" and the card moment.
func TestBrowserReplay(t *testing.T) {
	b := browsertest.Launch(t)
	a := startApp(t, func(c *Config) { c.Record = true; c.RecordShowGap = time.Second })
	key := createStream(t, a, "rp")
	for _, p := range []struct{ id, title string }{{"bag", "Leather bag"}, {"mug", "Stone mug"}} {
		if code := api(t, "POST", a.BaseURL()+"/api/products", testStaff, map[string]any{"id": p.id, "title": p.title, "price": map[string]any{"amount": 4900, "currency": "eur"}, "stock": 10}, nil); code != 201 {
			t.Fatalf("create product: %d", code)
		}
	}
	pub := publishCanvas(t, b, a.BaseURL(), "rp", key, "h264")
	deadline := time.Now().Add(15 * time.Second)
	for !a.SFU.Live("rp") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	start := time.Now()
	type push struct {
		id, product  string
		fpub, fafter int
	}
	var pushes []push
	for i, c := range []struct {
		at              time.Duration
		action, product string
	}{
		{4 * time.Second, "show", "bag"}, {9 * time.Second, "show", "mug"}, {14 * time.Second, "hide", "mug"},
	} {
		time.Sleep(time.Until(start.Add(c.at)))
		fpub, err := browsertest.Eval[int](pub, 5*time.Second, `window.streamdPattern.frame`)
		if err != nil {
			t.Fatal(err)
		}
		var ev struct {
			ID string `json:"event_id"`
		}
		if code := api(t, "POST", a.BaseURL()+"/api/streams/rp/cards", testStaff, map[string]any{"action": c.action, "product_id": c.product}, &ev); code != 201 {
			t.Fatalf("push %d: %d", i, code)
		}
		fafter, _ := browsertest.Eval[int](pub, 5*time.Second, `window.streamdPattern.frame`)
		pushes = append(pushes, push{ev.ID, c.product, fpub, fafter})
	}
	time.Sleep(time.Until(start.Add(20 * time.Second)))
	if _, err := browsertest.Eval[bool](pub, 5*time.Second, `(() => { document.getElementById('stop').click(); return true })()`); err != nil {
		t.Fatal(err)
	}
	var shows []showView
	deadline = time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if shows = listShows(t, a.BaseURL(), "rp"); len(shows) == 1 && shows[0].EndedAt != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(shows) != 1 || shows[0].EndedAt == nil || shows[0].Cards != 2 {
		t.Fatalf("shows %+v", shows)
	}
	s := shows[0]
	t.Logf("show %s: %.2f s, %d bytes", s.ID, s.Duration, s.Bytes)

	// The console lists the show with its replay link.
	console := b.Tab(t)
	if err := browsertest.Open(console, a.BaseURL()+"/console/rp", "#signin-form"); err != nil {
		t.Fatal(err)
	}
	if _, err := browsertest.Eval[bool](console, 5*time.Second, fmt.Sprintf(`(() => { document.getElementById('token').value = %q; document.getElementById('signin-form').requestSubmit(); return true })()`, testStaff)); err != nil {
		t.Fatal(err)
	}
	link := fmt.Sprintf(`(() => { const a = document.querySelector('#shows .show-row[data-show=%q] a'); return !document.getElementById('shows-wrap').hidden && !!a && a.getAttribute('href') === %q })()`, s.ID, s.ReplayURL)
	if err := browsertest.WaitFor(console, 10*time.Second, link); err != nil {
		t.Fatalf("console does not list the show with its replay link: %v", err)
	}

	tab := b.Tab(t)
	if err := browsertest.Open(tab, a.BaseURL()+s.ReplayURL, "#video"); err != nil {
		t.Fatal(err)
	}
	if err := browsertest.WaitFor(tab, 10*time.Second, `!!window.streamdPlayer && window.streamdPlayer.ready`); err != nil {
		t.Fatal(err)
	}
	if _, err := browsertest.Eval[bool](tab, 5*time.Second, replayProbeJS); err != nil {
		t.Fatal(err)
	}
	// Play through the last push.
	last := fmt.Sprintf(`window.streamdPlayer.reveals.some(r => r.id === %q)`, pushes[2].id)
	if err := browsertest.WaitFor(tab, 40*time.Second, last); err != nil {
		n, _ := browsertest.Eval[int](tab, time.Second, `window.__frames.length`)
		t.Fatalf("replay did not reach the last card (%d frames decoded): %v", n, err)
	}
	time.Sleep(300 * time.Millisecond)
	frames, err := browsertest.Eval[[]replayFrame](tab, 5*time.Second, `window.__frames`)
	if err != nil || len(frames) < 60 {
		t.Fatalf("%d replay frames decoded: %v", len(frames), err)
	}
	reveals, err := browsertest.Eval[[]replayReveal](tab, 5*time.Second, `window.streamdPlayer.reveals`)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pushes {
		var rv *replayReveal
		for i := range reveals {
			if reveals[i].ID != nil && *reveals[i].ID == p.id {
				rv = &reveals[i]
			}
		}
		if rv == nil {
			t.Fatalf("card %s was never revealed: %+v", p.id, reveals)
		}
		shown := uint32(0)
		for _, f := range frames {
			if f.Media == rv.FrameMedia {
				shown = f.Frame
			}
		}
		if shown == 0 {
			t.Fatalf("no decoded frame at media time %.4f", rv.FrameMedia)
		}
		// Distinct pictures displayed in (lo, hi]: the canvas capture may
		// encode one drawing twice, and that is one picture, not two.
		displayed := func(lo, hi uint32) int {
			seen := map[uint32]bool{}
			for _, f := range frames {
				if f.Frame > lo && f.Frame <= hi {
					seen[f.Frame] = true
				}
			}
			return len(seen)
		}
		diff := 0
		switch {
		case int(shown) < p.fpub:
			diff = -displayed(shown, uint32(p.fpub))
		case int(shown) > p.fafter:
			diff = displayed(uint32(p.fafter), shown)
		}
		t.Logf("card %s (%s): pushed while the publisher drew frames %d..%d, replay shows it on frame %d at %.3f s (error %+d frames)", p.id, p.product, p.fpub, p.fafter, shown, *rv.T, diff)
		if diff < -1 || diff > 1 {
			t.Fatalf("replay card %s on frame %d, pushed at frames %d..%d", p.id, shown, p.fpub, p.fafter)
		}
	}

	// A chapter jumps to its card.
	js := fmt.Sprintf(`(() => { window.streamdPlayer.video.pause(); document.querySelector('.chapter[data-id=%q]').click(); return true })()`, pushes[0].id)
	if _, err := browsertest.Eval[bool](tab, 5*time.Second, js); err != nil {
		t.Fatal(err)
	}
	if err := browsertest.WaitFor(tab, 10*time.Second, `(() => { const c = document.querySelector('.card'); return !c.hidden && c.dataset.product === 'bag' })()`); err != nil {
		t.Fatalf("chapter did not show its card: %v", err)
	}
	shot(t, tab, "replay.png")
	defer artifact(t, tab, "replay-buy.png")
	// Buy from the replay.
	if err := browsertest.WaitFor(tab, 5*time.Second, `!document.querySelector('.card-buy').disabled`); err != nil {
		t.Fatal(err)
	}
	_, _ = browsertest.Eval[bool](tab, 5*time.Second, `(() => { window.streamdPlayer.video.pause(); document.querySelector('.card-buy').click(); return true })()`)
	// A first-time buyer: the sheet holds the item at the tap and asks for
	// the details; they are typed, then Pay is clicked as a user would
	// (scrolled into view, a real pointer click on the sheet).
	if err := browsertest.WaitFor(tab, 5*time.Second, `!!document.querySelector('.sheet-wrap.open .sheet-pay:not(:disabled)') && !!document.querySelector('.sheet-wrap.open .bf input[name=email]') && !!window.streamdPlayer.sheet.timing.held`); err != nil {
		t.Fatal(err)
	}
	do := func(what string, action chromedp.Action[chromedp.Void]) {
		t.Helper()
		c, cancel := context.WithTimeout(tab, 10*time.Second)
		defer cancel()
		if _, err := chromedp.Run(c, action); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	do("pick up in the showroom", chromedp.Click(chromedp.CSS(`.sheet-wrap.open .bf-seg [data-m=pickup]`)))
	do("type the email", chromedp.SendKeys(chromedp.CSS(`.sheet-wrap.open .bf input[name=email]`), "rita@example.com"))
	do("type the name", chromedp.SendKeys(chromedp.CSS(`.sheet-wrap.open .bf input[name=name]`), "Rita Replay"))
	do("tap Pay", chromedp.Click(chromedp.CSS(`.sheet-wrap.open .sheet-pay`)))
	if err := browsertest.WaitFor(tab, 10*time.Second, `window.streamdPlayer.sheet && window.streamdPlayer.sheet.state === 'paid'`); err != nil {
		t.Fatal(err)
	}
	var out struct {
		Orders []struct {
			Source string `json:"source"`
			Card   string `json:"card"`
			Status string `json:"status"`
			Buyer  struct {
				Email string `json:"email"`
			} `json:"buyer"`
			Delivery struct {
				Method string `json:"method"`
			} `json:"delivery"`
		} `json:"orders"`
	}
	code := api(t, "GET", a.BaseURL()+"/api/orders?stream=rp", testStaff, nil, &out)
	orders := out.Orders
	if code != 200 || len(orders) != 1 {
		t.Fatalf("orders: %d %+v", code, orders)
	}
	if o := orders[0]; o.Source != "replay" || o.Card != pushes[0].id || o.Status != "paid" {
		t.Fatalf("replay order %+v, want source replay, card %s", o, pushes[0].id)
	}
	if o := orders[0]; o.Buyer.Email != "rita@example.com" || o.Delivery.Method != "pickup" {
		t.Fatalf("replay order %+v, want the typed buyer details (rita@example.com, pickup)", o)
	}
}
