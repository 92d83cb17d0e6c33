package app

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/streamd/streamd/internal/browsertest"
)

// TestChatBrowser: two viewers (phones) and the console (tablet) in one
// Chromium. Chat both ways, a staff reply, pin, delete and a shadow ban;
// the no_viewer, too_long and rate_limited errors arrive while the socket
// stays open; an <img onerror> name and message render as text; 100
// reaction taps make at most 4 reactions messages a second; the chat panel
// never covers the card or its Buy button.
func TestChatBrowser(t *testing.T) {
	b := browsertest.Launch(t)
	a := startApp(t, nil)
	base := a.BaseURL()
	const stream = "chat"
	key := createStream(t, a, stream)
	for _, p := range shopProducts()[:3] {
		if code := api(t, "POST", base+"/api/products", testStaff, p, nil); code != 201 {
			t.Fatalf("create product: %d", code)
		}
	}
	publishCanvas(t, b, base, stream, key, "vp8")
	// Two people: each viewer in a browser context of its own (cookies apart).
	p1 := openChatPlayer(t, b, base, stream)
	p2 := openChatPlayer(t, b, base, stream)
	for _, p := range []context.Context{p1, p2} {
		waitJS(t, p, 5*time.Second, `!!streamdPlayer.chat && !!document.querySelector('.chat .chat-input')`)
	}
	console := b.Tab(t)
	viewport(t, console, 1024, 768, 1)
	if err := browsertest.Open(console, base+"/console/"+stream, "#signin-form"); err != nil {
		t.Fatal(err)
	}
	eval[bool](t, console, fmt.Sprintf(`(() => { document.getElementById('token').value = %q; document.getElementById('signin-form').requestSubmit(); return true })()`, testStaff))
	waitJS(t, console, 15*time.Second, `window.streamdChat && window.streamdChat.ready === true && window.streamdChat.overlay.lastSeq !== null`)

	const xss = `<img src=x onerror=__xss=1>` // fits a 32-character name
	say := func(t *testing.T, tab context.Context, text string) {
		t.Helper()
		eval[bool](t, tab, fmt.Sprintf(`(() => { const i = document.querySelector('.chat-form .chat-input'); i.value = %q; document.querySelector('.chat-form').requestSubmit(); return true })()`, text))
	}
	join := func(t *testing.T, tab context.Context, name string) {
		t.Helper()
		waitJS(t, tab, 5*time.Second, `!document.querySelector('.chat-name-form').hidden`)
		eval[bool](t, tab, fmt.Sprintf(`(() => { document.querySelector('.chat-name-form .chat-input').value = %q; document.querySelector('.chat-name-form').requestSubmit(); return true })()`, name))
		waitJS(t, tab, 10*time.Second, `!!(window.streamdPlayer || window.streamdVisit).chat.me && document.querySelector('.chat-name-form').hidden`)
	}
	hasMsg := func(text string) string {
		return fmt.Sprintf(`[...document.querySelectorAll('.chat-list .chat-text')].some((e) => e.textContent === %q)`, text)
	}

	t.Run("no_viewer", func(t *testing.T) {
		// A socket without the cookie is told no_viewer and stays open.
		eval[bool](t, p1, `streamdPlayer.overlay.send({type: 'chat', text: 'hello?'})`)
		waitJS(t, p1, 5*time.Second, `streamdPlayer.chat.errors.some((e) => e.code === 'no_viewer') && !document.querySelector('.chat-name-form').hidden`)
		if !eval[bool](t, p1, `streamdPlayer.overlay.send({type: 'ping', t: Date.now()})`) {
			t.Fatal("the socket closed after no_viewer")
		}
		eval[bool](t, p1, `(() => { document.querySelector('.chat-name-form').hidden = true; document.querySelector('.chat-form').hidden = false; return true })()`)
	})

	t.Run("chat both ways", func(t *testing.T) {
		say(t, p1, "Does it come in M?") // asks for a name first, then sends
		join(t, p1, xss)
		for _, tab := range []context.Context{p1, p2} {
			waitJS(t, tab, 10*time.Second, hasMsg("Does it come in M?"))
		}
		waitJS(t, console, 10*time.Second, `[...document.querySelectorAll('.cchat-msg.question .cchat-text')].some((e) => e.textContent === 'Does it come in M?')`)
		say(t, p2, xss)
		join(t, p2, "Bea")
		for _, tab := range []context.Context{p1, p2, console} {
			waitJS(t, tab, 10*time.Second, fmt.Sprintf(`[...document.querySelectorAll('.chat-text, .cchat-text')].some((e) => e.textContent === %q)`, xss))
		}
		// Name and message are text: no <img> in any chat, nothing ran.
		for _, tab := range []context.Context{p1, p2, console} {
			if n := eval[int](t, tab, `document.querySelectorAll('.chat img, .cchat img').length + (window.__xss ? 100 : 0)`); n != 0 {
				t.Fatalf("markup from a viewer was rendered (%d)", n)
			}
		}
		if name := eval[string](t, p2, `document.querySelector('.chat-msg .chat-author').textContent`); name != xss {
			t.Fatalf("author shown as %q", name)
		}
	})

	t.Run("staff reply, pin, delete", func(t *testing.T) {
		clickMsg := func(text string) {
			t.Helper()
			eval[bool](t, console, fmt.Sprintf(`(() => { const li = [...document.querySelectorAll('.cchat-msg')].find((l) => l.querySelector('.cchat-text').textContent === %q); li.click(); return true })()`, text))
		}
		act := func(name string) {
			t.Helper()
			waitJS(t, console, 5*time.Second, fmt.Sprintf(`!!document.querySelector('.cchat-msg.selected [data-act=%s]')`, name))
			eval[bool](t, console, fmt.Sprintf(`(() => { document.querySelector('.cchat-msg.selected [data-act=%s]').click(); return true })()`, name))
		}
		clickMsg("Does it come in M?")
		act("reply")
		eval[bool](t, console, `(() => { document.querySelector('.cchat-reply input').value = 'Yes — S to XL, all in stock'; document.querySelector('.cchat-reply').requestSubmit(); return true })()`)
		for _, tab := range []context.Context{p1, p2} {
			waitJS(t, tab, 10*time.Second, `[...document.querySelectorAll('.chat-msg.staff')].some((m) => m.querySelector('.chat-text').textContent === 'Yes — S to XL, all in stock' && m.querySelector('.chat-badge').textContent === 'HOST' && m.querySelector('.chat-quote').textContent.includes('Does it come in M?'))`)
		}
		clickMsg("Yes — S to XL, all in stock")
		act("pin")
		for _, tab := range []context.Context{p1, p2} {
			waitJS(t, tab, 10*time.Second, `!document.querySelector('.chat-pin').hidden && document.querySelector('.chat-pin .chat-text').textContent === 'Yes — S to XL, all in stock'`)
		}
		say(t, p1, "oops, wrong chat")
		waitJS(t, console, 10*time.Second, `[...document.querySelectorAll('.cchat-text')].some((e) => e.textContent === 'oops, wrong chat')`)
		clickMsg("oops, wrong chat")
		act("delete")
		for _, tab := range []context.Context{p1, p2} {
			waitJS(t, tab, 10*time.Second, `!`+hasMsg("oops, wrong chat")+` && `+hasMsg("Does it come in M?"))
		}
	})

	t.Run("shadow ban", func(t *testing.T) {
		eval[bool](t, console, fmt.Sprintf(`(() => { [...document.querySelectorAll('.cchat-msg')].find((l) => l.querySelector('.cchat-text').textContent === %q).click(); return true })()`, xss))
		waitJS(t, console, 5*time.Second, `!!document.querySelector('.cchat-msg.selected [data-act=shadow]')`)
		eval[bool](t, console, `(() => { document.querySelector('.cchat-msg.selected [data-act=shadow]').click(); return true })()`)
		waitJS(t, console, 5*time.Second, `Object.values(streamdChat.bans).includes('shadow')`)
		time.Sleep(2 * time.Second) // Bea's rate-limit budget refills
		say(t, p2, "can anyone see me?")
		waitJS(t, p2, 10*time.Second, hasMsg("can anyone see me?"))
		say(t, p1, "still here") // after Bea's, in seq order
		waitJS(t, p1, 10*time.Second, hasMsg("still here"))
		waitJS(t, p2, 10*time.Second, hasMsg("still here"))
		for _, tab := range []context.Context{p1, console} {
			if eval[bool](t, tab, `[...document.querySelectorAll('.chat-text, .cchat-text')].some((e) => e.textContent === 'can anyone see me?')`) {
				t.Fatal("a shadow-banned message reached another viewer")
			}
		}
	})

	t.Run("errors keep the socket", func(t *testing.T) {
		time.Sleep(2 * time.Second)
		eval[bool](t, p1, `streamdPlayer.overlay.send({type: 'chat', text: 'x'.repeat(281)})`)
		waitJS(t, p1, 5*time.Second, `streamdPlayer.chat.errors.some((e) => e.code === 'too_long') && !document.querySelector('.chat-notice').hidden`)
		eval[bool](t, p1, `(() => { for (let i = 0; i < 5; i++) streamdPlayer.overlay.send({type: 'chat', text: 'spam ' + i}); return true })()`)
		waitJS(t, p1, 5*time.Second, `streamdPlayer.chat.errors.some((e) => e.code === 'rate_limited')`)
		if code := api(t, "POST", base+"/api/streams/"+stream+"/chat", testStaff, map[string]any{"text": "still connected?"}, nil); code != 201 {
			t.Fatalf("staff message: %d", code)
		}
		waitJS(t, p1, 10*time.Second, hasMsg("still connected?"))
		if n := eval[int](t, p1, `streamdPlayer.chat.errors.length`); n < 3 {
			t.Fatalf("%d errors", n)
		}
		// The staff tidy up: the messages that got through are deleted.
		var st struct{ Messages []struct{ ID, Text string } }
		api(t, "GET", base+"/api/streams/"+stream+"/chat", testStaff, nil, &st)
		for _, m := range st.Messages {
			if strings.HasPrefix(m.Text, "spam") || m.Text == "still connected?" {
				if code := api(t, "DELETE", base+"/api/streams/"+stream+"/chat/"+m.ID, testStaff, nil, nil); code != 200 {
					t.Fatalf("delete: %d", code)
				}
			}
		}
		waitJS(t, p2, 10*time.Second, `![...document.querySelectorAll('.chat-text')].some((e) => e.textContent.startsWith('spam'))`)
	})

	t.Run("reactions", func(t *testing.T) {
		eval[bool](t, p2, `(() => { streamdPlayer.chat.reactionEvents.length = 0; return true })()`)
		start := eval[float64](t, p2, `performance.now()`)
		// 100 taps over 2.5 s on the heart.
		eval[bool](t, p1, `(() => { let n = 0; const b = document.querySelector('.react-btn'); const iv = setInterval(() => { b.click(); if (++n === 100) clearInterval(iv); }, 25); return true })()`)
		waitJS(t, p1, 5*time.Second, `document.querySelectorAll('.heart').length > 0`)
		time.Sleep(4 * time.Second)
		type rev struct {
			At     float64        `json:"at"`
			Counts map[string]int `json:"counts"`
		}
		evs := eval[[]rev](t, p2, `streamdPlayer.chat.reactionEvents`)
		total := 0
		for i, e := range evs {
			in := 0
			for _, f := range evs[i:] {
				if f.At-e.At < 1000 {
					in++
				}
			}
			if in > 4 {
				t.Fatalf("%d reactions messages within a second (from %.0f ms)", in, e.At-start)
			}
			total += e.Counts["❤️"]
		}
		if len(evs) == 0 || total == 0 {
			t.Fatal("no reactions reached the other viewer")
		}
		t.Logf("100 taps → %d reactions messages carrying %d hearts", len(evs), total)
		if n := eval[int](t, p2, `document.querySelectorAll('.heart').length`); n == 0 {
			t.Log("no hearts floating on the other viewer any more (they fade after ~3 s)")
		}
	})

	t.Run("showroom visitor", func(t *testing.T) {
		v := b.Visitor(t)
		viewport(t, v, 375, 667, 2)
		if err := browsertest.Open(v, base+"/visit/"+stream, "#chat-root"); err != nil {
			t.Fatal(err)
		}
		waitJS(t, v, 10*time.Second, `!!window.streamdVisit && streamdVisit.overlay.lastSeq !== null && !!document.querySelector('#chat-root .chat-input') && `+hasMsg("Does it come in M?"))
		say(t, v, "Is the mug dishwasher safe?")
		join(t, v, "Cleo")
		for _, tab := range []context.Context{v, p1} {
			waitJS(t, tab, 10*time.Second, hasMsg("Is the mug dishwasher safe?"))
		}
		artifact(t, v, "visit-chat.png")
	})

	t.Run("layout", func(t *testing.T) {
		if code := api(t, "POST", base+"/api/streams/"+stream+"/cards", testStaff, map[string]any{"action": "show", "product_id": "aurora"}, nil); code != 201 {
			t.Fatalf("card: %d", code)
		}
		api(t, "POST", base+"/api/streams/"+stream+"/chat", testStaff, map[string]any{"text": "Flash deal on the Aurora in one minute 🔥"}, nil)
		waitJS(t, p1, 10*time.Second, `!document.querySelector('.card').hidden && `+hasMsg("Flash deal on the Aurora in one minute 🔥"))
		time.Sleep(600 * time.Millisecond) // slide-in and the chat's move
		type box struct{ Chat, React, Card, Buy float64 }
		chk := eval[map[string]any](t, p1, `(() => {
			const r = (s) => document.querySelector(s).getBoundingClientRect();
			const card = r('.card'), buy = r('.card-buy');
			const hit = document.elementFromPoint(buy.left + buy.width / 2, buy.top + buy.height / 2);
			return { chatBottom: r('.chat').bottom, reactBottom: r('.react-bar').bottom, cardTop: card.top, buyHit: !!hit && !!hit.closest('.card-buy') };
		})()`)
		if chk["chatBottom"].(float64) > chk["cardTop"].(float64) || chk["reactBottom"].(float64) > chk["cardTop"].(float64) || chk["buyHit"] != true {
			t.Fatalf("the chat covers the card: %v", chk)
		}
		shot(t, p1, "player-chat.png")
		// Collapsed: only a pill is left.
		eval[bool](t, p1, `(() => { document.querySelector('.chat-toggle').click(); return true })()`)
		waitJS(t, p1, 5*time.Second, `document.querySelector('.chat').hidden && !document.querySelector('.chat-pill').hidden`)
		eval[bool](t, p1, `(() => { document.querySelector('.chat-pill').click(); return true })()`)
		waitJS(t, p1, 5*time.Second, `!document.querySelector('.chat').hidden`)
		eval[bool](t, console, `(() => { [...document.querySelectorAll('.cchat-msg')].find((l) => l.querySelector('.cchat-text').textContent === 'Does it come in M?').click(); return true })()`)
		time.Sleep(300 * time.Millisecond)
		shot(t, console, "console-chat.png")
		if !strings.Contains(eval[string](t, console, `document.querySelector('.cchat-pin-text').textContent`), "S to XL") {
			t.Fatal("console does not show the pin")
		}
	})
}

func openChatPlayer(t *testing.T, b *browsertest.Browser, base, stream string) context.Context {
	t.Helper()
	tab := b.Visitor(t)
	viewport(t, tab, 375, 667, 2)
	if err := browsertest.Open(tab, base+"/watch/"+stream, "#video"); err != nil {
		t.Fatalf("open player: %v", err)
	}
	waitJS(t, tab, 15*time.Second, `!!window.streamdPlayer && window.streamdPlayer.state === 'live' && window.streamdPlayer.overlay.lastSeq !== null`)
	return tab
}
