package app

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/streamd/streamd/internal/browsertest"
)

// TestShopBrowser closes the loop in one Chromium: a publisher goes live, the
// staff console (tablet) pins cards and starts a flash deal, two players
// (phones) see the cards, buy with the dev provider, race for a capped deal,
// and everybody sees stock and orders move. Screenshots go to docs/img.
func TestShopBrowser(t *testing.T) {
	b := browsertest.Launch(t)
	a := startApp(t, nil)
	base := a.BaseURL()
	const stream = "shop"
	key := createShop(t, a, stream)

	publishCanvas(t, b, base, stream, key, "vp8")

	// Console on a tablet: a wrong token is refused with a message, the right one signs in.
	console := b.Tab(t)
	viewport(t, console, 1024, 768, 1)
	if err := browsertest.Open(console, base+"/console/"+stream, "#signin-form"); err != nil {
		t.Fatal(err)
	}
	eval[bool](t, console, `(() => { document.getElementById('token').value = 'not-the-token'; document.getElementById('signin-form').requestSubmit(); return true })()`)
	waitJS(t, console, 10*time.Second, `!document.getElementById('signin-error').hidden && document.getElementById('signin-error').textContent.includes('Wrong staff token') && !document.getElementById('signin').hidden`)
	if stored := eval[string](t, console, `sessionStorage.getItem('streamd.staff') || ''`); stored != "" {
		t.Fatalf("a refused token was kept: %q", stored)
	}
	eval[bool](t, console, fmt.Sprintf(`(() => { document.getElementById('token').value = %q; document.getElementById('signin-form').requestSubmit(); return true })()`, testStaff))
	waitJS(t, console, 10*time.Second, `window.streamdConsole.ready === true && document.getElementById('signin').hidden && document.querySelectorAll('.tile').length === 6`)
	if strings.Contains(eval[string](t, console, `location.href`), testStaff) {
		t.Fatal("the staff token leaked into the URL")
	}
	waitJS(t, console, 15*time.Second, `window.streamdConsole.live === true`)

	p1 := openShopPlayer(t, b, base, stream)
	p2 := openShopPlayer(t, b, base, stream)
	waitJS(t, console, 10*time.Second, `document.getElementById('viewers').textContent === '2'`) // two players; the staff preview is no viewer

	t.Run("chain", func(t *testing.T) {
		// A double tap pushes once: the tile is disabled while the first push is in flight.
		eval[bool](t, console, `(() => { const t = document.querySelector('.tile[data-product="aurora"]'); t.click(); t.click(); return true })()`)
		waitJS(t, console, 10*time.Second, `document.querySelector('.tile[data-product="aurora"]').dataset.pinned === 'true' && document.getElementById('onair').dataset.pinned === 'true'`)
		for _, p := range []context.Context{p1, p2} {
			waitJS(t, p, 10*time.Second, `(() => { const c = document.querySelector('.card'); return !c.hidden && c.dataset.product === 'aurora' && c.dataset.available === '12' })()`)
		}
		time.Sleep(500 * time.Millisecond)
		if n := eval[int](t, p2, `streamdPlayer.reveals.filter((r) => r.action === 'show').length`); n != 1 {
			t.Fatalf("double tap: player saw %d show events, want 1", n)
		}

		// Player 1 buys: Buy opens the sheet (variants), Pay places the order.
		eval[bool](t, p1, `(() => { document.querySelector('.card-buy').click(); return true })()`)
		waitJS(t, p1, 5*time.Second, `!!document.querySelector('.sheet-wrap.open .sheet-pay') && document.querySelectorAll('.chip').length === 2`)
		eval[bool](t, p1, `(() => { document.querySelectorAll('.chip')[1].click(); return true })()`) // "Sand"
		time.Sleep(400 * time.Millisecond)                                                            // the slide-in
		shot(t, p1, "player-buy.png")
		start := time.Now()
		eval[bool](t, p1, `(() => { document.querySelector('.sheet-pay').click(); return true })()`)
		waitJS(t, p1, 10*time.Second, `streamdPlayer.sheet.state === 'paid' && !document.querySelector('.sheet-done').hidden`)
		wall := time.Since(start)
		inPage := eval[float64](t, p1, `streamdPlayer.sheet.timing.confirmed - streamdPlayer.sheet.timing.pay`)
		t.Logf("Pay tap → confirmation: %.0f ms in the page (%v including the test's polling)", inPage, wall.Round(time.Millisecond))
		if txt := eval[string](t, p1, `document.querySelector('.sheet-done').textContent`); !strings.Contains(txt, "TEST MODE") || !strings.Contains(txt, "Order confirmed") {
			t.Fatalf("confirmation text %q: want a test-mode label", txt)
		}
		if v := eval[bool](t, p1, `!document.getElementById('video').paused`); !v {
			t.Fatal("the video stopped while buying")
		}
		// Stock drops everywhere; the order is in the console feed, attributed to the card.
		waitJS(t, p2, 5*time.Second, `document.querySelector('.card').dataset.available === '11'`)
		waitJS(t, console, 5*time.Second, `window.streamdConsole.stockOf['aurora'] === 11 && !!document.querySelector('.feed li.feed-order.status-paid')`)
		cardID := eval[string](t, p1, `streamdPlayer.cardView.cardId || ''`)
		var orders struct {
			Orders []struct {
				Card, Source, Status string
				Items                []struct{ SKU string }
			}
		}
		api(t, "GET", base+"/api/orders?stream="+stream, testStaff, nil, &orders)
		if len(orders.Orders) != 1 || orders.Orders[0].Card == "" || orders.Orders[0].Card != cardID || orders.Orders[0].Source != "player" || orders.Orders[0].Items[0].SKU != "sand" {
			t.Fatalf("order attribution: %+v (card on screen %q)", orders.Orders, cardID)
		}
		var an struct {
			Orders int
			Cards  []struct {
				Card   string
				Orders int
			}
		}
		if code := api(t, "GET", base+"/api/streams/"+stream+"/analytics", testStaff, nil, &an); code != 200 || an.Orders != 1 || len(an.Cards) != 1 || an.Cards[0].Card != cardID {
			t.Fatalf("analytics %d: %+v", code, an)
		}
		waitJS(t, console, 5*time.Second, `document.querySelector('.onair-sales').textContent.startsWith('This card: 1 order')`)
		eval[bool](t, p1, `(() => { document.querySelector('.sheet-ok').click(); return true })()`)
	})

	t.Run("flash_deal", func(t *testing.T) {
		eval[bool](t, console, `(() => { document.querySelector('.tile[data-product="nova"]').click(); return true })()`)
		waitJS(t, console, 10*time.Second, `window.streamdConsole.pinned && window.streamdConsole.pinned.product_id === 'nova' && !document.getElementById('deal').hidden`)
		eval[bool](t, console, `(() => { document.getElementById('deal-price').value = '149.00'; document.getElementById('deal-duration').value = '5'; document.getElementById('deal-qty').value = '1'; document.getElementById('deal-start').click(); return true })()`)
		for _, p := range []context.Context{p1, p2} {
			waitJS(t, p, 10*time.Second, `(() => { const c = document.querySelector('.card'); return c.dataset.product === 'nova' && c.classList.contains('has-deal') && !c.querySelector('.card-timer').hidden })()`)
		}
		waitJS(t, console, 5*time.Second, `!document.getElementById('onair-timer').hidden`)
		shot(t, p2, "player-card.png")
		// Both tap Buy at once. The hold is placed at the tap, so the race is
		// decided there: one sheet holds the only deal unit, the other says
		// the deal sold out before anyone types or pays.
		var wg sync.WaitGroup
		for _, p := range []context.Context{p1, p2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = browsertest.Eval[bool](p, 5*time.Second, `(() => { document.querySelector('.card-buy').click(); return true })()`)
			}()
		}
		wg.Wait()
		var winner context.Context
		losers := 0
		for i, p := range []context.Context{p1, p2} {
			waitJS(t, p, 10*time.Second, `!!streamdPlayer.sheet && (!!streamdPlayer.sheet.timing.held || !document.querySelector('.sheet-wrap.open .sheet-msg').hidden)`)
			if eval[bool](t, p, `!!streamdPlayer.sheet.timing.held`) {
				winner = p
				continue
			}
			losers++
			msg := eval[string](t, p, `document.querySelector('.sheet-wrap.open .sheet-msg').textContent`)
			if !strings.Contains(strings.ToLower(msg), "sold out") {
				t.Fatalf("player %d lost the race with message %q, want sold out", i+1, msg)
			}
			waitJS(t, p, 3*time.Second, `document.querySelector('.card-buy').disabled`)
		}
		if winner == nil || losers != 1 {
			t.Fatalf("race: %d holds lost, want exactly one hold and one sold out", losers)
		}
		// The winner's own hold takes the deal's only unit: every screen,
		// the winner's too, is told 0 are for sale; the winner's sheet still
		// lets them pay for the unit they hold.
		waitJS(t, winner, 5*time.Second, `document.querySelector('.card').dataset.available === '0'`)
		// (While the deal runs: when it ends the unit is for sale again and
		// a sheet saying "Sold out" until then would turn payable.)
		waitJS(t, winner, 5*time.Second, `!!document.querySelector('.sheet-wrap.open .sheet-pay:not(:disabled)') && document.querySelector('.card').classList.contains('has-deal')`)
		eval[bool](t, winner, `(() => { document.querySelector('.sheet-wrap.open .sheet-pay').click(); return true })()`)
		waitJS(t, winner, 10*time.Second, `streamdPlayer.sheet.state === 'paid'`)
		if deal := eval[bool](t, winner, `fetch('/api/orders/' + [...document.querySelectorAll('.sheet-wrap')].pop().dataset.order).then((r) => r.json()).then((o) => o.items[0].deal && o.total.amount === 14900)`); !deal {
			t.Fatal("the deal price was not kept from the tap to the payment")
		}
		for _, p := range []context.Context{p1, p2} {
			eval[bool](t, p, `(() => { const x = document.querySelector('.sheet-x'); if (x) x.click(); return true })()`)
		}
		// Both countdowns reach 0 at the same (server) instant.
		var zero [2]float64
		var ends float64
		for i, p := range []context.Context{p1, p2} {
			waitJS(t, p, 10*time.Second, `Object.keys(streamdPlayer.cardView.zeroAt).length > 0`)
			zero[i] = eval[float64](t, p, `Object.values(streamdPlayer.cardView.zeroAt)[0]`)
			ends = eval[float64](t, p, `Number(Object.keys(streamdPlayer.cardView.zeroAt)[0])`)
		}
		d := math.Abs(zero[0] - zero[1])
		t.Logf("countdown reached 0 at server time %+.0f ms / %+.0f ms after ends_at: %.1f ms apart", zero[0]-ends, zero[1]-ends, d)
		if d > 100 {
			t.Fatalf("countdowns reached zero %.0f ms apart, want ≤ 100 ms", d)
		}
		for i, z := range zero {
			if z < ends-50 || z > ends+250 {
				t.Fatalf("player %d showed 0 at %+.0f ms from ends_at", i+1, z-ends)
			}
		}
		// After the deal the card is back to the regular price and on sale again.
		waitJS(t, p2, 5*time.Second, `!document.querySelector('.card').classList.contains('has-deal') && !document.querySelector('.card-buy').disabled`)
	})

	t.Run("bad_paths", func(t *testing.T) {
		// Buy on a sold-out card is disabled.
		eval[bool](t, console, `(() => { document.querySelector('.tile[data-product="drift"]').click(); return true })()`)
		for _, p := range []context.Context{p1, p2} {
			waitJS(t, p, 10*time.Second, `(() => { const c = document.querySelector('.card'); return !c.hidden && c.dataset.product === 'drift' && !c.querySelector('.card-buy').disabled })()`)
		}
		if code := checkoutAPI(t, base, stream, "drift", "buy-the-last-one"); code != 201 {
			t.Fatalf("API checkout of the last unit: %d", code)
		}
		for _, p := range []context.Context{p1, p2} {
			waitJS(t, p, 5*time.Second, `(() => { const c = document.querySelector('.card'); const b = c.querySelector('.card-buy'); return b.disabled && b.textContent === 'Sold out' && c.querySelector('.card-stock').textContent === 'Sold out' })()`)
		}
		waitJS(t, console, 5*time.Second, `document.querySelector('.tile[data-product="drift"] .tile-stock').textContent === 'Sold out'`)

		// A checkout error is shown, not swallowed: the per-buyer limit.
		eval[bool](t, console, `(() => { document.querySelector('.tile[data-product="pack"]').click(); return true })()`)
		waitJS(t, p1, 10*time.Second, `(() => { const c = document.querySelector('.card'); return !c.hidden && c.dataset.product === 'pack' })()`)
		for round, want := range []string{"paid", "error"} {
			eval[bool](t, p1, `(() => { document.querySelector('.card-buy').click(); return true })()`)
			waitJS(t, p1, 5*time.Second, `!!document.querySelector('.sheet-wrap.open .sheet-pay:not(:disabled)')`)
			eval[bool](t, p1, `(() => { document.querySelector('.sheet-wrap.open .sheet-pay').click(); return true })()`)
			waitJS(t, p1, 10*time.Second, `['paid', 'error'].includes(streamdPlayer.sheet.state)`)
			if st := eval[string](t, p1, `streamdPlayer.sheet.state`); st != want {
				t.Fatalf("round %d: sheet %s, want %s", round, st, want)
			}
			if want == "error" {
				msg := eval[string](t, p1, `document.querySelector('.sheet-wrap.open .sheet-msg').textContent`)
				if !strings.Contains(msg, "Limit reached") {
					t.Fatalf("limit error shown as %q", msg)
				}
			}
			eval[bool](t, p1, `(() => { document.querySelector('.sheet-wrap.open .sheet-x').click(); return true })()`)
			time.Sleep(300 * time.Millisecond)
		}
	})

	t.Run("visitor", func(t *testing.T) {
		// The showroom page shows the live card at once and buys as "showroom".
		visit := p2
		viewport(t, visit, 375, 667, 2)
		if err := browsertest.Open(visit, base+"/visit/"+stream, "#overlay"); err != nil {
			t.Fatal(err)
		}
		waitJS(t, visit, 10*time.Second, `(() => { const c = document.querySelector('.card'); return !!c && !c.hidden && c.dataset.product === 'pack' })()`)
		eval[bool](t, console, `(() => { document.querySelector('.tile[data-product="mug"]').click(); return true })()`)
		waitJS(t, visit, 5*time.Second, `document.querySelector('.card').dataset.product === 'mug'`)
		eval[bool](t, visit, `(() => { document.querySelector('.card-buy').click(); return true })()`)
		waitJS(t, visit, 5*time.Second, `!!document.querySelector('.sheet-wrap.open .sheet-pay:not(:disabled)')`)
		eval[bool](t, visit, `(() => { document.querySelector('.sheet-pay').click(); return true })()`)
		waitJS(t, visit, 10*time.Second, `streamdVisit.cardView && document.querySelector('.sheet-done') && !document.querySelector('.sheet-done').hidden`)
		waitJS(t, console, 5*time.Second, `[...document.querySelectorAll('.feed li.feed-order .feed-sub')].some((e) => e.textContent.includes('in the showroom'))`)
	})

	// The console as a shop owner sees it: a card on screen with a running
	// deal, the feed full of orders.
	eval[bool](t, console, `(() => { document.querySelector('.tile[data-product="aurora"]').click(); return true })()`)
	waitJS(t, console, 10*time.Second, `window.streamdConsole.pinned && window.streamdConsole.pinned.product_id === 'aurora'`)
	eval[bool](t, console, `(() => { document.getElementById('deal-price').value = '119.00'; document.getElementById('deal-duration').value = '90'; document.getElementById('deal-qty').value = '20'; document.getElementById('deal-start').click(); return true })()`)
	waitJS(t, console, 5*time.Second, `!document.getElementById('onair-timer').hidden && !document.getElementById('deal-end').hidden`)
	waitJS(t, p1, 10*time.Second, `(() => { const c = document.querySelector('.card'); return c.dataset.product === 'aurora' && c.classList.contains('has-deal') })()`)
	eval[bool](t, p1, `(() => { document.querySelector('.card-buy').click(); return true })()`)
	waitJS(t, p1, 5*time.Second, `!!document.querySelector('.sheet-wrap.open .sheet-pay:not(:disabled)')`)
	eval[bool](t, p1, `(() => { document.querySelector('.sheet-wrap.open .sheet-pay').click(); return true })()`)
	waitJS(t, p1, 10*time.Second, `streamdPlayer.sheet.state === 'paid'`)
	waitJS(t, console, 5*time.Second, `document.querySelector('.onair-sales').classList.contains('has-sales')`)
	// The tiles' "sold" figures are the server's (paid units of this show):
	// never negative, equal to GET /api/streams/{id}/sold.
	var sold struct{ Sold map[string]int }
	api(t, "GET", base+"/api/streams/"+stream+"/sold", testStaff, nil, &sold)
	want, _ := json.Marshal(sold.Sold)
	waitJS(t, console, 10*time.Second, fmt.Sprintf(`JSON.stringify(Object.fromEntries(Object.entries(window.streamdConsole.soldOf).sort())) === JSON.stringify(Object.fromEntries(Object.entries(%s).sort()))`, want))
	waitJS(t, console, 5*time.Second, fmt.Sprintf(`document.querySelector('.tile[data-product="aurora"]').textContent.includes('%d sold')`, sold.Sold["aurora"]))
	if neg := eval[bool](t, console, `[...document.querySelectorAll('.tile')].some((e) => /-\d+ sold/.test(e.textContent))`); neg || sold.Sold["aurora"] < 2 {
		t.Fatalf("sold figures: negative on a tile %v, server %v", neg, sold.Sold)
	}
	time.Sleep(3 * time.Second) // toasts fade
	shot(t, console, "console.png")
	viewport(t, console, 768, 1024, 1) // the tablet turned to portrait
	time.Sleep(300 * time.Millisecond)
	artifact(t, console, "console-portrait.png")
	artifact(t, p2, "visit.png")
}

// checkoutAPI buys one unit through the HTTP API, as another buyer would.
func checkoutAPI(t *testing.T, base, stream, product, key string) int {
	t.Helper()
	req := map[string]any{"items": []map[string]any{{"product_id": product, "quantity": 1}}, "stream": stream, "source": "player",
		"buyer": map[string]any{"email": "api@example.com", "name": "API buyer"}, "delivery": map[string]any{"method": "pickup"}}
	return apiWithHeader(t, "POST", base+"/api/checkout", map[string]string{"Idempotency-Key": key}, req)
}

func apiWithHeader(t *testing.T, method, url string, hdr map[string]string, body any) int {
	t.Helper()
	js, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, url, bytes.NewReader(js))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	res.Body.Close()
	return res.StatusCode
}

func openShopPlayer(t *testing.T, b *browsertest.Browser, base, stream string) context.Context {
	t.Helper()
	tab := b.Tab(t)
	viewport(t, tab, 375, 667, 2)
	if err := browsertest.Open(tab, base+"/watch/"+stream, "#video"); err != nil {
		t.Fatalf("open player: %v", err)
	}
	waitJS(t, tab, 15*time.Second, `!!window.streamdPlayer && window.streamdPlayer.state === 'live' && window.streamdPlayer.overlay.lastSeq !== null`)
	// A returning buyer: the sheet's details are prefilled (TestOrdersBrowser types them).
	eval[bool](t, tab, `(() => { localStorage.setItem('streamd.buyer', JSON.stringify({ email: 'ana@example.com', name: 'Ana Lima', method: 'pickup' })); return true })()`)
	return tab
}

func viewport(t *testing.T, tab context.Context, w, h int64, scale float64) {
	t.Helper()
	c, cancel := context.WithTimeout(tab, 10*time.Second)
	defer cancel()
	opts := []chromedp.EmulateViewportOption{chromedp.EmulateScale(scale)}
	if h > w {
		opts = append(opts, chromedp.EmulatePortrait)
	}
	if err := chromedp.Do(c, chromedp.EmulateViewport(w, h, opts...)); err != nil {
		t.Fatalf("viewport: %v", err)
	}
}

func eval[T any](t *testing.T, tab context.Context, js string) T {
	t.Helper()
	v, err := browsertest.Eval[T](tab, 10*time.Second, js)
	if err != nil {
		t.Fatalf("eval %s: %v", js, err)
	}
	return v
}

func waitJS(t *testing.T, tab context.Context, d time.Duration, js string) {
	t.Helper()
	if err := browsertest.WaitFor(tab, d, js); err != nil {
		t.Fatal(err)
	}
}

// shot saves a screenshot of the tab to test-artifacts/<name>, and to
// docs/img/<name> with STREAMD_UPDATE_SCREENSHOTS=1.
func shot(t *testing.T, tab context.Context, name string) { screenshot(t, tab, name, true) }

// artifact saves a screenshot to test-artifacts/<name> only.
func artifact(t *testing.T, tab context.Context, name string) { screenshot(t, tab, name, false) }

func screenshot(t *testing.T, tab context.Context, name string, docs bool) {
	t.Helper()
	c, cancel := context.WithTimeout(tab, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(c, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	root := filepath.Join("..", "..")
	dirs := []string{filepath.Join(root, "test-artifacts")}
	// The README's screenshots are refreshed on demand, so that a test run
	// does not rewrite tracked files.
	if docs && os.Getenv("STREAMD_UPDATE_SCREENSHOTS") != "" {
		dirs = append(dirs, filepath.Join(root, "docs", "img"))
	}
	for _, dir := range dirs {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshot %s (%d bytes) in %v", name, len(png), dirs)
}

// createShop creates the stream and the shopProducts catalog; it returns
// the publish key.
func createShop(t *testing.T, a *App, stream string) string {
	t.Helper()
	key := createStream(t, a, stream)
	for _, p := range shopProducts() {
		if code := api(t, "POST", a.BaseURL()+"/api/products", testStaff, p, nil); code != 201 {
			t.Fatalf("create product %v: %d", p["id"], code)
		}
	}
	return key
}

// shopProducts is a small catalog with drawn product images.
func shopProducts() []map[string]any {
	eur := func(c int) map[string]any { return map[string]any{"amount": c, "currency": "eur"} }
	return []map[string]any{
		{"id": "aurora", "title": "Aurora Wireless Headphones", "description": "Noise cancelling, 40 h battery", "price": eur(14900),
			"images": []string{productImage("#ff3d6e", "#6a2cff", `<path d="M130 200v-50a70 70 0 0 1 140 0v50" stroke="#fff" stroke-width="16" fill="none" stroke-linecap="round"/><rect x="108" y="176" width="44" height="72" rx="16" fill="#fff"/><rect x="248" y="176" width="44" height="72" rx="16" fill="#fff"/>`)},
			"skus":   []map[string]any{{"id": "midnight", "title": "Midnight", "stock": 6}, {"id": "sand", "title": "Sand", "stock": 6}}},
		{"id": "nova", "title": "Nova Steel Watch", "price": eur(19900), "stock": 5,
			"images": []string{productImage("#1f2a44", "#3fb6a8", `<rect x="172" y="40" width="56" height="60" rx="10" fill="#dfe7ef"/><rect x="172" y="200" width="56" height="60" rx="10" fill="#dfe7ef"/><circle cx="200" cy="150" r="62" fill="#10161f" stroke="#fff" stroke-width="12"/><path d="M200 150v-36M200 150h26" stroke="#fff" stroke-width="8" stroke-linecap="round"/>`)}},
		{"id": "mug", "title": "Ember Ceramic Mug", "price": eur(2400), "stock": 40,
			"images": []string{productImage("#ff8a3d", "#ffcf5a", `<rect x="135" y="90" width="110" height="130" rx="18" fill="#fff"/><path d="M245 120h18a30 30 0 0 1 0 60h-18" stroke="#fff" stroke-width="14" fill="none"/><path d="M165 70c0-14 14-14 14-28M200 70c0-14 14-14 14-28" stroke="#fff" stroke-width="6" fill="none" stroke-linecap="round" opacity=".7"/>`)}},
		{"id": "drift", "title": "Drift Polarized Sunglasses", "price": eur(5900), "stock": 1,
			"images": []string{productImage("#00a6ff", "#8ef0d0", `<circle cx="150" cy="160" r="42" fill="#0d1b2a"/><circle cx="250" cy="160" r="42" fill="#0d1b2a"/><path d="M192 155q8-12 16 0" stroke="#0d1b2a" stroke-width="8" fill="none"/><path d="M108 150l-30-20M292 150l30-20" stroke="#0d1b2a" stroke-width="8" stroke-linecap="round"/>`)}},
		{"id": "pack", "title": "Canvas Roll-top Backpack", "price": eur(8900), "stock": 8, "per_buyer_limit": 1,
			"images": []string{productImage("#3a6b35", "#c9b27c", `<rect x="140" y="80" width="120" height="160" rx="26" fill="#f1e6c8"/><rect x="160" y="150" width="80" height="60" rx="10" fill="#d8c89c"/><path d="M170 80v-20h60v20" stroke="#f1e6c8" stroke-width="10" fill="none"/>`)}},
		{"id": "lamp", "title": "Lumen Desk Lamp", "price": eur(6900), "stock": 20,
			"images": []string{productImage("#2b2d42", "#8d99ae", `<path d="M150 250h100" stroke="#fff" stroke-width="14" stroke-linecap="round"/><path d="M200 250l-30-90 60-50" stroke="#fff" stroke-width="10" fill="none" stroke-linecap="round"/><path d="M205 95l60-20 15 50z" fill="#ffd166"/><circle cx="262" cy="140" r="26" fill="#ffd166" opacity=".35"/>`)}},
	}
}

func productImage(c1, c2, shape string) string {
	svg := `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 300"><defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="` + c1 + `"/><stop offset="1" stop-color="` + c2 + `"/></linearGradient></defs><rect width="400" height="300" fill="url(#g)"/>` + shape + `</svg>`
	return "data:image/svg+xml;base64," + base64.StdEncoding.EncodeToString([]byte(svg))
}
