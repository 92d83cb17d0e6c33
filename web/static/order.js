// The buyer's order page (/order/{id}?t=secret): where the order stands,
// what was bought, where it goes or the pickup code. Readable with the
// link's secret or the buyer's cookie; refreshes while it is open.
import { fmtMoney } from './buy.js';

const id = decodeURIComponent(location.pathname.split('/').filter(Boolean).pop());
const t = new URLSearchParams(location.search).get('t') || '';
const $ = (x) => document.getElementById(x);
const LABEL = { pending: 'Waiting for payment', authorized: 'Payment authorized', paid: 'Paid', packed: 'Packed',
  shipped: 'Shipped', picked_up: 'Picked up', refunded: 'Refunded', partially_refunded: 'Partly refunded',
  cancelled: 'Cancelled', expired: 'Expired' };
const titles = {};

async function title(pid) {
  if (!titles[pid]) titles[pid] = fetch(`/api/products/${encodeURIComponent(pid)}`).then((r) => (r.ok ? r.json() : null)).then((p) => (p ? p.title : pid)).catch(() => pid);
  return titles[pid];
}

async function load() {
  const r = await fetch(`/api/orders/${encodeURIComponent(id)}?t=${encodeURIComponent(t)}`, { credentials: 'same-origin', cache: 'no-store' });
  if (!r.ok) { $('op-msg').textContent = r.status === 404 ? 'This order link is not valid. Use the link from your receipt.' : 'Could not load the order — try again in a moment.'; return; }
  const o = await r.json();
  window.streamdOrder = o;
  $('op-msg').hidden = true;
  $('op-body').hidden = false;
  document.body.dataset.status = o.status;
  $('op-title').textContent = `Order #${o.order_id.slice(0, 8).toUpperCase()} · ${LABEL[o.status] || o.status}`;
  const pickup = o.delivery && o.delivery.method === 'pickup';
  const seen = new Map((o.history || []).map((h) => [h.status, h.at]));
  const refunded = [...seen.keys()].filter((s) => s.includes('refunded')).pop();
  // The steps ahead of the order, or those it went through when a refund ended it.
  let path = ['paid', 'packed', pickup ? 'picked_up' : 'shipped'];
  if (o.status === 'refunded') path = path.filter((s) => seen.has(s));
  if (refunded) path.push(o.status.includes('refunded') ? o.status : refunded);
  const steps = $('op-steps');
  steps.textContent = '';
  for (const s of path) {
    const li = document.createElement('li');
    li.dataset.done = String(seen.has(s));
    li.textContent = LABEL[s];
    if (seen.has(s)) { const d = document.createElement('small'); d.textContent = new Date(seen.get(s)).toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' }); li.appendChild(d); }
    steps.appendChild(li);
  }
  $('op-code').hidden = !pickup || !o.pickup_code || o.status === 'picked_up';
  if (pickup && o.pickup_code) {
    $('op-qr').src = `/api/orders/${encodeURIComponent(o.order_id)}/pickup.png?t=${encodeURIComponent(t || o.secret || '')}`;
    $('op-pc').textContent = o.pickup_code;
    fetch(`/api/streams/${encodeURIComponent(o.stream)}/pickup-point`).then((r) => (r.ok ? r.json() : null)).then((p) => {
      $('op-where').textContent = p && p.address ? `Pick up at ${p.address}${p.note ? ' · ' + p.note : ''}` : 'Show this code at the showroom desk';
    }).catch(() => {});
  }
  const ship = $('op-ship');
  ship.hidden = pickup || !o.delivery;
  if (!pickup && o.delivery && o.delivery.address) {
    const a = o.delivery.address;
    ship.textContent = `Ships to ${o.buyer ? o.buyer.name + ', ' : ''}${a.line1}${a.line2 ? ', ' + a.line2 : ''}, ${a.postal_code} ${a.city}, ${a.country}` +
      (o.shipment ? ` · ${o.shipment.carrier} tracking ${o.shipment.tracking}` : '');
  }
  const tb = $('op-items');
  tb.textContent = '';
  for (const it of o.items) {
    const tr = tb.insertRow();
    const a = tr.insertCell(); a.textContent = `${it.quantity} × ${await title(it.product_id)}${it.sku && it.sku !== 'default' ? ' (' + it.sku + ')' : ''}`;
    if (it.refunded) { const s = document.createElement('em'); s.textContent = ' refunded'; a.appendChild(s); }
    tr.insertCell().textContent = fmtMoney({ amount: it.unit_price.amount * it.quantity, currency: it.unit_price.currency });
  }
  $('op-total').textContent = fmtMoney(o.total);
  const back = (o.refunds || []).reduce((n, r) => n + r.amount.amount, 0);
  $('op-refund').hidden = !back;
  $('op-refund').textContent = `Refunded ${fmtMoney({ amount: back, currency: o.total.currency })} to your payment method.`;
  $('op-test').hidden = !(o.payment && o.payment.test_mode);
}

load();
setInterval(() => { if (!document.hidden) load(); }, 5000);
