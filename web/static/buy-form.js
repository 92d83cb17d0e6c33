// The buyer part of the buy sheet: email for the receipt, and delivery —
// ship (name, address, per-country postal code) or pick up in the showroom
// (name only). Filled while the hold runs.
//
// A returning buyer's details are kept in localStorage on their device:
// they never leave it except when the buyer pays, are not sent with every
// request as a cookie would be, and keep working in an embedded player,
// where browsers withhold (SameSite) cookies from the iframe. An HttpOnly
// cookie would hide them from page scripts, but the sheet would then need
// an endpoint returning them — readable by the same scripts — so it would
// protect nothing here. The server never stores them outside orders.
//
// createBuyerForm(root, {source, stripe, pickup}) → {values(), check(),
//   showErrors(fields), save(), complete, el}

const KEY = 'streamd.buyer';
const COUNTRIES = [['AT', 'Austria'], ['AU', 'Australia'], ['BE', 'Belgium'], ['CA', 'Canada'], ['CH', 'Switzerland'], ['DE', 'Germany'],
  ['DK', 'Denmark'], ['ES', 'Spain'], ['FI', 'Finland'], ['FR', 'France'], ['GB', 'United Kingdom'], ['IE', 'Ireland'], ['IT', 'Italy'],
  ['JP', 'Japan'], ['NL', 'Netherlands'], ['NO', 'Norway'], ['PL', 'Poland'], ['PT', 'Portugal'], ['SE', 'Sweden'], ['US', 'United States']];
// Basic postal code rules, as the server checks them (cart/buyer.go).
const POSTAL = { US: /^\d{5}(-\d{4})?$/, DE: /^\d{5}$/, FR: /^\d{5}$/, IT: /^\d{5}$/, ES: /^\d{5}$/, FI: /^\d{5}$/, AT: /^\d{4}$/,
  BE: /^\d{4}$/, CH: /^\d{4}$/, DK: /^\d{4}$/, NO: /^\d{4}$/, AU: /^\d{4}$/, SE: /^\d{3} ?\d{2}$/, NL: /^\d{4} ?[A-Z]{2}$/,
  PL: /^\d{2}-\d{3}$/, PT: /^\d{4}-\d{3}$/, JP: /^\d{3}-?\d{4}$/, CA: /^[A-Z]\d[A-Z] ?\d[A-Z]\d$/,
  GB: /^[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}$/, IE: /^[A-Z]\d[\dW] ?[A-Z\d]{4}$/ };

function loadCSS() {
  if (document.querySelector('link[data-buy-form]')) return;
  const l = document.createElement('link');
  l.rel = 'stylesheet'; l.href = '/static/buy-form.css'; l.dataset.buyForm = '1';
  document.head.appendChild(l);
}

export function savedBuyer() {
  try { return JSON.parse(localStorage.getItem(KEY) || 'null'); } catch { return null; }
}

export function createBuyerForm(root, { source = 'player', stripe = false, pickup = null } = {}) {
  loadCSS();
  const saved = savedBuyer();
  const region = ((navigator.language || '').split('-')[1] || '').toUpperCase();
  const v = {
    email: saved?.email || '', name: saved?.name || '',
    // Visitors in the room take it with them; others get what they chose last.
    method: source === 'showroom' ? 'pickup' : (saved?.method || 'ship'),
    address: { line1: '', line2: '', postal_code: '', city: '', country: COUNTRIES.some(([c]) => c === region) ? region : 'DE', ...(saved?.address || {}) },
  };
  const el = document.createElement('div');
  el.className = 'bf';
  el.innerHTML = `
    <div class="bf-seg" role="radiogroup" aria-label="Delivery">
      <button type="button" role="radio" data-m="ship">Ship to me</button>
      <button type="button" role="radio" data-m="pickup">Pick up in the showroom</button>
    </div>
    <div class="bf-pickup muted" hidden></div>
    <div class="bf-summary" hidden><div class="bf-sum-text"></div><button type="button" class="bf-edit">Change</button></div>
    <div class="bf-fields">
      ${stripe ? '' : '<label class="bf-f" data-f="buyer.email"><span>Email for the receipt</span><input name="email" type="email" autocomplete="email" inputmode="email" required></label>'}
      ${stripe ? '' : '<label class="bf-f" data-f="buyer.name"><span>Name</span><input name="name" autocomplete="name" required></label>'}
      <div class="bf-ship">
        ${stripe ? '<p class="muted bf-note">Address and email are asked next, on the secure payment form.</p>' : `
        <label class="bf-f" data-f="delivery.address.line1"><span>Address</span><input name="line1" autocomplete="address-line1" required></label>
        <label class="bf-f" data-f="delivery.address.line2"><span>Apartment, floor <i>(optional)</i></span><input name="line2" autocomplete="address-line2"></label>
        <div class="bf-row">
          <label class="bf-f bf-pc" data-f="delivery.address.postal_code"><span>Postal code</span><input name="postal_code" autocomplete="postal-code" required></label>
          <label class="bf-f" data-f="delivery.address.city"><span>City</span><input name="city" autocomplete="address-level2" required></label>
        </div>
        <label class="bf-f" data-f="delivery.address.country"><span>Country</span><select name="country" autocomplete="country"></select></label>`}
      </div>
    </div>`;
  root.appendChild(el);
  const q = (s) => el.querySelector(s);
  const sel = q('select[name=country]');
  if (sel) for (const [c, n] of COUNTRIES) { const o = document.createElement('option'); o.value = c; o.textContent = n; sel.appendChild(o); }
  const inputs = [...el.querySelectorAll('input, select')];
  const set = () => {
    for (const i of inputs) i.value = i.name === 'email' || i.name === 'name' ? v[i.name] : (v.address[i.name] || '');
  };
  set();
  let editing = !complete();

  function read() {
    for (const i of inputs) {
      if (i.name === 'email' || i.name === 'name') v[i.name] = i.value.trim();
      else v.address[i.name] = i.value.trim();
    }
  }
  function complete() {
    if (stripe) return true;
    if (!v.email || !v.name) return false;
    if (v.method === 'pickup') return true;
    const a = v.address;
    return !!(a.line1 && a.city && a.country && a.postal_code);
  }
  function render() {
    for (const b of el.querySelectorAll('.bf-seg button')) b.setAttribute('aria-checked', String(b.dataset.m === v.method));
    q('.bf-ship').hidden = v.method !== 'ship';
    const pk = q('.bf-pickup');
    pk.hidden = v.method !== 'pickup';
    pk.textContent = pickup && pickup.address ? `Pick up at ${pickup.address}${pickup.note ? ' · ' + pickup.note : ''}. You get a pickup code.` : 'Collect it at the showroom desk with the pickup code you get.';
    const summary = !editing && complete() && !stripe;
    q('.bf-summary').hidden = !summary;
    q('.bf-fields').hidden = summary || (stripe && v.method === 'pickup');
    if (summary) {
      const a = v.address;
      q('.bf-sum-text').textContent = `${v.name} · ${v.email}` + (v.method === 'ship' ? ` · ${a.line1}, ${a.postal_code} ${a.city}, ${a.country}` : '');
    }
  }
  for (const b of el.querySelectorAll('.bf-seg button')) b.onclick = () => { read(); v.method = b.dataset.m; render(); };
  q('.bf-edit').onclick = () => { editing = true; render(); const f = el.querySelector('input'); if (f) f.focus(); };
  el.addEventListener('input', (e) => { const f = e.target.closest('.bf-f'); if (f) { f.classList.remove('bad'); const m = f.querySelector('.bf-err'); if (m) m.remove(); } });
  render();

  function clearErrors() {
    for (const f of el.querySelectorAll('.bf-f.bad')) { f.classList.remove('bad'); const m = f.querySelector('.bf-err'); if (m) m.remove(); }
  }
  function showErrors(fields) {
    clearErrors();
    editing = true; render();
    let first = null;
    for (const [k, msg] of Object.entries(fields || {})) {
      const f = el.querySelector(`.bf-f[data-f="${CSS.escape(k)}"]`);
      if (!f) continue;
      f.classList.add('bad');
      const m = document.createElement('div'); m.className = 'bf-err'; m.textContent = msg;
      f.appendChild(m);
      first = first || f;
    }
    if (first) { first.scrollIntoView({ block: 'nearest' }); const i = first.querySelector('input, select'); if (i) i.focus(); }
    return !!first;
  }
  // check mirrors the server's rules so most mistakes show before a round trip.
  function check() {
    read();
    if (stripe) return true;
    const f = {};
    if (!v.email) f['buyer.email'] = 'required'; else if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(v.email)) f['buyer.email'] = 'not an email address';
    if (!v.name) f['buyer.name'] = 'required';
    if (v.method === 'ship') {
      const a = v.address;
      a.postal_code = a.postal_code.toUpperCase();
      if (!a.line1) f['delivery.address.line1'] = 'required';
      if (!a.city) f['delivery.address.city'] = 'required';
      if (!a.postal_code) f['delivery.address.postal_code'] = 'required';
      else if (POSTAL[a.country] && !POSTAL[a.country].test(a.postal_code)) f['delivery.address.postal_code'] = `not a postal code of ${a.country}`;
    }
    return Object.keys(f).length ? (showErrors(f), false) : true;
  }
  return {
    el,
    get complete() { return complete(); },
    get method() { return v.method; },
    check,
    showErrors,
    values() {
      read();
      const out = { delivery: { method: v.method } };
      if (!stripe) {
        out.buyer = { email: v.email, name: v.name };
        if (v.method === 'ship') out.delivery.address = { ...v.address };
      }
      return out;
    },
    save() {
      if (stripe) { try { const s = savedBuyer() || {}; s.method = v.method; localStorage.setItem(KEY, JSON.stringify(s)); } catch { /* private mode */ } return; }
      try { localStorage.setItem(KEY, JSON.stringify({ email: v.email, name: v.name, method: v.method, address: v.address })); } catch { /* private mode */ }
      editing = false;
    },
  };
}
