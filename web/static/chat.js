// Live chat and reactions in the player (/watch/{stream}) and on the
// showroom visitor page (/visit/{showroom}, inline under the card).
// Messages, deletes, pins, the chat mode and aggregated reactions arrive on
// the overlay socket (window.streamdPlayer or streamdVisit .overlay); the viewer sends
// {"type":"chat","text"} and {"type":"react","emoji","count"} on it. A
// display name is asked on the first message (POST /api/viewer sets the
// signed cookie; the socket then reconnects to carry it).
//
// The panel sits above the product card and never covers it or Buy: on a
// phone it is lifted over the card's top edge, and it collapses to a pill.
// User text is rendered with textContent only.
// host: the page's overlay connection and its listener lists.
const player = window.streamdPlayer || window.streamdVisit;
const stage = document.querySelector('.stage') || document.getElementById('chat-root');
const EMOJI = ['❤️', '🔥', '😂', '👏', '😮'];
const MAX_SHOWN = 60;

const chat = {
  me: null, // {id, name}
  messages: [], // wire messages shown, in order
  pin: null,
  mode: { enabled: true, slow_s: 0 },
  errors: [], // error messages received (tests)
  reactionEvents: [], // {at, counts} (tests)
  unread: 0,
  collapsed: false,
};
player.chat = chat;

const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};

// ── DOM ────────────────────────────────────────────────────────────────
const root = el('section', 'chat');
root.setAttribute('aria-label', 'Live chat');
const head = el('div', 'chat-head');
const title = el('span', 'chat-title', 'Live chat');
const slowNote = el('span', 'chat-slow');
slowNote.hidden = true;
const toggle = el('button', 'chat-toggle');
toggle.type = 'button';
toggle.setAttribute('aria-expanded', 'true');
toggle.setAttribute('aria-label', 'Hide chat');
head.append(title, slowNote, toggle);
const pinBox = el('div', 'chat-pin');
pinBox.hidden = true;
const list = el('div', 'chat-list');
list.setAttribute('role', 'log');
list.setAttribute('aria-live', 'polite');
list.setAttribute('aria-relevant', 'additions');
const notice = el('div', 'chat-notice');
notice.setAttribute('role', 'status');
notice.hidden = true;
const form = el('form', 'chat-form');
form.autocomplete = 'off';
const input = el('input', 'chat-input');
input.type = 'text';
input.maxLength = 280;
input.enterKeyHint = 'send';
input.placeholder = 'Ask the host…';
input.setAttribute('aria-label', 'Chat message');
const sendBtn = el('button', 'chat-send', 'Send');
sendBtn.type = 'submit';
form.append(input, sendBtn);
const nameForm = el('form', 'chat-name-form');
nameForm.hidden = true;
const nameLabel = el('div', 'chat-name-label', 'Pick a name to chat — no account needed');
const nameInput = el('input', 'chat-input');
nameInput.maxLength = 32;
nameInput.placeholder = 'Your name';
nameInput.setAttribute('aria-label', 'Your display name');
const nameBtn = el('button', 'chat-send', 'Join');
nameBtn.type = 'submit';
const nameRow = el('div', 'chat-row');
nameRow.append(nameInput, nameBtn);
nameForm.append(nameLabel, nameRow);
const body = el('div', 'chat-body');
body.append(pinBox, list, notice, form, nameForm);
root.append(head, body);

const pill = el('button', 'chat-pill');
pill.type = 'button';
pill.hidden = true;
pill.setAttribute('aria-label', 'Show chat');
const reactBar = el('div', 'react-bar');
reactBar.setAttribute('aria-label', 'React');
for (const e of EMOJI) {
  const b = el('button', 'react-btn', e);
  b.type = 'button';
  b.dataset.emoji = e;
  b.setAttribute('aria-label', 'React ' + e);
  b.addEventListener('click', () => tap(e));
  reactBar.appendChild(b);
}
const hearts = el('div', 'hearts');
hearts.setAttribute('aria-hidden', 'true');
stage.append(hearts, root, pill, reactBar);

// ── Rendering ──────────────────────────────────────────────────────────
function msgNode(m) {
  const row = el('div', 'chat-msg');
  row.dataset.id = m.id;
  const a = m.author || {};
  if (a.staff) row.classList.add('staff');
  if (chat.me && a.id === chat.me.id) row.classList.add('mine');
  if (m.reply_to) {
    const q = el('div', 'chat-quote');
    q.append(el('b', '', m.reply_to.name || ''), document.createTextNode(' ' + (m.reply_to.text || '')));
    row.appendChild(q);
  }
  const line = el('div', 'chat-line');
  if (a.staff) line.appendChild(el('span', 'chat-badge', 'HOST'));
  line.append(el('span', 'chat-author', a.name || 'viewer'), el('span', 'chat-text', m.text || ''));
  row.appendChild(line);
  return row;
}

function nearBottom() { return list.scrollHeight - list.scrollTop - list.clientHeight < 40; }

function addMessage(m, animate) {
  if (chat.messages.some((x) => x.id === m.id)) return;
  const stick = nearBottom();
  chat.messages.push(m);
  const node = msgNode(m);
  if (animate) node.classList.add('fresh');
  list.appendChild(node);
  while (list.children.length > MAX_SHOWN) { list.firstElementChild.remove(); chat.messages.shift(); }
  if (stick || (chat.me && m.author && m.author.id === chat.me.id)) list.scrollTop = list.scrollHeight;
  if (chat.collapsed) { chat.unread++; renderPill(); }
}

function renderPin() {
  pinBox.replaceChildren();
  pinBox.hidden = !chat.pin;
  if (!chat.pin) return;
  const a = chat.pin.author || {};
  pinBox.append(el('span', 'chat-pin-icon', 'Pinned'), el('span', 'chat-author', a.name || ''), el('span', 'chat-text', chat.pin.text || ''));
}

function renderMode() {
  const on = chat.mode.enabled !== false;
  input.disabled = sendBtn.disabled = !on;
  input.placeholder = on ? 'Ask the host…' : 'Chat is off for now';
  slowNote.hidden = !(on && chat.mode.slow_s > 0);
  slowNote.textContent = `Slow mode · ${chat.mode.slow_s} s`;
}

function renderPill() {
  pill.textContent = chat.unread ? `Chat · ${chat.unread} new` : 'Chat';
}

let noticeTimer = null;
function say(text, kind = 'error') {
  notice.textContent = text;
  notice.dataset.kind = kind;
  notice.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { notice.hidden = true; }, 4500);
}

// ── Events from the socket ─────────────────────────────────────────────
function onSnapshot(m) {
  list.replaceChildren();
  chat.messages = [];
  for (const x of m.chat || []) addMessage(x, false);
  chat.pin = m.pin || null;
  if (m.chat_mode) chat.mode = m.chat_mode;
  renderPin();
  renderMode();
  list.scrollTop = list.scrollHeight;
}

function onEvent(m) {
  switch (m.type) {
    case 'chat': addMessage(m, true); break;
    case 'chat_delete': {
      chat.messages = chat.messages.filter((x) => x.id !== m.id);
      const n = list.querySelector(`[data-id="${CSS.escape(m.id)}"]`);
      if (n) n.remove();
      if (chat.pin && chat.pin.id === m.id) { chat.pin = null; renderPin(); }
      break;
    }
    case 'chat_pin': chat.pin = m.message || null; renderPin(); break;
    case 'chat_mode': chat.mode = { enabled: m.enabled, slow_s: m.slow_s }; renderMode(); break;
    case 'reactions': onReactions(m); break;
    default:
  }
}

const errorText = {
  too_long: 'That message is too long — 280 characters at most.',
  rate_limited: null, // the server's message says how long to wait
  muted: 'You can’t send messages in this chat.',
  chat_off: 'The host turned chat off for now.',
};
function onError(m) {
  chat.errors.push(m);
  if (m.code === 'no_viewer') { askName(); return; }
  say(errorText[m.code] || m.message || 'Message not sent.');
}

player.snapshotListeners.push(onSnapshot);
player.eventListeners.push(onEvent);
player.errorListeners.push(onError);
if (player.lastSnapshot) onSnapshot(player.lastSnapshot);

// ── Sending ────────────────────────────────────────────────────────────
let pendingText = null;
function askName() {
  form.hidden = true;
  nameForm.hidden = false;
  nameInput.focus();
}

form.addEventListener('submit', (e) => {
  e.preventDefault();
  const text = input.value.trim();
  if (!text) return;
  if (!chat.me) { pendingText = text; askName(); return; }
  if (!player.overlay.send({ type: 'chat', text })) { say('Reconnecting — try again in a moment.'); return; }
  input.value = '';
});

nameForm.addEventListener('submit', async (e) => {
  e.preventDefault();
  const name = nameInput.value.trim();
  if (!name) return;
  nameBtn.disabled = true;
  try {
    const res = await fetch('/api/viewer', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ name }), credentials: 'same-origin' });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) { say(data.message || 'That name does not work — try another.'); return; }
    chat.me = data;
    nameForm.hidden = true;
    form.hidden = false;
    await player.overlay.reconnect(); // the socket now carries the cookie
    if (pendingText) {
      player.overlay.send({ type: 'chat', text: pendingText });
      pendingText = null;
      input.value = '';
    }
    input.focus();
  } catch {
    say('Network problem — try again.');
  } finally {
    nameBtn.disabled = false;
  }
});

fetch('/api/viewer', { credentials: 'same-origin' }).then((r) => (r.ok ? r.json() : null)).then((v) => { if (v && v.id) chat.me = v; }).catch(() => {});

// ── Reactions: taps are batched (one message per emoji per 300 ms) and
// drawn at once; the server's aggregated counts draw everyone else's.
const taps = {};
let ownSinceEvent = 0;
let tapTimer = null;
function tap(emoji) {
  taps[emoji] = (taps[emoji] || 0) + 1;
  ownSinceEvent++;
  float(emoji);
  if (!tapTimer) tapTimer = setTimeout(flushTaps, 300);
}
function flushTaps() {
  tapTimer = null;
  for (const [emoji, n] of Object.entries(taps)) {
    player.overlay.send({ type: 'react', emoji, count: Math.min(n, 10) });
    delete taps[emoji];
  }
}
function onReactions(m) {
  chat.reactionEvents.push({ at: performance.now(), counts: m.counts });
  let skip = ownSinceEvent; // already drawn when tapped
  ownSinceEvent = 0;
  let drawn = 0;
  for (const [emoji, n] of Object.entries(m.counts || {})) {
    for (let i = 0; i < n && drawn < 16; i++) {
      if (skip > 0) { skip--; continue; }
      setTimeout(() => float(emoji), Math.random() * 600);
      drawn++;
    }
  }
}
function float(emoji) {
  if (hearts.childElementCount > 40) return;
  const h = el('span', 'heart', emoji);
  h.style.setProperty('--dx', `${Math.round((Math.random() - 0.5) * 70)}px`);
  h.style.setProperty('--dur', `${(2.2 + Math.random() * 1.2).toFixed(2)}s`);
  h.addEventListener('animationend', () => h.remove());
  hearts.appendChild(h);
}

// ── Layout: collapse, and stay above the product card ──────────────────
function setCollapsed(c) {
  chat.collapsed = c;
  root.hidden = c;
  pill.hidden = !c;
  toggle.setAttribute('aria-expanded', String(!c));
  if (!c) { chat.unread = 0; list.scrollTop = list.scrollHeight; }
  renderPill();
}
toggle.addEventListener('click', () => setCollapsed(true));
pill.addEventListener('click', () => setCollapsed(false));

const wide = matchMedia('(min-width: 900px)');
function place() {
  const card = stage.querySelector('.overlay .card');
  let bottom = 12;
  if (card && !card.hidden && !wide.matches) {
    // offsetTop ignores the card's slide-in transform; the overlay box is
    // anchored at the stage's bottom, so -offsetTop is the card's top edge.
    bottom = Math.max(bottom, -card.offsetTop + 10);
  }
  stage.style.setProperty('--chat-bottom', `${bottom}px`);
}
const cardEl = stage.querySelector('.overlay .card');
if (cardEl) {
  new ResizeObserver(place).observe(cardEl);
  new MutationObserver(place).observe(cardEl, { attributes: true, attributeFilter: ['hidden', 'class'] });
}
window.addEventListener('resize', place);
wide.addEventListener('change', place);
place();
renderMode();
renderPill();
