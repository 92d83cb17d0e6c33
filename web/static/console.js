// The staff console (/console/{stream}): touch-first, for a tablet next to
// the host. Sign in with the staff token (kept in this tab's sessionStorage,
// never in a URL), watch the live preview, pin a product's card with one tap,
// start a flash deal on it, and follow orders and stock as they happen.
import { whepPlay } from './webrtc.js';
import { connectOverlay } from './overlay-client.js';
import { toast as showToast } from './toast.js';
import { fmtMoney, fmtFromPrice, uuid, lowestPrice } from './buy.js';

const streamId = decodeURIComponent(location.pathname.split('/').filter(Boolean).pop());
document.getElementById('qr').href = `/visit/${encodeURIComponent(streamId)}/qr.png`;
document.getElementById('orders-link').href = `/console/${encodeURIComponent(streamId)}/orders`;
document.getElementById('products-link').href = `/console/${encodeURIComponent(streamId)}/products`;
const $ = (id) => document.getElementById(id);
const TOKEN_KEY = 'streamd.staff';
const ICON = {
  bag: '<svg class="ico" viewBox="0 0 24 24" width="18" height="18" fill="none" stroke="currentColor" stroke-width="2"><path d="M6 7h12l-1 13H7L6 7z"/><path d="M9 7a3 3 0 0 1 6 0"/></svg>',
  box: '<svg class="ico" viewBox="0 0 24 24" width="18" height="18" fill="none" stroke="currentColor" stroke-width="2"><path d="M3 7l9-4 9 4-9 4-9-4z"/><path d="M3 7v10l9 4 9-4V7"/><path d="M12 11v10"/></svg>',
  bolt: '<svg class="ico" viewBox="0 0 24 24" width="14" height="14" fill="currentColor"><path d="M13 2L4 14h7l-1 8 9-12h-7l1-8z"/></svg>',
};

let token = ''; // the staff token: this module and sessionStorage only
const S = {
  stream: null,
  products: new Map(), // id → product
  order: [], // product ids in display order
  stockOf: {},
  dealLeft: {}, // product id → units left at the deal price (capped deals)
  stockGen: {}, // product id → bumped by every stock figure seen, so an older re-read loses
  soldOf: {}, // product id → units in this show's paid orders
  pinned: null, // card JSON on screen now (from the overlay)
  pinnedId: '', // its event id
  live: false,
  orders: new Map(), // ref → order summary
  inFlight: new Set(),
  overlay: null,
  feedCount: 0,
};
window.streamdConsole = S;

// ── API ────────────────────────────────────────────────────────────────
async function api(method, path, body, { idem } = {}) {
  const headers = { Authorization: 'Bearer ' + token };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (idem) headers['Idempotency-Key'] = idem;
  const ctl = new AbortController();
  const t = setTimeout(() => ctl.abort(), 10000);
  try {
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: ctl.signal, cache: 'no-store' });
    let data = null;
    try { data = await res.json(); } catch { /* empty */ }
    return { ok: res.ok, status: res.status, data };
  } catch (e) {
    return { ok: false, status: 0, data: { error: 'network', message: e.name === 'AbortError' ? 'the server did not answer in time' : 'network problem — check the connection' } };
  } finally { clearTimeout(t); }
}
const errMsg = (r) => (r.data && (r.data.message || r.data.error)) || `HTTP ${r.status}`;

function toast(text, kind = 'ok') { S.lastToast = showToast(text, kind); }

// ── Sign in ────────────────────────────────────────────────────────────
async function signIn(tok, quiet) {
  token = tok;
  $('signin-go').disabled = true;
  $('signin-error').hidden = true;
  const r = await api('GET', `/api/streams/${encodeURIComponent(streamId)}`);
  $('signin-go').disabled = false;
  if (!r.ok) {
    token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    if (quiet && r.status === 401) return;
    const e = $('signin-error');
    e.hidden = false;
    e.textContent = r.status === 401 ? 'Wrong staff token — check it and try again.'
      : r.status === 404 ? `There is no stream “${streamId}” on this server.` : `Could not sign in: ${errMsg(r)}`;
    S.signinError = e.textContent;
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, tok);
  $('token').value = '';
  S.stream = r.data;
  $('signin').hidden = true;
  $('console').hidden = false;
  start();
}
$('signin-title').textContent = `Sign in to “${streamId}”`;
$('signin-form').addEventListener('submit', (e) => { e.preventDefault(); signIn($('token').value.trim()); });
$('signout').addEventListener('click', () => { sessionStorage.removeItem(TOKEN_KEY); location.reload(); });
const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) signIn(saved, true);
else $('token').focus();

// ── Running ────────────────────────────────────────────────────────────
let started = false;
async function start() {
  if (started) return;
  started = true;
  $('title').textContent = S.stream.title || streamId;
  setLive(!!S.stream.live);
  setViewers(S.stream.viewers);
  setWarnings(S.stream);
  loadProducts();
  loadOrders();
  // A private stream's socket needs a viewer credential; a WebSocket cannot
  // send headers, so the console takes a short viewer link (not the staff
  // token) for its URL.
  const link = S.stream.private ? ((await api('POST', `/api/streams/${encodeURIComponent(streamId)}/links`, { ttl_s: 43200 })).data || {}).token : '';
  S.overlay = connectOverlay(streamId, {
    onSnapshot: (m) => { setLive(m.live); Object.assign(S.stockOf, m.stock || {}); setPinned(m.card, m.card_id); renderGrid(); },
    onCard: (m) => setPinned(m.action === 'hide' ? null : m.card, m.id),
    onStock: (m) => stockChanged(m.product_id, m.available),
    onLive: (m) => setLive(m.live),
    onEvent: (m) => {
      if (m.type === 'order' && m.order) { orderEvent(m.order, true); analyticsSoon(); }
      if (m.type === 'catalog') loadProducts(); // edited in the catalog editor: no reload needed
    },
  }, { token: link });
  setInterval(pollStream, 3000);
  loadAnalytics();
  setInterval(loadAnalytics, 10000);
  preview();
  setInterval(tickDeal, 200);
}

async function pollStream() {
  const r = await api('GET', `/api/streams/${encodeURIComponent(streamId)}`);
  if (r.ok) { setViewers(r.data.viewers); setWarnings(r.data); if (typeof r.data.live === 'boolean' && r.data.live !== S.live) setLive(r.data.live); }
  else if (r.status === 401) { toast('Your session is no longer valid — sign in again.', 'error'); sessionStorage.removeItem(TOKEN_KEY); }
}
// Per-card sales (GET /api/streams/{id}/analytics): what the card on screen sold.
let analyticsTimer = null;
function analyticsSoon() { clearTimeout(analyticsTimer); analyticsTimer = setTimeout(loadAnalytics, 400); }
async function loadAnalytics() {
  loadSold();
  const r = await api('GET', `/api/streams/${encodeURIComponent(streamId)}/analytics?limit=2000`);
  if (!r.ok) return;
  S.analytics = {};
  for (const c of r.data.cards || []) S.analytics[c.card] = c;
  if (S.pinned) renderSales();
}
// The sold figures come from the server (paid units per product of this
// show, refunds left out), never from adding up order events here.
async function loadSold() {
  const r = await api('GET', `/api/streams/${encodeURIComponent(streamId)}/sold`);
  if (!r.ok) return;
  S.soldOf = r.data.sold || {};
  renderStats();
  if (S.pinned) renderOnAir();
  renderGrid(); // the tiles show it too, pinned card or not
}
function renderSales() {
  const el = document.querySelector('.onair-sales');
  if (!el) return;
  const c = S.analytics && S.pinnedId ? S.analytics[S.pinnedId] : null;
  el.classList.toggle('has-sales', !!(c && c.orders));
  el.textContent = c && c.orders ? `This card: ${c.orders} order${c.orders > 1 ? 's' : ''} · ${c.units} unit${c.units > 1 ? 's' : ''} · ${(c.revenue || []).map(fmtMoney).join(' + ')}` : 'No sales from this card yet';
}

// Stream warnings (AAC audio, B-frames, a camera that cannot be reached)
// where staff look: the live header; a tap shows them in full.
function setWarnings(st) {
  const list = [...(st.warnings || [])];
  if (st.source_error) list.push(`Source: ${st.source_error}`);
  S.warnings = list;
  const el = $('warnings');
  el.hidden = !list.length;
  el.textContent = list.length ? `⚠ ${list.length > 1 ? `${list.length} warnings` : list[0]}` : '';
  el.title = list.join('\n');
}
$('warnings').addEventListener('click', () => { for (const w of S.warnings || []) toast(w, 'error'); });

function setViewers(n) { $('viewers').textContent = typeof n === 'number' ? String(n) : '–'; }
function setLive(live) {
  S.live = !!live;
  const p = $('live');
  p.dataset.live = String(S.live);
  p.textContent = S.live ? '● LIVE' : 'Offline';
  $('preview-off').hidden = S.live;
}

async function preview() {
  const video = $('preview');
  for (;;) {
    try {
      const s = await whepPlay(`${location.origin}/whep/${encodeURIComponent(streamId)}`, { token, onStream: (ms) => { if (video.srcObject !== ms) video.srcObject = ms; } });
      S.preview = s;
      await new Promise((resolve) => s.pc.addEventListener('connectionstatechange', () => { if (['failed', 'closed'].includes(s.pc.connectionState)) resolve(); }));
      s.close();
    } catch { /* not live yet or network: retry */ }
    await new Promise((r) => setTimeout(r, 2000));
  }
}
window.addEventListener('pagehide', () => S.preview && S.preview.close());

// ── Products ───────────────────────────────────────────────────────────
async function loadProducts() {
  const r = await api('GET', '/api/products');
  if (!r.ok) { toast('Could not load products: ' + errMsg(r), 'error'); return; }
  S.products.clear();
  S.order = [];
  for (const p of r.data.products || []) {
    S.products.set(p.id, p);
    S.order.push(p.id);
    if (!(p.id in S.stockOf)) S.stockOf[p.id] = p.available;
  }
  renderGrid();
  S.ready = true;
}
$('search').addEventListener('input', renderGrid);

function renderGrid() {
  const grid = $('grid');
  const term = $('search').value.trim().toLowerCase();
  const pinned = S.pinned && S.pinned.product_id;
  grid.innerHTML = '';
  let shown = 0;
  for (const id of S.order) {
    const p = S.products.get(id);
    if (term && !(`${p.title} ${p.id} ${p.description || ''}`.toLowerCase().includes(term))) continue;
    shown++;
    const avail = S.stockOf[id] ?? p.available;
    const tile = document.createElement('button');
    tile.type = 'button';
    tile.className = 'tile';
    tile.dataset.product = id;
    tile.dataset.pinned = String(id === pinned);
    tile.disabled = S.inFlight.has(id);
    if (p.active === false) tile.classList.add('inactive');
    const img = p.images && p.images[0];
    tile.innerHTML = `<div class="tile-img">${img ? '<img alt="">' : '<span class="tile-ph"></span>'}</div>
      <div class="tile-body"><div class="tile-title"></div><div class="tile-price"></div>
      <div class="tile-stock"></div></div><div class="tile-flag"></div>`;
    if (img) tile.querySelector('img').src = img;
    else tile.querySelector('.tile-ph').textContent = (p.title || '?').charAt(0).toUpperCase();
    tile.querySelector('.tile-title').textContent = p.title;
    tile.querySelector('.tile-price').textContent = fmtFromPrice(p);
    const st = tile.querySelector('.tile-stock');
    st.textContent = avail <= 0 ? 'Sold out' : `${avail} in stock` + (S.soldOf[id] ? ` · ${S.soldOf[id]} sold` : '');
    if (dealCap(id) && S.dealLeft[id] !== undefined) st.textContent += ` · ${S.dealLeft[id]} at the deal price`;
    st.classList.toggle('out', avail <= 0);
    st.classList.toggle('low', avail > 0 && avail <= 5);
    tile.querySelector('.tile-flag').textContent = S.inFlight.has(id) ? 'Sending…' : id === pinned ? '● On screen' : 'Show';
    tile.setAttribute('aria-label', `${p.title}: ${id === pinned ? 'on screen, tap to hide' : 'tap to show'}`);
    tile.addEventListener('click', () => tapProduct(id));
    grid.appendChild(tile);
  }
  if (!shown) grid.innerHTML = `<p class="muted grid-empty">${S.order.length ? 'No product matches.' : 'No products yet — add some under Products.'}</p>`;
}

async function tapProduct(id) {
  if (S.inFlight.has(id)) return; // a double tap while the first is in flight
  const hide = S.pinned && S.pinned.product_id === id;
  S.inFlight.add(id);
  renderGrid();
  const r = await pushCard(hide ? { action: 'hide' } : { action: 'show', product_id: id });
  S.inFlight.delete(id);
  renderGrid();
  const p = S.products.get(id);
  if (r.ok) toast(hide ? `Hidden: ${p.title}` : `On screen: ${p.title}`);
  else toast(`${hide ? 'Could not hide' : 'Could not show'} ${p.title}: ${errMsg(r)}`, 'error');
}

async function pushCard(body) {
  const r = await api('POST', `/api/streams/${encodeURIComponent(streamId)}/cards`, body, { idem: uuid() });
  if (r.ok && r.data) setPinned(r.data.action === 'hide' ? null : r.data.card, r.data.event_id);
  if (r.status === 401) toast('Signed out: the staff token is no longer valid.', 'error');
  return r;
}

// ── On screen ──────────────────────────────────────────────────────────
function setPinned(card, eventId) {
  S.pinned = card || null;
  if (card && card.deal && card.deal.quantity) {
    // A stock event may have come first carrying the deal's cap (what is
    // buyable now): the card has the real stock and what is left at the deal.
    S.dealLeft[card.product_id] = card.deal.remaining ?? card.deal.quantity;
    if (typeof card.available === 'number') { S.stockOf[card.product_id] = card.available; S.stockGen[card.product_id] = (S.stockGen[card.product_id] || 0) + 1; }
    // ...and its feed line said "stock 12 → 5": it was the deal's cap.
    const left = S.dealLeft[card.product_id];
    const li = document.querySelector(`.feed li.feed-stock[data-product="${CSS.escape(card.product_id)}"]`);
    if (li && li.dataset.to === String(left) && Date.now() - Number(li.dataset.at) < 5000) {
      li.querySelector('.feed-sub').textContent = `${left} at the deal price · ${timeOf(Date.now())}`;
      li.querySelector('.feed-amt').textContent = left <= 0 ? 'DEAL SOLD OUT' : `${left} at deal price`;
    }
  }
  S.pinnedId = card ? (eventId || '') : '';
  renderOnAir();
  renderGrid();
}

function renderOnAir() {
  const c = S.pinned;
  const box = $('onair');
  box.dataset.pinned = String(!!c);
  $('deal').hidden = !c;
  const body = $('onair-body');
  const pc = $('preview-card');
  if (!c) {
    $('onair-label').textContent = 'Nothing on screen';
    body.innerHTML = '<p class="muted onair-empty">Tap a product to show its card to every viewer.</p>';
    pc.hidden = true;
    $('onair-timer').hidden = true;
    return;
  }
  $('onair-label').textContent = 'On screen now';
  const avail = S.stockOf[c.product_id] ?? c.available;
  const deal = dealActive(c) ? c.deal : null;
  body.innerHTML = `<div class="onair-card">${c.image ? '<img alt="">' : '<span class="tile-ph"></span>'}
    <div><div class="onair-title"></div><div class="onair-price"></div><div class="onair-stock"></div></div></div>
    <div class="onair-sales"></div>`;
  if (c.image) body.querySelector('img').src = c.image;
  else body.querySelector('.tile-ph').textContent = (c.title || '?').charAt(0).toUpperCase();
  body.querySelector('.onair-title').textContent = c.title;
  const price = body.querySelector('.onair-price');
  price.textContent = deal ? fmtMoney(deal.price) : fmtFromPrice(c);
  if (deal) { const s = document.createElement('s'); s.textContent = fmtMoney(lowestPrice(c).price); price.append(' ', s); }
  body.querySelector('.onair-stock').textContent = (avail <= 0 ? 'Sold out' : `${avail} available`) + (deal && deal.quantity ? ` · ${S.dealLeft[c.product_id] ?? deal.quantity} at the deal price` : '') + (S.soldOf[c.product_id] ? ` · ${S.soldOf[c.product_id]} sold this show` : '');
  renderSales();
  pc.hidden = false;
  pc.textContent = `${c.title} · ${deal ? fmtMoney(deal.price) : fmtFromPrice(c)}`;
  $('deal-end').hidden = !deal;
  $('deal-start').textContent = deal ? 'Restart deal' : 'Start deal';
  const dp = $('deal-price');
  if (dp.dataset.for !== c.product_id) {
    dp.dataset.for = c.product_id;
    dp.value = ((Math.round(lowestPrice(c).price.amount * 0.8) / 100)).toFixed(2);
  }
  tickDeal();
}

function dealActive(c) { return !!(c && c.deal && c.deal.ends_at_ms > (S.overlay ? S.overlay.serverNow() : Date.now())); }

let dealWasActive = false;
function tickDeal() {
  const c = S.pinned;
  const t = $('onair-timer');
  if (!c || !c.deal) { t.hidden = true; dealWasActive = false; return; }
  const ms = c.deal.ends_at_ms - S.overlay.serverNow();
  if (ms <= 0) {
    t.hidden = true;
    if (dealWasActive) { dealWasActive = false; renderOnAir(); toast(`Deal ended: ${c.title}`, 'info'); }
    return;
  }
  dealWasActive = true;
  const sec = Math.ceil(ms / 1000);
  t.hidden = false;
  t.innerHTML = `${ICON.bolt} ${Math.floor(sec / 60)}:${String(sec % 60).padStart(2, '0')}`;
  t.classList.toggle('urgent', sec <= 10);
}

$('hide').addEventListener('click', async (e) => {
  if (!S.pinned) return;
  const btn = e.currentTarget;
  btn.disabled = true;
  const title = S.pinned.title;
  const r = await pushCard({ action: 'hide' });
  btn.disabled = false;
  toast(r.ok ? `Hidden: ${title}` : `Could not hide: ${errMsg(r)}`, r.ok ? 'ok' : 'error');
});

$('deal').addEventListener('submit', async (e) => {
  e.preventDefault();
  const c = S.pinned;
  if (!c) return;
  const amount = Math.round(parseFloat($('deal-price').value.replace(',', '.')) * 100);
  const duration = parseFloat($('deal-duration').value);
  const qtyRaw = $('deal-qty').value.trim();
  const qty = qtyRaw ? parseInt(qtyRaw, 10) : 0;
  if (!(amount > 0)) { toast('Enter a deal price, e.g. 39.00', 'error'); return; }
  // A deal prices every variant alike: it must be below the cheapest.
  const low = lowestPrice(c).price;
  if (amount >= low.amount) { toast(`A deal must cost less than the regular ${fmtMoney(low)}`, 'error'); return; }
  if (!(duration > 0)) { toast('Enter how many seconds the deal runs', 'error'); return; }
  if (qtyRaw && !(qty > 0)) { toast('Units must be a positive number (or empty for no cap)', 'error'); return; }
  const deal = { price: { amount, currency: c.price.currency }, duration_s: duration };
  if (qty) deal.quantity = qty;
  const btn = $('deal-start');
  btn.disabled = true;
  const r = await pushCard({ action: 'update', product_id: c.product_id, deal });
  btn.disabled = false;
  if (r.ok) toast(`Deal live: ${fmtMoney(deal.price)} for ${duration} s${qty ? `, ${qty} units` : ''}`);
  else toast(`Deal not started: ${errMsg(r)}`, 'error');
});

$('deal-end').addEventListener('click', async (e) => {
  const c = S.pinned;
  if (!c) return;
  const btn = e.currentTarget;
  btn.disabled = true;
  const r = await pushCard({ action: 'update', product_id: c.product_id, deal: null });
  btn.disabled = false;
  toast(r.ok ? 'Deal ended' : `Could not end the deal: ${errMsg(r)}`, r.ok ? 'ok' : 'error');
});

// ── Feed: orders and stock ─────────────────────────────────────────────
async function loadOrders() {
  const r = await api('GET', `/api/orders?stream=${encodeURIComponent(streamId)}&limit=30`);
  if (!r.ok) return;
  const list = (r.data.orders || []).slice().reverse(); // oldest first, so the newest ends on top
  for (const o of list) {
    recordOrder({ ref: (o.order_id || '').slice(0, 8), status: o.status, items: o.items, total: o.total, card: o.card, source: o.source, at: Date.parse(o.updated_at || o.created_at) }, false);
  }
  if (list.length) renderAfterOrders(); // once for the whole list
}

function skuTitle(pid, sku) {
  const p = S.products.get(pid);
  const k = p && (p.skus || []).find((x) => x.id === sku);
  return (k && k.title) || sku;
}
function productTitle(id) { const p = S.products.get(id); return p ? p.title : id; }

function orderEvent(o, fresh) {
  recordOrder(o, fresh);
  renderAfterOrders();
}

function renderAfterOrders() {
  renderStats();
  if (S.pinned) renderOnAir(); else renderGrid();
}

// recordOrder keeps o (new or updated) and its feed line; the totals, the
// grid and the on-air box are redrawn by the caller.
function recordOrder(o, fresh) {
  S.orders.set(o.ref, o);
  const items = (o.items || []).map((it) => `${productTitle(it.product_id)}${it.sku && it.sku !== 'default' ? ` (${skuTitle(it.product_id, it.sku)})` : ''} ×${it.quantity}`).join(', ');
  let li = document.querySelector(`.feed li[data-ref="${CSS.escape(o.ref)}"]`);
  if (!li) {
    li = document.createElement('li');
    li.dataset.ref = o.ref;
    addFeed(li, fresh);
  }
  li.className = `feed-order status-${o.status}`;
  li.innerHTML = '<span class="feed-icon">' + ICON.bag + '</span><div class="feed-main"><div class="feed-line"></div><div class="feed-sub"></div></div><span class="feed-amt"></span>';
  li.querySelector('.feed-line').textContent = items || 'Order';
  li.querySelector('.feed-sub').textContent = `${o.status} · ${o.source === 'showroom' ? 'in the showroom' : o.source === 'player' ? 'in the player' : o.source || 'api'} · #${o.ref} · ${timeOf(o.at)}`;
  li.querySelector('.feed-amt').textContent = fmtMoney(o.total);
}

// dealCap: during a capped flash deal on the card on screen, what a stock
// event carries is what is left at the deal price, not the stock.
function dealCap(id) {
  const c = S.pinned;
  return !!(c && c.product_id === id && dealActive(c) && c.deal.quantity);
}

function stockChanged(id, n) {
  S.stockGen[id] = (S.stockGen[id] || 0) + 1;
  if (dealCap(id)) {
    const was = S.dealLeft[id];
    S.dealLeft[id] = n;
    // The event says only what is buyable now (the cap); the stock itself
    // may have moved too (a hold released, a restock): read it.
    rereadStock(id);
    if (was !== undefined && was !== n) {
      addFeed(stockFeedItem(id, n, ICON.bolt, `${n} at the deal price · ${timeOf(Date.now())}`,
        n <= 0 ? 'DEAL SOLD OUT' : `${n} at deal price`), true);
    }
    renderOnAir();
    renderGrid();
    return;
  }
  const before = S.stockOf[id];
  S.stockOf[id] = n;
  if (before !== undefined && before !== n) {
    const li = stockFeedItem(id, n, ICON.box, `stock ${before} → ${n} · ${timeOf(Date.now())}`, n <= 0 ? 'SOLD OUT' : `${n} left`);
    li.dataset.to = String(n);
    li.dataset.at = String(Date.now());
    addFeed(li, true);
  }
  if (S.pinned && S.pinned.product_id === id) renderOnAir();
  renderGrid();
}

// stockFeedItem is the live feed's line for a product's stock (or deal
// units) moving to n.
function stockFeedItem(id, n, icon, sub, amt) {
  const li = document.createElement('li');
  li.className = 'feed-stock' + (n <= 0 ? ' out' : '');
  li.dataset.product = id;
  li.innerHTML = '<span class="feed-icon">' + icon + '</span><div class="feed-main"><div class="feed-line"></div><div class="feed-sub"></div></div><span class="feed-amt"></span>';
  li.querySelector('.feed-line').textContent = productTitle(id);
  li.querySelector('.feed-sub').textContent = sub;
  li.querySelector('.feed-amt').textContent = amt;
  return li;
}

async function rereadStock(id) {
  const gen = S.stockGen[id];
  const r = await api('GET', `/api/products/${encodeURIComponent(id)}`);
  if (!r.ok || typeof r.data.available !== 'number' || S.stockGen[id] !== gen || S.stockOf[id] === r.data.available) return;
  S.stockOf[id] = r.data.available;
  if (S.pinned && S.pinned.product_id === id) renderOnAir();
  renderGrid();
}

function addFeed(li, fresh) {
  const feed = $('feed');
  const empty = feed.querySelector('.feed-empty');
  if (empty) empty.remove();
  if (fresh) li.classList.add('fresh');
  feed.prepend(li);
  while (feed.children.length > 60) feed.lastElementChild.remove();
}

function renderStats() {
  let n = 0, total = 0, cur = '';
  for (const o of S.orders.values()) {
    if (!['paid', 'authorized', 'packed', 'shipped', 'picked_up', 'partially_refunded'].includes(o.status)) continue;
    n++;
    if (o.total) { total += o.total.amount; cur = o.total.currency; }
  }
  $('orders-count').textContent = String(n);
  $('revenue').textContent = cur ? fmtMoney({ amount: total, currency: cur }) : '–';
}

function timeOf(ms) {
  const d = new Date(ms || Date.now());
  return d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}
