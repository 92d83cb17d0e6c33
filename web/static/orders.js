// The orders desk (/console/{stream}/orders): every order of the show (or
// all shows), filters and search, an order's detail, and the fulfilment
// actions — packed, shipped (carrier + tracking), picked up (by the code the
// buyer shows), refund of lines or of everything. Tablet-first; staff token
// as in the console (this tab's sessionStorage only).
import { fmtMoney } from './buy.js';

const streamId = decodeURIComponent(location.pathname.split('/').filter(Boolean).slice(-2)[0]);
const $ = (id) => document.getElementById(id);
const TOKEN_KEY = 'streamd.staff';
const LABEL = { pending: 'Pending', authorized: 'Authorized', paid: 'To pack', packed: 'Packed', shipped: 'Shipped', picked_up: 'Picked up',
  refunded: 'Refunded', partially_refunded: 'Part refunded', cancelled: 'Cancelled', expired: 'Expired' };
const CHIPS = [['', 'All'], ['paid', 'To pack'], ['packed', 'Packed'], ['shipped', 'Shipped'], ['picked_up', 'Picked up'], ['partially_refunded', 'Part refunded'], ['refunded', 'Refunded'], ['pending', 'Pending']];
const SOLD = new Set(['paid', 'packed', 'shipped', 'picked_up', 'partially_refunded']);
const CARRIERS = ['DHL', 'UPS', 'FedEx', 'DPD', 'GLS', 'Hermes', 'USPS', 'Royal Mail', 'La Poste', 'PostNL'];

let token = '';
const D = { orders: [], products: new Map(), status: '', selected: '', busy: false };
window.streamdDesk = D;

function h(tag, props = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') el.className = v; else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v); else if (v !== undefined && v !== null && v !== false) el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of kids.flat()) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

async function api(method, path, body) {
  const headers = { Authorization: 'Bearer ' + token };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  try {
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
    let data = null;
    try { data = await res.json(); } catch { /* empty */ }
    return { ok: res.ok, status: res.status, data };
  } catch { return { ok: false, status: 0, data: { message: 'network problem — check the connection' } }; }
}
const errMsg = (r) => {
  if (r.data && r.data.fields) return Object.entries(r.data.fields).map(([k, v]) => `${k}: ${v}`).join(' · ');
  return (r.data && (r.data.message || r.data.error)) || `HTTP ${r.status}`;
};
function toast(text, kind = 'ok') {
  const el = h('div', { class: 'toast ' + kind, text });
  $('toasts').appendChild(el);
  setTimeout(() => el.classList.add('out'), kind === 'error' ? 5000 : 2500);
  setTimeout(() => el.remove(), kind === 'error' ? 5400 : 2900);
}
const ref = (o) => o.order_id.slice(0, 8).toUpperCase();
const title = (pid) => (D.products.get(pid) || {}).title || pid;
const when = (t) => new Date(t).toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
const lineTotal = (it) => ({ amount: it.unit_price.amount * it.quantity, currency: it.unit_price.currency });

// ── sign-in ───────────────────────────────────────────────────────────
async function signIn(tok) {
  token = tok;
  const r = await api('GET', '/api/orders?limit=1');
  if (r.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    $('signin').hidden = false; $('desk').hidden = true;
    if (tok) { $('signin-error').hidden = false; $('signin-error').textContent = 'That token is not right.'; }
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, tok);
  $('signin').hidden = true; $('desk').hidden = false;
  start();
}
$('signin-form').addEventListener('submit', (e) => { e.preventDefault(); signIn($('token').value.trim()); });

// ── loading ───────────────────────────────────────────────────────────
function query(extra = {}) {
  const p = new URLSearchParams();
  if ($('scope').value) p.set('stream', streamId);
  if ($('delivery').value) p.set('delivery', $('delivery').value);
  if ($('q').value.trim()) p.set('q', $('q').value.trim());
  for (const [k, v] of Object.entries(extra)) if (v) p.set(k, v);
  return p;
}
async function load() {
  const r = await api('GET', '/api/orders?' + query({ limit: '2000' }));
  if (!r.ok) { if (r.status) toast(errMsg(r), 'error'); return; }
  // The desk is about orders to fulfil: abandoned checkouts stay out of "All".
  D.orders = r.data.orders.filter((o) => o.status !== 'expired' && o.status !== 'cancelled');
  render();
}
async function loadProducts() {
  const r = await api('GET', '/api/products');
  if (r.ok) for (const p of r.data.products) D.products.set(p.id, p);
}

// ── list ──────────────────────────────────────────────────────────────
function render() {
  const counts = {};
  for (const o of D.orders) counts[o.status] = (counts[o.status] || 0) + 1;
  const chips = $('status-chips');
  chips.textContent = '';
  for (const [s, label] of CHIPS) {
    const n = s ? counts[s] || 0 : D.orders.length;
    if (s && !n && s !== 'paid') continue;
    chips.append(h('button', { type: 'button', class: 'chip', role: 'tab', 'aria-pressed': String(D.status === s), 'data-status': s, onclick: () => { D.status = s; render(); } },
      label, h('span', { class: 'chip-n', text: String(n) })));
  }
  const shown = D.orders.filter((o) => !D.status || o.status === D.status);
  const list = $('list');
  list.textContent = '';
  if (!shown.length) list.append(h('p', { class: 'muted desk-empty', text: D.orders.length ? 'No orders match.' : 'No orders yet. They appear here the moment they are paid.' }));
  for (const o of shown) {
    const pickup = o.delivery && o.delivery.method === 'pickup';
    const items = o.items.map((it) => `${it.quantity}× ${title(it.product_id)}`).join(', ');
    list.append(h('button', { type: 'button', class: 'do-row' + (o.order_id === D.selected ? ' sel' : ''), 'data-id': o.order_id, 'data-status': o.status, onclick: () => select(o.order_id) },
      h('div', { class: 'do-main' },
        h('div', { class: 'do-line' }, h('b', { text: (o.buyer && o.buyer.name) || 'No name' }), h('span', { class: 'do-ref', text: '#' + ref(o) })),
        h('div', { class: 'do-items', text: items }),
        h('div', { class: 'do-sub' }, h('span', { class: 'do-how ' + (pickup ? 'pickup' : 'ship'), text: pickup ? 'Pickup' : 'Ship' }),
          ` ${!pickup && o.delivery && o.delivery.address ? o.delivery.address.city + ', ' + o.delivery.address.country + ' · ' : ''}${when(o.created_at)}`)),
      h('div', { class: 'do-side' }, h('span', { class: 'do-status st-' + o.status, text: LABEL[o.status] || o.status }), h('b', { class: 'do-amt', text: fmtMoney(o.total) }))));
  }
  const paid = D.orders.filter((o) => SOLD.has(o.status));
  const toPack = D.orders.filter((o) => o.status === 'paid').length;
  $('sum').textContent = `${paid.length} paid · ${toPack} to pack`;
  renderDetail();
}

// ── detail ────────────────────────────────────────────────────────────
function select(id) {
  D.selected = id;
  document.body.classList.add('has-detail');
  render();
  $('detail').scrollTop = 0;
}

function renderDetail() {
  const o = D.orders.find((x) => x.order_id === D.selected);
  const box = $('detail');
  if (!o) { box.textContent = ''; box.append(h('p', { class: 'muted desk-empty', text: 'Pick an order to see it here.' })); return; }
  // Unchanged: keep what staff are typing or ticking (the list polls every 3 s).
  if (box.dataset.id === o.order_id && box.dataset.v === o.updated_at) return;
  box.dataset.id = o.order_id; box.dataset.v = o.updated_at;
  box.textContent = '';
  const pickup = o.delivery && o.delivery.method === 'pickup';
  const shipped = (o.history || []).some((x) => x.status === 'shipped' || x.status === 'picked_up');
  const refundable = SOLD.has(o.status);
  const sel = new Set();

  box.append(h('div', { class: 'dd-head' },
    h('button', { type: 'button', class: 'ghost dd-back', text: '‹ Orders', onclick: () => { D.selected = ''; document.body.classList.remove('has-detail'); render(); } }),
    h('h2', { text: `Order #${ref(o)}` }), h('span', { class: 'do-status st-' + o.status, text: LABEL[o.status] || o.status })));

  const who = h('div', { class: 'dd-card' }, h('div', { class: 'dd-label', text: 'Buyer' }));
  if (o.buyer) who.append(h('div', { class: 'dd-big', text: o.buyer.name || '–' }), o.buyer.email ? h('a', { href: 'mailto:' + o.buyer.email, text: o.buyer.email }) : null);
  const where = h('div', { class: 'dd-card' }, h('div', { class: 'dd-label', text: pickup ? 'Pick up in the showroom' : 'Ship to' }));
  if (pickup) where.append(h('div', { class: 'dd-code', text: o.pickup_code || '–' }), h('div', { class: 'muted', text: 'The buyer shows this code (or its QR).' }));
  else if (o.delivery && o.delivery.address) {
    const a = o.delivery.address;
    where.append(h('div', { class: 'dd-addr' }, h('div', { text: (o.buyer && o.buyer.name) || '' }), h('div', { text: a.line1 }), a.line2 ? h('div', { text: a.line2 }) : null,
      h('div', { text: `${a.postal_code} ${a.city}` }), h('div', { text: a.country })));
  } else where.append(h('div', { class: 'muted', text: 'No address (collected by the payment provider when paid).' }));
  if (o.shipment) where.append(h('div', { class: 'dd-track', text: `${o.shipment.carrier} · ${o.shipment.tracking}` }));
  box.append(h('div', { class: 'dd-grid' }, who, where));

  const t = h('table', { class: 'dd-items' });
  for (const [i, it] of o.items.entries()) {
    const cb = refundable && !it.refunded ? h('input', { type: 'checkbox', 'aria-label': 'Refund this line', 'data-line': String(i), onchange: (e) => { if (e.target.checked) sel.add(i); else sel.delete(i); upd(); } }) : null;
    t.append(h('tr', { class: it.refunded ? 'refunded' : '' },
      h('td', { class: 'dd-cb' }, cb),
      h('td', {}, h('div', { text: `${it.quantity} × ${title(it.product_id)}` }),
        h('div', { class: 'muted small', text: [it.sku && it.sku !== 'default' ? it.sku : '', it.deal ? 'flash deal price' : '', it.refunded ? 'refunded' : ''].filter(Boolean).join(' · ') })),
      h('td', { class: 'num' }, h('div', { text: fmtMoney(lineTotal(it)) }), h('div', { class: 'muted small', text: it.quantity > 1 ? `${fmtMoney(it.unit_price)} each` : '' }))));
  }
  t.append(h('tr', { class: 'dd-total' }, h('td'), h('td', { text: 'Total charged' }), h('td', { class: 'num', text: fmtMoney(o.total) })));
  box.append(t);

  // Actions.
  const act = h('div', { class: 'dd-actions' });
  const run = async (btn, method, path, body, ok) => {
    if (D.busy) return;
    D.busy = true; btn.disabled = true; btn.classList.add('loading');
    const r = await api(method, path, body);
    D.busy = false; btn.disabled = false; btn.classList.remove('loading');
    if (!r.ok) { toast(errMsg(r), 'error'); return; }
    toast(ok);
    const i = D.orders.findIndex((x) => x.order_id === r.data.order_id);
    if (i >= 0) D.orders[i] = r.data;
    box.dataset.v = '';
    render();
    loadOutbox();
  };
  const p = `/api/orders/${encodeURIComponent(o.order_id)}`;
  if (o.status === 'paid') {
    const b = h('button', { type: 'button', class: 'dd-primary', 'data-act': 'pack', text: 'Mark packed' });
    b.onclick = () => run(b, 'POST', p + '/pack', undefined, `#${ref(o)} packed`);
    act.append(b);
  }
  if (['paid', 'packed', 'partially_refunded'].includes(o.status) && !shipped) {
    if (pickup) {
      const code = h('input', { id: 'pickup-code', placeholder: 'Code the buyer shows', autocomplete: 'off', autocapitalize: 'characters', maxlength: '6', inputmode: 'text' });
      const b = h('button', { type: 'submit', 'data-act': 'pickup', text: 'Mark picked up' });
      act.append(h('form', { class: 'dd-form', onsubmit: (e) => { e.preventDefault(); run(b, 'POST', p + '/pickup', { code: code.value }, `#${ref(o)} handed over`); } }, code, b));
    } else {
      const dl = h('datalist', { id: 'carriers' }, ...CARRIERS.map((c) => h('option', { value: c })));
      const carrier = h('input', { id: 'carrier', placeholder: 'Carrier', list: 'carriers', autocomplete: 'off', value: localStorage.getItem('streamd.carrier') || '' });
      const track = h('input', { id: 'tracking', placeholder: 'Tracking number', autocomplete: 'off' });
      const b = h('button', { type: 'submit', 'data-act': 'ship', text: 'Mark shipped' });
      act.append(h('form', { class: 'dd-form', onsubmit: (e) => { e.preventDefault(); localStorage.setItem('streamd.carrier', carrier.value.trim()); run(b, 'POST', p + '/ship', { carrier: carrier.value, tracking: track.value }, `#${ref(o)} shipped`); } }, dl, carrier, track, b));
    }
  }
  let upd = () => {};
  if (refundable) {
    const note = h('p', { class: 'dd-note', text: shipped ? 'Already shipped: refunded units do not go back to stock.' : 'Not shipped yet: refunded units go back to stock.' });
    const part = h('button', { type: 'button', class: 'ghost', 'data-act': 'refund-lines', disabled: true, text: 'Refund selected lines' });
    const all = h('button', { type: 'button', class: 'ghost danger', 'data-act': 'refund', text: shipped ? 'Refund order' : 'Cancel and refund' });
    upd = () => {
      part.disabled = !sel.size;
      const amt = [...sel].reduce((n, i) => n + lineTotal(o.items[i]).amount, 0);
      part.textContent = sel.size ? `Refund ${fmtMoney({ amount: amt, currency: o.total.currency })} (${sel.size} line${sel.size > 1 ? 's' : ''})` : 'Refund selected lines';
    };
    part.onclick = () => { if (confirm(`Refund the selected lines of #${ref(o)}?`)) run(part, 'POST', p + '/refund', { lines: [...sel] }, `#${ref(o)} partly refunded`); };
    all.onclick = () => { if (confirm(`Refund all of #${ref(o)} (${fmtMoney(o.total)})?`)) run(all, 'POST', p + '/refund', {}, `#${ref(o)} refunded`); };
    act.append(h('div', { class: 'dd-refund' }, note, h('div', { class: 'dd-row' }, part, all)));
  }
  if (act.childElementCount) box.append(act);

  const meta = h('dl', { class: 'dd-meta' });
  const add = (k, v) => { if (v) meta.append(h('dt', { text: k }), h('dd', { text: v })); };
  add('Placed', when(o.created_at));
  add('Where', o.source === 'showroom' ? 'In the showroom (QR)' : o.source === 'player' ? 'In the player' : o.source || 'API');
  add('Show', o.stream);
  add('Card moment', o.card);
  add('Payment', `${o.payment.provider}${o.payment.test_mode ? ' (test mode)' : ''}${o.payment.intent_id ? ' · ' + o.payment.intent_id : ''}`);
  add('Order id', o.order_id);
  box.append(meta);

  const hist = h('ol', { class: 'dd-hist' });
  for (const e of o.history || []) hist.append(h('li', {}, h('b', { text: e.status === 'paid' ? 'Paid' : LABEL[e.status] || e.status }), ' ', h('span', { class: 'muted', text: when(e.at) + (e.note ? ' · ' + e.note : '') })));
  for (const r of o.refunds || []) hist.append(h('li', {}, h('b', { text: 'Refund ' + fmtMoney(r.amount) }), ' ', h('span', { class: 'muted', text: `${when(r.at)}${r.restocked ? ' · restocked' : ' · not restocked'}${r.id ? ' · ' + r.id : ''}` })));
  box.append(h('div', { class: 'dd-label', text: 'History' }), hist);
}

// ── pickup point, outbox ──────────────────────────────────────────────
async function loadPickup() {
  const r = await api('GET', `/api/streams/${encodeURIComponent(streamId)}/pickup-point`);
  if (r.ok) { $('pp-address').value = r.data.address || ''; $('pp-note').value = r.data.note || ''; }
}
$('pickup-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const r = await api('PUT', `/api/streams/${encodeURIComponent(streamId)}/pickup-point`, { address: $('pp-address').value, note: $('pp-note').value });
  toast(r.ok ? 'Pickup point saved' : errMsg(r), r.ok ? 'ok' : 'error');
});
async function loadOutbox() {
  const r = await api('GET', '/api/outbox');
  if (!r.ok) return;
  $('outbox-head').textContent = r.data.smtp ? 'Mails are sent over SMTP.' : `Outbox (no SMTP server set: mails are kept in the data folder) · ${r.data.mails.length}`;
  const ol = $('outbox');
  ol.textContent = '';
  for (const m of r.data.mails.slice(0, 30)) {
    const a = h('a', { href: '#', text: m.subject });
    a.onclick = async (e) => {
      e.preventDefault();
      const res = await fetch('/api/outbox/' + encodeURIComponent(m.name), { headers: { Authorization: 'Bearer ' + token } });
      const w = window.open('', '_blank');
      if (w) { w.document.body.append(h('pre', { text: await res.text(), style: 'white-space:pre-wrap' })); }
    };
    ol.append(h('li', {}, a, h('span', { class: 'muted', text: ` → ${m.to} · ${when(m.at)}` })));
  }
}

// ── start ─────────────────────────────────────────────────────────────
let started = false;
function start() {
  if (started) return;
  started = true;
  $('title').textContent = streamId;
  $('back').href = `/console/${encodeURIComponent(streamId)}`;
  fetch(`/api/streams/${encodeURIComponent(streamId)}/public`).then((r) => (r.ok ? r.json() : null)).then((s) => { if (s && s.title) $('title').textContent = s.title; }).catch(() => {});
  $('csv').onclick = async (e) => {
    e.preventDefault();
    const p = query();
    if (D.status) p.set('status', D.status);
    const res = await fetch('/api/orders.csv?' + p, { headers: { Authorization: 'Bearer ' + token } });
    if (!res.ok) { toast('Export failed', 'error'); return; }
    const url = URL.createObjectURL(await res.blob());
    const a = h('a', { href: url, download: (res.headers.get('Content-Disposition') || '').split('filename="')[1]?.replace('"', '') || 'orders.csv' });
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  };
  let qt = null;
  $('q').addEventListener('input', () => { clearTimeout(qt); qt = setTimeout(load, 200); });
  $('delivery').onchange = load;
  $('scope').onchange = load;
  loadProducts().then(load);
  loadPickup();
  loadOutbox();
  setInterval(() => { if (!document.hidden && !D.busy) { load(); loadOutbox(); } }, 3000);
}

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) signIn(saved); else $('signin').hidden = false;
