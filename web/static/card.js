// The product card over the player (and on the visitor page).
// createCardView(root, player) returns {show(card, meta), stock(productId, available),
// setStock(map)}. show(null) hides it. Kept separate from the sync logic
// (player.js): this module only draws what it is told, when it is told.
//
// The card shows image, title, price (deal price + struck regular price),
// live stock ("3 left", "Sold out"), a flash-deal countdown and a Buy button
// that opens the buy sheet (buy.js). The countdown runs on the server clock
// (player.serverNow(), synced from overlay pings) against deal.ends_at_ms,
// so it reaches zero at the same instant on every screen.
//
// player (all optional): {streamId, serverNow(), source ("player"|"showroom"), sheetRoot}
import { openBuySheet, fmtMoney, fmtFromPrice, lowestPrice } from './buy.js';

export function createCardView(root, player = {}) {
  const el = document.createElement('div');
  el.className = 'card';
  el.hidden = true;
  root.appendChild(el);

  let current = null; // card JSON
  let meta = null; // overlay event/snapshot the card came with
  let timer = null;
  let lastShownSec = null;
  const stockOf = {};
  const dealSoldOut = new Set(); // deal ends_at_ms values this client learned were exhausted
  const zeroAt = {}; // ends_at_ms → serverNow() when the countdown displayed 0 (tests)
  let sheet = null;

  const now = () => (player.serverNow ? player.serverNow() : Date.now());
  const available = (c) => {
    const n = stockOf[c.product_id] ?? c.available;
    return typeof n === 'number' ? n : 0;
  };
  const dealActive = (c) => !!(c && c.deal && c.deal.ends_at_ms > now());

  // Static skeleton; render() only updates text and states.
  el.innerHTML = `
    <div class="card-media"><img alt="" hidden><div class="card-ph" hidden></div><span class="card-flash" hidden><svg class="ico" viewBox="0 0 24 24" width="10" height="10" fill="currentColor"><path d="M13 2L4 10h7l-1 8 9-12h-7l1-8z"/></svg> Deal</span></div>
    <div class="card-body">
      <div class="card-title"></div>
      <div class="card-price"><span class="card-now"></span><s class="card-was"></s></div>
      <div class="card-meta"><span class="card-stock"></span><span class="card-timer" hidden></span></div>
    </div>
    <button type="button" class="card-buy">Buy</button>`;
  const q = (s) => el.querySelector(s);
  const img = q('img'), ph = q('.card-ph'), flash = q('.card-flash'), title = q('.card-title');
  const priceNow = q('.card-now'), priceWas = q('.card-was'), stockEl = q('.card-stock'), timerEl = q('.card-timer');
  const buy = q('.card-buy');

  function render() {
    if (!current) { el.hidden = true; delete el.dataset.product; stopTimer(); return; }
    const c = current;
    el.hidden = false;
    el.dataset.product = c.product_id;
    if (c.image) {
      if (img.getAttribute('src') !== c.image) img.src = c.image;
      img.hidden = false; ph.hidden = true;
    } else {
      img.hidden = true; ph.hidden = false;
      ph.textContent = (c.title || '?').trim().charAt(0).toUpperCase();
    }
    title.textContent = c.title || c.product_id;
    const deal = dealActive(c) ? c.deal : null;
    el.classList.toggle('has-deal', !!deal);
    flash.hidden = !deal;
    // Variants priced differently: "from" the lowest (the buy sheet shows
    // the chosen variant's price); a deal prices them all alike.
    priceNow.textContent = deal ? fmtMoney(deal.price) : fmtFromPrice(c);
    priceWas.textContent = deal ? fmtMoney(lowestPrice(c).price) : '';
    priceWas.hidden = !deal;

    const n = available(c);
    const dealGone = deal && dealSoldOut.has(deal.ends_at_ms);
    const soldOut = n <= 0 || dealGone;
    el.classList.toggle('sold-out', soldOut);
    el.dataset.available = String(n);
    if (n <= 0) stockEl.textContent = 'Sold out';
    else if (dealGone) stockEl.textContent = 'Deal sold out';
    else if (deal && deal.quantity) stockEl.textContent = `${Math.min(n, deal.remaining ?? deal.quantity)} at the deal price`;
    else stockEl.textContent = n <= 5 ? `Only ${n} left` : `${n} left`;
    stockEl.classList.toggle('low', n > 0 && n <= 5);

    buy.disabled = soldOut;
    buy.textContent = soldOut ? 'Sold out' : 'Buy';
    if (deal) startTimer(); else { timerEl.hidden = true; stopTimer(); }
    if (sheet) sheet.update(c, n, deal);
  }

  // The countdown: shows ceil(remaining) seconds; ticks are scheduled on the
  // boundaries of the server clock so that "0" appears at ends_at_ms exactly.
  function tick() {
    timer = null;
    const c = current;
    if (!c || !c.deal) return;
    const ms = c.deal.ends_at_ms - now();
    const sec = Math.max(0, Math.ceil(ms / 1000));
    if (sec !== lastShownSec) {
      lastShownSec = sec;
      timerEl.hidden = false;
      timerEl.textContent = sec > 0 ? `Ends in ${fmtClock(sec)}` : 'Deal ended';
      timerEl.classList.toggle('urgent', sec > 0 && sec <= 10);
      timerEl.dataset.sec = String(sec);
      if (sec === 0 && !(c.deal.ends_at_ms in zeroAt)) {
        zeroAt[c.deal.ends_at_ms] = now();
        el.dispatchEvent(new CustomEvent('deal-ended', { detail: { ends_at_ms: c.deal.ends_at_ms, at: zeroAt[c.deal.ends_at_ms] } }));
      }
    }
    if (ms <= 0) {
      // The deal is over: back to the regular price (the checkout agrees).
      setTimeout(() => { if (current === c) { timerEl.hidden = true; render(); } }, 1500);
      return;
    }
    const toNext = ms - (sec - 1) * 1000; // ms until the displayed second changes
    timer = setTimeout(tick, Math.max(4, Math.min(toNext, 1000)));
  }
  function startTimer() { if (!timer) tick(); }
  function stopTimer() { clearTimeout(timer); timer = null; lastShownSec = null; }

  buy.addEventListener('click', () => {
    if (!current || buy.disabled) return;
    const c = current;
    const deal = dealActive(c) ? c.deal : null;
    sheet = openBuySheet({
      root: player.sheetRoot || document.getElementById('sheet-root') || document.body,
      card: c,
      cardId: cardIdOf(meta),
      available: available(c),
      deal,
      stream: player.streamId,
      source: player.source || 'player',
      serverNow: now,
      onSoldOut: (isDeal, n) => {
        if (isDeal && deal) dealSoldOut.add(deal.ends_at_ms);
        else if (typeof n === 'number') stockOf[c.product_id] = n;
        render();
      },
      onClose: () => { sheet = null; },
    });
    player.sheet = sheet;
  });

  return {
    el,
    get current() { return current; },
    get meta() { return meta; },
    get cardId() { return cardIdOf(meta); },
    zeroAt,
    show(card, m) {
      const sameDeal = current && card && current.deal && card.deal && current.deal.ends_at_ms === card.deal.ends_at_ms;
      if (!sameDeal) stopTimer();
      current = card || null;
      meta = card ? (m || null) : null;
      if (!card && sheet && (sheet.state === 'form' || sheet.state === 'error')) sheet.close();
      render();
    },
    stock(pid, n) {
      stockOf[pid] = n;
      if (current && current.product_id === pid) render(); // other products: kept for when shown
    },
    setStock(map) { Object.assign(stockOf, map || {}); render(); },
  };
}

// cardIdOf: the card event id for sale attribution (event: id, snapshot: card_id).
function cardIdOf(m) {
  if (!m) return undefined;
  if (m.type === 'snapshot') return m.card_id || undefined;
  return m.id || m.card_id || undefined;
}

function fmtClock(s) {
  const m = Math.floor(s / 60);
  return m ? `${m}:${String(s % 60).padStart(2, '0')}` : `${s}s`;
}
