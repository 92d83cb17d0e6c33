// The chat column of the staff console (/console/{stream}): read the chat
// with questions highlighted, reply as the host, pin, delete, mute or
// shadow-ban a viewer, slow mode, chat on/off and the blocked words.
// Starts once the console is signed in (the staff token is in this tab's
// sessionStorage); follows the chat on its own overlay socket.
import { connectOverlay } from './overlay-client.js';

const streamId = decodeURIComponent(location.pathname.split('/').filter(Boolean).pop());
const root = document.getElementById('cchat');
const base = `/api/streams/${encodeURIComponent(streamId)}/chat`;
const C = { messages: new Map(), pin: null, settings: null, bans: {}, selected: null, replyTo: null, questionsOnly: false, overlay: null };
window.streamdChat = C;

const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};
const token = () => sessionStorage.getItem('streamd.staff') || '';

async function api(method, path, body) {
  const headers = { Authorization: 'Bearer ' + token() };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  try {
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
    const data = await res.json().catch(() => null);
    return { ok: res.ok, status: res.status, data };
  } catch {
    return { ok: false, status: 0, data: { message: 'network problem — check the connection' } };
  }
}

// ── DOM ────────────────────────────────────────────────────────────────
root.innerHTML = `
  <div class="cchat-head">
    <span class="cchat-title">Chat</span>
    <button type="button" class="cchat-chip" data-act="questions" aria-pressed="false">Questions <b class="cchat-qn">0</b></button>
    <span class="cchat-sp"></span>
    <label class="cchat-slow">Slow <select aria-label="Slow mode"><option value="0">off</option><option value="5">5 s</option><option value="10">10 s</option><option value="30">30 s</option><option value="60">60 s</option></select></label>
    <button type="button" class="cchat-chip" data-act="words">Blocked words</button>
    <button type="button" class="cchat-switch" data-act="onoff" aria-pressed="true">Chat on</button>
  </div>
  <form class="cchat-words" hidden>
    <label>Blocked words — one per line. Messages with them reach nobody but their author.<textarea rows="3"></textarea></label>
    <div class="cchat-words-actions"><button type="submit">Save</button><button type="button" class="ghost" data-act="words-cancel">Cancel</button></div>
  </form>
  <div class="cchat-pin" hidden><span class="cchat-pin-tag">Pinned</span><span class="cchat-pin-text"></span><button type="button" class="ghost" data-act="unpin">Unpin</button></div>
  <ol class="cchat-list" aria-live="polite"><li class="cchat-empty muted">Viewers' messages appear here. Questions are highlighted.</li></ol>
  <form class="cchat-reply" autocomplete="off">
    <div class="cchat-replying" hidden><span></span><button type="button" class="cchat-x" data-act="reply-cancel" aria-label="Cancel reply">×</button></div>
    <div class="cchat-row"><input maxlength="280" placeholder="Write to viewers as the host…" aria-label="Message as the host"><button type="submit">Send</button></div>
  </form>`;
const $ = (s) => root.querySelector(s);
const list = $('.cchat-list');

function toast(text, kind = 'ok') {
  const t = document.getElementById('toasts');
  if (!t) return;
  const d = el('div', 'toast ' + kind, text);
  t.appendChild(d);
  setTimeout(() => d.classList.add('out'), kind === 'error' ? 5000 : 2500);
  setTimeout(() => d.remove(), kind === 'error' ? 5400 : 2900);
}
const fail = (what, r) => toast(`${what}: ${(r.data && r.data.message) || 'HTTP ' + r.status}`, 'error');

// ── Messages ───────────────────────────────────────────────────────────
const isQuestion = (m) => !m.author.staff && /[?？]\s*$/.test(m.text || '');
const timeOf = (ms) => new Date(ms || Date.now()).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });

function row(m) {
  const li = el('li', 'cchat-msg');
  li.dataset.id = m.id;
  li.classList.toggle('question', isQuestion(m));
  li.classList.toggle('staff', !!m.author.staff);
  const ban = C.bans[m.author.id];
  if (ban) li.dataset.ban = ban;
  const main = el('div', 'cchat-main');
  if (m.reply_to) main.appendChild(el('div', 'cchat-quote', `↪ ${m.reply_to.name}: ${m.reply_to.text}`));
  const line = el('div', 'cchat-line');
  if (m.author.staff) line.appendChild(el('span', 'cchat-badge', 'HOST'));
  line.append(el('span', 'cchat-author', m.author.name), el('span', 'cchat-text', m.text));
  main.append(line, el('div', 'cchat-meta', `${timeOf(m.server_time)}${ban ? ' · ' + (ban === 'mute' ? 'muted' : 'hidden from others') : ''}`));
  li.appendChild(main);
  if (C.selected === m.id) {
    li.classList.add('selected');
    const acts = el('div', 'cchat-acts');
    const b = (label, act, cls = '') => { const x = el('button', 'cchat-act ' + cls, label); x.type = 'button'; x.dataset.act = act; acts.appendChild(x); };
    if (!m.author.staff) b('Reply', 'reply');
    b(C.pin && C.pin.id === m.id ? 'Unpin' : 'Pin', C.pin && C.pin.id === m.id ? 'unpin' : 'pin');
    b('Delete', 'delete', 'danger');
    if (!m.author.staff) {
      if (ban) b('Unban', 'unban');
      else { b('Mute', 'mute', 'danger'); b('Shadow ban', 'shadow', 'danger'); }
    }
    li.appendChild(acts);
  }
  li.hidden = C.questionsOnly && !isQuestion(m);
  return li;
}

function render() {
  const stick = list.scrollHeight - list.scrollTop - list.clientHeight < 60;
  list.replaceChildren();
  let q = 0;
  for (const m of C.messages.values()) {
    if (isQuestion(m)) q++;
    list.appendChild(row(m));
  }
  if (!C.messages.size) list.appendChild(el('li', 'cchat-empty muted', 'Viewers\u2019 messages appear here. Questions are highlighted.'));
  $('.cchat-qn').textContent = String(q);
  if (stick) list.scrollTop = list.scrollHeight;
  const pin = $('.cchat-pin');
  pin.hidden = !C.pin;
  if (C.pin) $('.cchat-pin-text').textContent = `${C.pin.author.name}: ${C.pin.text}`;
  const rep = $('.cchat-replying');
  rep.hidden = !C.replyTo;
  if (C.replyTo) rep.firstElementChild.textContent = `Replying to ${C.replyTo.author.name}: ${C.replyTo.text}`;
}

function renderSettings() {
  const s = C.settings;
  if (!s) return;
  const sw = root.querySelector('[data-act=onoff]');
  sw.setAttribute('aria-pressed', String(s.enabled));
  sw.textContent = s.enabled ? 'Chat on' : 'Chat off';
  $('.cchat-slow select').value = String(s.slow_s);
  if (![...$('.cchat-slow select').options].some((o) => o.value === String(s.slow_s))) {
    $('.cchat-slow select').append(new Option(`${s.slow_s} s`, String(s.slow_s), true, true));
  }
}

function add(m) {
  C.messages.set(m.id, m);
  while (C.messages.size > 200) C.messages.delete(C.messages.keys().next().value);
}

// ── Actions ────────────────────────────────────────────────────────────
list.addEventListener('click', async (e) => {
  const li = e.target.closest('.cchat-msg');
  if (!li) return;
  const m = C.messages.get(li.dataset.id);
  const act = e.target.closest('[data-act]');
  if (!act) {
    C.selected = C.selected === m.id ? null : m.id;
    render();
    const sel = list.querySelector('.cchat-msg.selected');
    if (sel) sel.scrollIntoView({ block: 'nearest' }); // its actions in view
    return;
  }
  let r;
  switch (act.dataset.act) {
    case 'reply': C.replyTo = m; C.selected = null; render(); $('.cchat-reply input').focus(); return;
    case 'pin': r = await api('PUT', `${base}/pin`, { id: m.id }); if (!r.ok) fail('Could not pin', r); break;
    case 'unpin': r = await api('DELETE', `${base}/pin`); if (!r.ok) fail('Could not unpin', r); break;
    case 'delete': r = await api('DELETE', `${base}/${encodeURIComponent(m.id)}`); if (!r.ok) fail('Could not delete', r); break;
    case 'mute': case 'shadow':
      r = await api('POST', `${base}/bans`, { viewer: m.author.id, mode: act.dataset.act });
      if (r.ok) { C.bans[m.author.id] = act.dataset.act; toast(act.dataset.act === 'mute' ? `${m.author.name} is muted` : `${m.author.name}'s messages now reach only them`); } else fail('Could not ban', r);
      break;
    case 'unban':
      r = await api('DELETE', `${base}/bans/${encodeURIComponent(m.author.id)}`);
      if (r.ok) delete C.bans[m.author.id]; else fail('Could not lift the ban', r);
      break;
    default: return;
  }
  if (C.selected === m.id) C.selected = null; // staff may have moved on meanwhile
  render();
});

$('.cchat-reply').addEventListener('submit', async (e) => {
  e.preventDefault();
  const input = $('.cchat-reply input');
  const text = input.value.trim();
  if (!text) return;
  const body = { text };
  if (C.replyTo) body.reply_to = C.replyTo.id;
  input.disabled = true;
  const r = await api('POST', base, body);
  input.disabled = false;
  if (!r.ok) { fail('Not sent', r); return; }
  input.value = '';
  C.replyTo = null;
  render();
  input.focus();
});

root.addEventListener('click', async (e) => {
  const act = e.target.closest('[data-act]');
  if (!act || act.closest('.cchat-list')) return;
  switch (act.dataset.act) {
    case 'reply-cancel': C.replyTo = null; render(); break;
    case 'unpin': { const r = await api('DELETE', `${base}/pin`); if (!r.ok) fail('Could not unpin', r); break; }
    case 'questions':
      C.questionsOnly = !C.questionsOnly;
      act.setAttribute('aria-pressed', String(C.questionsOnly));
      render();
      break;
    case 'onoff': await patch({ enabled: !C.settings.enabled }); break;
    case 'words': {
      const f = $('.cchat-words');
      f.hidden = !f.hidden;
      if (!f.hidden) { f.querySelector('textarea').value = (C.settings.blocked_words || []).join('\n'); f.querySelector('textarea').focus(); }
      break;
    }
    case 'words-cancel': $('.cchat-words').hidden = true; break;
    default:
  }
});
$('.cchat-slow select').addEventListener('change', (e) => patch({ slow_s: Number(e.target.value) }));
$('.cchat-words').addEventListener('submit', async (e) => {
  e.preventDefault();
  const words = e.target.querySelector('textarea').value.split('\n').map((w) => w.trim()).filter(Boolean);
  if (await patch({ blocked_words: words })) { e.target.hidden = true; toast(`${words.length} blocked word${words.length === 1 ? '' : 's'} saved`); }
});

async function patch(body) {
  const r = await api('PATCH', base, body);
  if (!r.ok) { fail('Chat settings not saved', r); return false; }
  C.settings = r.data;
  renderSettings();
  return true;
}

// ── Start after sign-in ────────────────────────────────────────────────
async function start() {
  const r = await api('GET', base);
  if (!r.ok) { setTimeout(start, 2000); return; }
  C.settings = r.data;
  for (const b of r.data.bans || []) C.bans[b.viewer] = b.mode;
  for (const m of r.data.messages || []) add(m);
  C.pin = r.data.pin || null;
  renderSettings();
  render();
  C.overlay = connectOverlay(streamId, {
    onSnapshot: (m) => {
      C.messages.clear();
      for (const x of m.chat || []) add(x);
      C.pin = m.pin || null;
      render();
    },
    onEvent: (m) => {
      if (m.type === 'chat') { add(m); render(); }
      else if (m.type === 'chat_delete') { C.messages.delete(m.id); if (C.selected === m.id) C.selected = null; if (C.replyTo && C.replyTo.id === m.id) C.replyTo = null; if (C.pin && C.pin.id === m.id) C.pin = null; render(); }
      else if (m.type === 'chat_pin') { C.pin = m.message || null; render(); }
      else if (m.type === 'chat_mode') { Object.assign(C.settings, { enabled: m.enabled, slow_s: m.slow_s }); renderSettings(); }
    },
  });
  C.ready = true;
}
const waitSignIn = setInterval(() => {
  const con = document.getElementById('console');
  if (token() && con && !con.hidden) { clearInterval(waitSignIn); start(); }
}, 250);
