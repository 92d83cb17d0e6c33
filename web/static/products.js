// The catalog editor (/console/{stream}/products): create and edit
// products — title, description, price, photos (uploaded and resized by the
// server, or a URL), variants with their own stock, per-buyer limit —
// archive them, and import or export Shopify product CSVs (the import is
// previewed before it is applied). Every open console and player hears of
// a change through the overlay's "catalog" events; this page does too.
import { connectOverlay } from './overlay-client.js';
import { toast as showToast } from './toast.js';
import { fmtMoney, fmtFromPrice } from './buy.js';

const parts = location.pathname.split('/').filter(Boolean); // console, {stream}, products
const streamId = decodeURIComponent(parts[1] || '');
const $ = (id) => document.getElementById(id);
const TOKEN_KEY = 'streamd.staff'; // shared with the live console (same tab)
$('back').href = `/console/${encodeURIComponent(streamId)}`;

let token = '';
const S = {
  products: [], // as GET /api/products returns them (staff: archived too)
  editing: null, // product id, or '' for a new one, or null
  photos: [],
  variants: [], // {id, title, stock, existing, sold, available}
  importText: '',
  loads: 0,
};
window.streamdProducts = S;

async function api(method, path, body, headers = {}) {
  const h = { Authorization: 'Bearer ' + token, ...headers };
  let payload = body;
  if (body !== undefined && !(body instanceof Blob) && typeof body !== 'string') {
    h['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  try {
    const res = await fetch(path, { method, headers: h, body: payload, cache: 'no-store' });
    let data = null;
    try { data = await res.json(); } catch { /* not JSON */ }
    return { ok: res.ok, status: res.status, data };
  } catch {
    return { ok: false, status: 0, data: { message: 'network problem — check the connection' } };
  }
}
const errMsg = (r) => (r.data && (r.data.message || r.data.error)) || `HTTP ${r.status}`;

function toast(text, kind = 'ok') { S.lastToast = showToast(text, kind); }

// ── Sign in (the console's token, kept in this tab) ───────────────────
async function signIn(tok, quiet) {
  token = tok;
  const r = await api('GET', `/api/streams/${encodeURIComponent(streamId)}`);
  if (!r.ok) {
    token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    $('signin').hidden = false;
    if (!quiet) {
      $('signin-error').hidden = false;
      $('signin-error').textContent = r.status === 401 ? 'Wrong staff token — check it and try again.' : `Could not sign in: ${errMsg(r)}`;
    }
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, tok);
  $('signin').hidden = true;
  $('app').hidden = false;
  await load();
  connectOverlay(streamId, {
    onEvent: (m) => { if (m.type === 'catalog') load(); },
    onStock: (m) => { const p = S.products.find((x) => x.id === m.product_id); if (p) { p.available = m.available; renderRows(); } },
  });
}
$('signin-form').addEventListener('submit', (e) => { e.preventDefault(); signIn($('token').value.trim()); });
const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) signIn(saved, true); else $('signin').hidden = false;

// ── List ───────────────────────────────────────────────────────────────
async function load() {
  const r = await api('GET', '/api/products');
  if (!r.ok) { toast('Could not load products: ' + errMsg(r), 'error'); return; }
  S.products = (r.data.products || []).sort((a, b) => (a.active === b.active ? a.title.localeCompare(b.title) : a.active ? -1 : 1));
  S.loads++;
  renderRows();
}
$('search').addEventListener('input', renderRows);

function renderRows() {
  const ul = $('rows');
  const term = $('search').value.trim().toLowerCase();
  ul.textContent = '';
  for (const p of S.products) {
    if (term && !`${p.title} ${p.id}`.toLowerCase().includes(term)) continue;
    const li = document.createElement('li');
    li.className = 'pp-item' + (p.active ? '' : ' archived') + (S.editing === p.id ? ' selected' : '');
    li.dataset.product = p.id;
    li.tabIndex = 0;
    li.innerHTML = '<div class="pp-thumb"></div><div class="pp-main"><div class="pp-name"></div><div class="pp-sub"></div></div><div class="pp-price"></div>';
    const img = p.images && p.images[0];
    if (img) { const i = document.createElement('img'); i.src = img; i.alt = ''; li.querySelector('.pp-thumb').appendChild(i); }
    else li.querySelector('.pp-thumb').textContent = (p.title || '?').charAt(0).toUpperCase();
    li.querySelector('.pp-name').textContent = p.title;
    const variants = (p.skus || []).length > 1 ? ` · ${p.skus.length} variants` : '';
    li.querySelector('.pp-sub').textContent = (p.active ? `${p.available} available` : 'Archived') + variants;
    li.querySelector('.pp-price').textContent = fmtFromPrice(p);
    li.addEventListener('click', () => edit(p.id));
    li.addEventListener('keydown', (e) => { if (e.key === 'Enter') edit(p.id); });
    ul.appendChild(li);
  }
  if (!ul.children.length) ul.innerHTML = `<li class="muted pp-none">${S.products.length ? 'No product matches.' : 'No products yet: add one or import a CSV.'}</li>`;
}

// ── Editor ─────────────────────────────────────────────────────────────
const price = (m) => (m.amount / 100).toFixed(2);
function edit(id) {
  const p = id ? S.products.find((x) => x.id === id) : null;
  S.editing = p ? p.id : '';
  $('edit-empty').hidden = true;
  $('form').hidden = false;
  $('form-error').hidden = true;
  $('form-title').textContent = p ? 'Edit product' : 'New product';
  $('f-id-wrap').hidden = !!p;
  $('f-id').required = !p;
  $('f-id').value = '';
  delete $('f-id').dataset.touched;
  $('f-title').value = p ? p.title : '';
  $('f-desc').value = p ? p.description || '' : '';
  $('f-price').value = p ? price(p.price) : '';
  $('f-currency').value = (p ? p.price.currency : (S.products[0] ? S.products[0].price.currency : 'eur')).toUpperCase();
  $('f-limit').value = p && p.per_buyer_limit ? String(p.per_buyer_limit) : '';
  S.photos = p ? [...p.images] : [];
  const skus = p ? p.skus || [] : [];
  const single = p && skus.length === 1 && skus[0].id === 'default';
  S.variants = single || !p ? [] : skus.map((k) => ({ id: k.id, title: k.title || k.id, stock: k.stock, price: k.price ? price(k.price) : '', existing: true, sold: k.sold, available: k.available }));
  $('f-stock').value = single ? String(skus[0].stock) : '0';
  $('form-status').textContent = p ? (p.active ? 'On sale' : 'Archived') : '';
  $('form-status').dataset.active = String(!p || p.active);
  $('archive').hidden = !p;
  $('archive').textContent = p && !p.active ? 'Restore' : 'Archive';
  renderPhotos();
  renderVariants();
  renderRows();
  $('editor').scrollTop = 0;
  $('f-title').focus({ preventScroll: true });
}
$('new').addEventListener('click', () => edit(''));

// A handle from the title, until staff type their own.
$('f-title').addEventListener('input', () => {
  if (S.editing === '' && !$('f-id').dataset.touched) $('f-id').value = slug($('f-title').value);
});
$('f-id').addEventListener('input', () => { $('f-id').dataset.touched = '1'; });
function slug(s) { return s.toLowerCase().normalize('NFKD').replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 64); }

function renderPhotos() {
  const box = $('photos');
  box.textContent = '';
  S.photos.forEach((url, i) => {
    const d = document.createElement('div');
    d.className = 'pp-photo';
    const img = document.createElement('img');
    img.src = url;
    img.alt = '';
    const x = document.createElement('button');
    x.type = 'button';
    x.className = 'pp-photo-x';
    x.setAttribute('aria-label', 'Remove photo');
    x.textContent = '×';
    x.addEventListener('click', () => { S.photos.splice(i, 1); renderPhotos(); });
    d.append(img, x);
    if (i === 0) { const b = document.createElement('span'); b.className = 'pp-photo-main'; b.textContent = 'Card'; d.appendChild(b); }
    box.appendChild(d);
  });
  if (!S.photos.length) box.innerHTML = '<p class="muted pp-nophoto">No photo yet: the card shows the first letter of the title.</p>';
}

$('f-upload').addEventListener('change', async (e) => {
  const files = [...e.target.files];
  e.target.value = '';
  for (const f of files) {
    const label = e.target.closest('label');
    label.classList.add('busy');
    const r = await api('POST', '/api/images', f, { 'Content-Type': f.type || 'application/octet-stream' });
    label.classList.remove('busy');
    if (!r.ok) { toast(`Could not upload ${f.name}: ${errMsg(r)}`, 'error'); continue; }
    S.photos.push(r.data.url);
    renderPhotos();
  }
});
$('f-url-add').addEventListener('click', () => {
  const u = $('f-url').value.trim();
  if (!/^https?:\/\/\S+$/.test(u)) { toast('Paste an image URL starting with https://', 'error'); return; }
  S.photos.push(u);
  $('f-url').value = '';
  renderPhotos();
});

function renderVariants() {
  const has = S.variants.length > 0;
  $('variants').hidden = !has;
  $('single-stock').hidden = has;
  const tb = $('variant-rows');
  tb.textContent = '';
  S.variants.forEach((v, i) => {
    const tr = document.createElement('tr');
    tr.innerHTML = '<td><input class="v-title" placeholder="M / black"></td><td><input class="v-id" placeholder="auto"></td><td><input class="v-stock" inputmode="numeric"></td>' +
      '<td><input class="v-price" inputmode="decimal" aria-label="Variant price (empty: the product\'s price)"></td><td class="v-note"></td>';
    const t = tr.querySelector('.v-title'), id = tr.querySelector('.v-id'), st = tr.querySelector('.v-stock'), pr = tr.querySelector('.v-price');
    t.value = v.title || '';
    id.value = v.id || '';
    id.readOnly = v.existing;
    st.value = String(v.stock ?? 0);
    t.addEventListener('input', () => { v.title = t.value; });
    id.addEventListener('input', () => { v.id = id.value.trim(); });
    st.addEventListener('input', () => { v.stock = st.value; });
    // Empty: the variant costs what the product costs.
    pr.value = v.price || '';
    pr.placeholder = $('f-price').value || 'same';
    pr.addEventListener('input', () => { v.price = pr.value.trim(); });
    const note = tr.querySelector('.v-note');
    if (v.existing) note.textContent = `${v.available} left${v.sold ? ` · ${v.sold} sold` : ''}`;
    else {
      const x = document.createElement('button');
      x.type = 'button';
      x.className = 'ghost pp-x';
      x.textContent = '×';
      x.setAttribute('aria-label', 'Remove variant');
      x.addEventListener('click', () => { S.variants.splice(i, 1); renderVariants(); });
      note.appendChild(x);
    }
    tb.appendChild(tr);
  });
}
$('add-variant').addEventListener('click', () => {
  S.variants.push({ id: '', title: '', stock: 0, existing: false });
  renderVariants();
  const rows = $('variant-rows').querySelectorAll('.v-title');
  rows[rows.length - 1].focus();
});

function formError(msg) { const e = $('form-error'); e.hidden = false; e.textContent = msg; S.formError = msg; }

$('form').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('form-error').hidden = true;
  const isNew = S.editing === '';
  const id = isNew ? $('f-id').value.trim() : S.editing;
  const amount = Math.round(parseFloat($('f-price').value.replace(',', '.')) * 100);
  if (!(amount >= 0)) return formError('Enter a price, e.g. 29.00');
  const limitRaw = $('f-limit').value.trim();
  const limit = limitRaw ? parseInt(limitRaw, 10) : 0;
  if (limitRaw && !(limit > 0)) return formError('Per buyer must be a positive number, or empty for no limit');
  const body = {
    title: $('f-title').value.trim(),
    description: $('f-desc').value.trim(),
    images: S.photos,
    price: { amount, currency: $('f-currency').value.trim().toLowerCase() },
    per_buyer_limit: limit,
  };
  const variants = [];
  for (const v of S.variants) {
    const stock = parseInt(v.stock, 10);
    if (!(stock >= 0)) return formError(`Stock of “${v.title || v.id}” must be 0 or more`);
    if (!v.title && !v.id) return formError('Give each variant a name, e.g. “M / black”');
    let own = null; // the variant's own price, null: the product's
    if (v.price) {
      const a = Math.round(parseFloat(v.price.replace(',', '.')) * 100);
      if (!(a > 0)) return formError(`Price of “${v.title || v.id}” must be more than 0, or empty for the product's price`);
      own = { amount: a, currency: body.price.currency };
    }
    variants.push({ id: v.id || slug(`${id}-${v.title}`), title: v.title || v.id, stock, price: own, existing: v.existing });
  }
  // On the wire: an existing variant's null price clears its own price; a
  // new variant without one simply has none.
  const wire = ({ id: k, title, stock, price: own }) => (own ? { id: k, title, stock, price: own } : { id: k, title, stock });
  const single = parseInt($('f-stock').value, 10);
  if (!variants.length && !(single >= 0)) return formError('Stock must be 0 or more');
  let r;
  if (isNew) {
    if (!id) return formError('Give the product a handle (its id), e.g. linen-shirt');
    Object.assign(body, { id, active: true });
    if (variants.length) body.skus = variants.map(wire);
    else body.stock = single;
    r = await api('POST', '/api/products', body);
  } else {
    if (variants.length) {
      body.skus = variants.filter((v) => v.existing).map(({ id: k, title, stock, price: own }) => ({ id: k, title, stock, price: own }));
      body.add_skus = variants.filter((v) => !v.existing).map(wire);
    } else body.stock = single;
    r = await api('PATCH', `/api/products/${encodeURIComponent(id)}`, body);
  }
  if (!r.ok) return formError(`Not saved: ${errMsg(r)}`);
  toast(isNew ? `Created: ${body.title}` : `Saved: ${body.title}`);
  await load();
  edit(r.data.id);
});

$('archive').addEventListener('click', async () => {
  const p = S.products.find((x) => x.id === S.editing);
  if (!p) return;
  const r = await api('PATCH', `/api/products/${encodeURIComponent(p.id)}`, { active: !p.active });
  if (!r.ok) { toast(`Could not ${p.active ? 'archive' : 'restore'}: ${errMsg(r)}`, 'error'); return; }
  toast(p.active ? `Archived: ${p.title} (no longer on sale)` : `Restored: ${p.title}`);
  await load();
  edit(p.id);
});

// ── Import and export (Shopify product CSV) ────────────────────────────
$('export').addEventListener('click', async () => {
  const res = await fetch('/api/products.csv', { headers: { Authorization: 'Bearer ' + token } });
  if (!res.ok) { toast('Could not export the catalog', 'error'); return; }
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement('a');
  a.href = url;
  a.download = 'products.csv';
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
});

$('import-file').addEventListener('change', async (e) => {
  const f = e.target.files[0];
  e.target.value = '';
  if (!f) return;
  S.importText = await f.text();
  $('import-file-name').textContent = f.name;
  await preview();
});

// importText lets a test (or a paste) import without a file picker.
S.importCSV = async (text, name = 'products.csv') => { S.importText = text; $('import-file-name').textContent = name; await preview(); };

async function preview() {
  const r = await api('POST', '/api/products/import?dry_run=1', S.importText, { 'Content-Type': 'text/csv' });
  $('import-dialog').hidden = false;
  const counts = $('import-counts');
  const errs = $('import-errors');
  errs.textContent = '';
  if (!r.ok) {
    counts.textContent = `This file cannot be imported: ${errMsg(r)}`;
    $('import-apply').disabled = true;
    S.preview = { error: errMsg(r) };
    return;
  }
  const d = r.data;
  S.preview = d;
  counts.textContent = '';
  for (const [n, label, cls] of [[d.created, 'new', 'new'], [d.updated, 'updated', 'upd'], [d.unchanged, 'unchanged', 'same'], [d.errors.length, d.errors.length === 1 ? 'error' : 'errors', 'err']]) {
    const s = document.createElement('span');
    s.className = 'pp-count ' + cls;
    s.innerHTML = '<b></b> ';
    s.querySelector('b').textContent = String(n);
    s.append(label);
    counts.appendChild(s);
  }
  for (const er of d.errors) {
    const li = document.createElement('li');
    li.innerHTML = '<span class="pp-err-row"></span> <b></b> <span></span>';
    li.children[0].textContent = `Row ${er.row}`;
    li.children[1].textContent = er.handle || '(no handle)';
    li.children[2].textContent = er.message;
    errs.appendChild(li);
  }
  const todo = d.created + d.updated;
  $('import-apply').disabled = todo === 0;
  $('import-apply').textContent = todo ? `Apply: ${todo} product${todo > 1 ? 's' : ''}` + (d.errors.length ? ', skip the errors' : '') : 'Nothing to change';
}

$('import-cancel').addEventListener('click', () => { $('import-dialog').hidden = true; });
$('import-apply').addEventListener('click', async () => {
  $('import-apply').disabled = true;
  const r = await api('POST', '/api/products/import', S.importText, { 'Content-Type': 'text/csv' });
  $('import-dialog').hidden = true;
  if (!r.ok) { toast('Import failed: ' + errMsg(r), 'error'); return; }
  S.imported = r.data;
  toast(`Imported: ${r.data.created} new, ${r.data.updated} updated` + (r.data.errors.length ? `, ${r.data.errors.length} skipped` : ''));
  await load();
});
