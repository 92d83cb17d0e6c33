import { createBuyerForm } from './buy-form.js';

// The buy sheet: a compact panel over the player (the video keeps playing
// underneath). Tapping Buy places the hold at once (a cart line, bound to
// the buyer cookie and the cart's secret); variant and quantity re-set it;
// the buyer's details (buy-form.js) are filled while it runs; Pay posts
// POST /api/checkout {cart_id, buyer, delivery} with an Idempotency-Key per attempt. Dev provider: the
// order is paid at once and the sheet says so, labelled test mode. Stripe
// (payment.client_secret): Stripe.js is loaded from js.stripe.com and the
// Payment Element mounted; when it cannot load the sheet says so (timeout).
//
// openBuySheet({root, card, cardId, available, deal, stream, source, serverNow, onSoldOut, onClose})
//   → {el, update(card, available, deal), close(), busy, state, timing}

const STRIPE_JS = 'https://js.stripe.com/v3/';
const STRIPE_TIMEOUT_MS = 8000;
const CHECKOUT_TIMEOUT_MS = 15000;

let configP = null;
const pickupP = new Map();
function sheetContext(stream) {
  if (!configP) configP = fetch('/api/config').then((r) => r.json()).catch(() => ({ payments: 'dev' }));
  if (!pickupP.has(stream)) pickupP.set(stream, fetch(`/api/streams/${encodeURIComponent(stream)}/pickup-point`).then((r) => (r.ok ? r.json() : null)).catch(() => null));
  return Promise.all([configP, pickupP.get(stream)]);
}

export const fmtMoney = (m) => {
  if (!m) return '';
  try {
    return new Intl.NumberFormat(undefined, { style: 'currency', currency: (m.currency || 'eur').toUpperCase() }).format(m.amount / 100);
  } catch { return `${(m.amount / 100).toFixed(2)} ${(m.currency || '').toUpperCase()}`; }
};

// variantPrice is what a unit of the card's variant costs without a deal:
// the variant's own price when it has one, else the card's.
export function variantPrice(card, skuId) {
  const s = (card.skus || []).find((x) => x && x.id === skuId);
  return (s && s.price) || card.price;
}

// lowestPrice is the card's price for a card whose variants are priced
// differently: the lowest of them, with varies set ("from €59.00").
export function lowestPrice(card) {
  let low = card.price, varies = false;
  for (const s of card.skus || []) {
    if (!s || !s.price || s.price.amount === card.price.amount) continue;
    varies = true;
    if (s.price.amount < low.amount) low = s.price;
  }
  return { price: low, varies };
}

// fmtFromPrice shows a product's (or card's) regular price: "from" the
// cheapest variant's when its variants are priced differently.
export function fmtFromPrice(p) {
  const low = lowestPrice(p);
  return (low.varies ? 'from ' : '') + fmtMoney(low.price);
}

export function uuid() {
  if (globalThis.crypto && crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// errorText turns a checkout failure into what the buyer should read.
export function errorText(status, body, deal) {
  const code = body && body.error;
  switch (code) {
    case 'sold_out':
      if (body.deal) return 'The deal sold out — someone was faster. Nothing was charged.';
      return body.available > 0 ? `Only ${body.available} left — lower the quantity.` : 'Sold out — this item is gone. Nothing was charged.';
    case 'limit_reached':
      return `Limit reached: ${body.limit} per buyer${body.deal ? ' at the deal price' : ''}. Nothing was charged.`;
    case 'inactive': return 'This item is no longer on sale.';
    case 'hold_expired': case 'expired': return 'Your reservation expired — tap Buy to try again.';
    case 'payment_failed': return 'The payment failed — nothing was charged. Try again.';
    case 'sku_required': return 'Pick a variant first.';
    case 'not_found': return 'This item is no longer available.';
    default:
      if (status === 429) return 'Too many attempts — wait a moment and try again.';
      if (status >= 500) return 'The shop is having trouble right now — try again in a moment.';
      return (body && body.message) || `Checkout failed (HTTP ${status}).`;
  }
}

export function openBuySheet(opts) {
  const { root, stream, source = 'player', onSoldOut, onClose } = opts;
  let card = opts.card, avail = opts.available, deal = opts.deal;
  let state = 'form'; // form | busy | paid | pay | error
  let key = null; // kept across a network failure: a retry is the same attempt
  let busy = false;
  const timing = {};
  const skus = (card.skus || []).filter((s) => s && s.id);
  let sku = (skus.find((s) => s.available > 0) || skus[0] || {}).id;
  let qty = 1;
  let buyer = null; // buyer details, once /api/config said which payments
  let cart = null; // {id, secret}: the hold placed at the tap
  let held = null; // {sku, qty} the cart line holds
  let holdP = Promise.resolve();
  let holdErr = null;
  let closed = false; // no hold may be placed after close (the sheet stays in the DOM for its slide-out)
  timing.tap = performance.now();

  const wrap = document.createElement('div');
  wrap.className = 'sheet-wrap';
  wrap.innerHTML = `
    <div class="sheet-scrim"></div>
    <section class="sheet" role="dialog" aria-modal="true" aria-label="Buy">
      <header class="sheet-head">
        <div class="sheet-thumb"></div>
        <div class="sheet-head-text"><div class="sheet-title"></div><div class="sheet-price"></div></div>
        <button type="button" class="sheet-x" aria-label="Close">✕</button>
      </header>
      <div class="sheet-form">
        <div class="sheet-row sheet-variants" hidden><div class="sheet-label">Variant</div><div class="chips"></div></div>
        <div class="sheet-row"><div class="sheet-label">Quantity</div>
          <div class="stepper"><button type="button" class="qty-minus" aria-label="Less">−</button><output class="qty">1</output><button type="button" class="qty-plus" aria-label="More">+</button></div>
        </div>
        <div class="sheet-buyer"></div>
        <div class="sheet-row sheet-total-row"><div class="sheet-label">Total</div><div class="sheet-total"></div></div>
        <div class="sheet-msg" role="alert" hidden></div>
        <button type="button" class="sheet-pay">Pay</button>
        <div class="sheet-fine"></div>
      </div>
      <div class="sheet-stripe" hidden><div class="stripe-link"></div><div class="stripe-address"></div><div class="stripe-element"></div><button type="button" class="sheet-stripe-pay">Pay now</button></div>
      <div class="sheet-done" hidden></div>
    </section>`;
  root.appendChild(wrap);
  const q = (s) => wrap.querySelector(s);
  const form = q('.sheet-form'), pay = q('.sheet-pay'), msg = q('.sheet-msg'), done = q('.sheet-done');
  const qtyEl = q('.qty'), minus = q('.qty-minus'), plus = q('.qty-plus'), totalEl = q('.sheet-total');
  const chips = q('.chips');
  requestAnimationFrame(() => wrap.classList.add('open'));

  // A deal prices every variant alike; else the chosen variant's price.
  function regularPrice() { return variantPrice(card, sku); }
  function unitPrice() { return deal ? deal.price : regularPrice(); }
  // avail is what the server says is for sale now; the units this sheet
  // holds are not in it, and they are this buyer's. Without adding them back
  // the buyer holding a deal's last unit read "Sold out" on their own sheet
  // and could not pay. (Until the stock event the hold causes arrives, at
  // most StockInterval later, the hold counts twice: the stepper may offer
  // one step the server then refuses, saying how many are left.)
  function mine() { return held ? held.qty : 0; }
  function maxQty() {
    const own = mine();
    let m = Math.min(10, Math.max(1, avail + own));
    const s = skus.find((x) => x.id === sku);
    if (s && typeof s.available === 'number') m = Math.min(m, Math.max(1, own, s.available));
    if (deal && deal.quantity) m = Math.min(m, typeof deal.remaining === 'number' ? Math.max(1, own, deal.remaining) : deal.quantity);
    // The per-buyer limits: the stepper stops there rather than Pay refusing.
    if (card.per_buyer > 0) m = Math.min(m, card.per_buyer);
    if (deal && deal.per_buyer > 0) m = Math.min(m, deal.per_buyer);
    return m;
  }
  function renderHead() {
    const thumb = q('.sheet-thumb');
    thumb.innerHTML = '';
    if (card.image) { const i = document.createElement('img'); i.src = card.image; i.alt = ''; thumb.appendChild(i); }
    else thumb.textContent = (card.title || '?').charAt(0).toUpperCase();
    q('.sheet-title').textContent = card.title;
    const p = q('.sheet-price');
    p.textContent = fmtMoney(unitPrice());
    if (deal) { const s = document.createElement('s'); s.textContent = fmtMoney(regularPrice()); p.append(' ', s); p.classList.add('deal'); } else p.classList.remove('deal');
  }
  function renderForm() {
    renderHead();
    q('.sheet-variants').hidden = !skus.length;
    chips.innerHTML = '';
    for (const s of skus) {
      const b = document.createElement('button');
      b.type = 'button'; b.className = 'chip'; b.textContent = s.title || s.id;
      b.setAttribute('aria-pressed', String(s.id === sku));
      b.disabled = s.available <= 0 || busy;
      b.onclick = () => { sku = s.id; qty = Math.min(qty, maxQty()); key = null; renderForm(); rehold(); };
      chips.appendChild(b);
    }
    qty = Math.max(1, Math.min(qty, maxQty()));
    qtyEl.textContent = String(qty);
    minus.disabled = busy || qty <= 1;
    plus.disabled = busy || qty >= maxQty();
    const u = unitPrice();
    totalEl.textContent = fmtMoney({ amount: u.amount * qty, currency: u.currency });
    const soldOut = avail + mine() <= 0;
    pay.disabled = busy || soldOut || !buyer;
    pay.textContent = busy ? 'Placing order…' : soldOut ? 'Sold out' : `Pay ${fmtMoney({ amount: u.amount * qty, currency: u.currency })}`;
    pay.classList.toggle('loading', busy);
    q('.sheet-fine').textContent = held ? 'Reserved for you while you fill this in.' : deal ? 'Deal price is locked in when you tap Pay.' : 'Stock is reserved for you while you pay.';
  }
  function showMsg(text, kind = 'error') {
    msg.hidden = !text;
    msg.textContent = text || '';
    msg.dataset.kind = kind;
  }
  minus.onclick = () => { qty--; key = null; renderForm(); rehold(); };
  plus.onclick = () => { qty++; key = null; renderForm(); rehold(); };

  // The hold: a cart line for this product, placed at the tap and re-set
  // when the variant or quantity changes (calls run one after another).
  function cartFetch(method, path, body) {
    const headers = { 'X-Cart-Secret': cart ? cart.secret : '' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    return fetch(path, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body), keepalive: method === 'DELETE' });
  }
  async function placeHold() {
    if (closed || !wrap.isConnected) return;
    const want = { sku: skus.length ? sku : '', qty };
    if (held && held.sku === want.sku && held.qty === want.qty) return;
    try {
      if (!cart) {
        const r = await fetch('/api/carts', { method: 'POST', credentials: 'same-origin' });
        const c = await r.json();
        if (!r.ok) throw Object.assign(new Error('cart'), { status: r.status, body: c });
        cart = { id: c.cart_id, secret: c.secret };
      }
      if (held && held.sku !== want.sku) {
        await cartFetch('DELETE', `/api/carts/${cart.id}/items/${encodeURIComponent(card.product_id)}?sku=${encodeURIComponent(held.sku)}`);
        held = null;
      }
      const item = { product_id: card.product_id, quantity: want.qty };
      if (want.sku) item.sku = want.sku;
      const r = await cartFetch('PUT', `/api/carts/${cart.id}/items`, item);
      const data = await r.json().catch(() => null);
      if (r.status === 404 && data && data.error === 'not_found' && !data.product_id) { cart = null; held = null; return placeHold(); }
      if (!r.ok) throw Object.assign(new Error('hold'), { status: r.status, body: data });
      held = want; holdErr = null;
      timing.held = performance.now();
      if (state === 'form') renderForm();
    } catch (e) {
      holdErr = e;
      if (!wrap.isConnected) return;
      const text = e.status ? errorText(e.status, e.body, deal) : 'Network problem — check your connection.';
      if (e.body && e.body.error === 'sold_out' && onSoldOut) onSoldOut(!!e.body.deal, e.body.available);
      showMsg(text);
    }
  }
  function rehold() { holdP = holdP.then(placeHold); return holdP; }
  rehold();
  sheetContext(stream).then(([cfg, pickup]) => {
    if (!wrap.isConnected) return;
    buyer = createBuyerForm(q('.sheet-buyer'), { source, stripe: cfg && cfg.payments === 'stripe', pickup });
    renderForm();
  });

  function close() {
    if (closed || !wrap.isConnected) return;
    closed = true;
    if (state !== 'paid' && state !== 'pay') {
      // Not bought: the stock goes back now, not when the hold runs out.
      // Released after the hold calls still in flight (a quick tap on +
      // then ✕), or the line they place would stay held until it expires.
      holdP = holdP.then(() => {
        if (!cart || !held) return;
        const h = held;
        held = null;
        return cartFetch('DELETE', `/api/carts/${cart.id}/items/${encodeURIComponent(card.product_id)}?sku=${encodeURIComponent(h.sku)}`).catch(() => {});
      });
    }
    wrap.classList.remove('open');
    setTimeout(() => wrap.remove(), 200);
    if (onClose) onClose();
  }
  q('.sheet-x').onclick = close;
  q('.sheet-scrim').onclick = () => { if (!busy) close(); };

  async function checkout() {
    if (busy || !buyer) return;
    if (!buyer.check()) return;
    busy = true; state = 'busy';
    timing.pay = performance.now();
    showMsg('');
    renderForm();
    await rehold();
    if (holdErr || !cart) { busy = false; state = 'error'; renderForm(); return; }
    if (!key) key = uuid();
    const body = { cart_id: cart.id, stream, source, ...buyer.values() };
    if (opts.cardId !== undefined) body.card = opts.cardId;
    const ctl = new AbortController();
    const to = setTimeout(() => ctl.abort(), CHECKOUT_TIMEOUT_MS);
    let res, data = null;
    try {
      res = await fetch('/api/checkout', {
        method: 'POST', signal: ctl.signal, credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'Idempotency-Key': key, 'X-Cart-Secret': cart.secret },
        body: JSON.stringify(body),
      });
      try { data = await res.json(); } catch { data = null; }
    } catch (e) {
      clearTimeout(to);
      busy = false; state = 'error';
      showMsg(e.name === 'AbortError' ? 'The shop did not answer in time. Tap Pay to try again — you will not be charged twice.' : 'Network problem — check your connection and tap Pay again. You will not be charged twice.');
      renderForm();
      return;
    }
    clearTimeout(to);
    busy = false;
    if (res.status === 201 || res.status === 200) {
      key = null;
      buyer.save();
      const p = (data && data.payment) || {};
      if (p.client_secret) { await stripeFlow(data); return; }
      if (data.status === 'paid' || p.provider === 'dev') { confirmed(data); return; }
      state = 'error'; showMsg(`Order ${shortRef(data.order_id)} is ${data.status}.`, 'info'); renderForm(); return;
    }
    key = null; state = 'error';
    timing.error = performance.now();
    if (data && data.error === 'invalid_buyer') { buyer.showErrors(data.fields); showMsg('Check the highlighted fields.'); renderForm(); return; }
    if (res.status === 404) { cart = null; held = null; rehold(); }
    const text = errorText(res.status, data, deal);
    showMsg(text);
    if (data && data.error === 'sold_out' && onSoldOut) onSoldOut(!!data.deal, data.available);
    renderForm();
  }
  pay.onclick = checkout;

  function confirmed(order) {
    state = 'paid';
    timing.confirmed = performance.now();
    form.hidden = true;
    q('.sheet-stripe').hidden = true;
    done.hidden = false;
    const test = order.payment && order.payment.test_mode;
    done.innerHTML = `
      <div class="done-check">✓</div>
      <div class="done-title">Order confirmed</div>
      <div class="done-sub"></div>
      ${test ? '<div class="test-mode">TEST MODE · no real payment was taken</div>' : ''}
      <div class="done-code" hidden><img alt="Pickup QR code"><b></b><div class="muted">Show this at the showroom desk</div></div>
      <a class="done-link" target="_blank" rel="noopener">See your order ›</a>
      <button type="button" class="sheet-ok">${source === 'showroom' ? 'Done' : 'Keep watching'}</button>`;
    done.querySelector('.done-sub').textContent = `${fmtMoney(order.total)} · order #${shortRef(order.order_id).toUpperCase()}` +
      (order.buyer && order.buyer.email ? ` · receipt to ${order.buyer.email}` : '');
    if (order.pickup_code) {
      const c = done.querySelector('.done-code');
      c.hidden = false;
      c.querySelector('img').src = `/api/orders/${encodeURIComponent(order.order_id)}/pickup.png?t=${encodeURIComponent(order.secret || '')}`;
      c.querySelector('b').textContent = order.pickup_code;
    }
    const link = done.querySelector('.done-link');
    if (order.order_url) link.href = order.order_url; else link.remove();
    done.querySelector('.sheet-ok').onclick = close;
    wrap.dataset.order = order.order_id;
  }

  async function stripeFlow(order) {
    state = 'pay';
    const p = order.payment;
    let pk = p.publishable_key || globalThis.STREAMD_STRIPE_KEY || document.querySelector('meta[name="stripe-key"]')?.content;
    if (!pk) {
      try { pk = (await (await fetch('/api/config')).json()).stripe_publishable_key; } catch { /* unreachable: said below */ }
    }
    const unavailable = (why) => {
      state = 'error';
      showMsg(`Card payment is unavailable right now (${why}). Your items stay reserved for a few minutes; nothing was charged.`);
      renderForm();
    };
    if (!pk) { unavailable('payments are not configured'); return; }
    showMsg('Loading secure payment…', 'info');
    let Stripe;
    try { Stripe = await loadStripe(STRIPE_TIMEOUT_MS); } catch { unavailable('could not reach Stripe'); return; }
    try {
      const stripe = Stripe(pk);
      const elements = stripe.elements({ clientSecret: p.client_secret });
      const pe = elements.create('payment');
      const box = q('.sheet-stripe');
      form.hidden = true; box.hidden = false; showMsg('');
      // Stripe's way: email through Link's authentication element (the
      // receipt goes there), the address through the Address Element in
      // shipping mode (confirmPayment puts it on the PaymentIntent).
      let email = '';
      const le = elements.create('linkAuthentication');
      le.on('change', (ev) => { email = (ev.value && ev.value.email) || ''; });
      le.mount(box.querySelector('.stripe-link'));
      if (buyer.method === 'ship') elements.create('address', { mode: 'shipping' }).mount(box.querySelector('.stripe-address'));
      pe.mount(box.querySelector('.stripe-element'));
      box.querySelector('.sheet-stripe-pay').onclick = async (ev) => {
        ev.target.disabled = true;
        const confirmParams = { return_url: location.href };
        if (email) confirmParams.receipt_email = email;
        const r = await stripe.confirmPayment({ elements, redirect: 'if_required', confirmParams });
        ev.target.disabled = false;
        if (r.error) { const m = document.createElement('div'); m.className = 'sheet-msg'; m.textContent = r.error.message; box.prepend(m); return; }
        confirmed({ ...order, status: 'authorized' });
      };
    } catch { form.hidden = false; unavailable('Stripe failed to start'); }
  }

  renderForm();
  return {
    el: wrap,
    get busy() { return busy; },
    get state() { return state; },
    timing,
    update(c, n, d) {
      if (!wrap.isConnected || c.product_id !== card.product_id) return;
      card = c; avail = n; deal = d;
      if (state === 'form' || state === 'error') renderForm(); else renderHead();
    },
    close,
  };
}

function shortRef(id) { return (id || '').slice(0, 8); }

let stripePromise = null;
function loadStripe(timeoutMs) {
  if (globalThis.Stripe) return Promise.resolve(globalThis.Stripe);
  if (!stripePromise) {
    stripePromise = new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = STRIPE_JS; s.async = true;
      const t = setTimeout(() => { reject(new Error('timeout')); }, timeoutMs);
      s.onload = () => { clearTimeout(t); globalThis.Stripe ? resolve(globalThis.Stripe) : reject(new Error('no Stripe')); };
      s.onerror = () => { clearTimeout(t); reject(new Error('load failed')); };
      document.head.appendChild(s);
    }).catch((e) => { stripePromise = null; throw e; });
  }
  return stripePromise;
}
