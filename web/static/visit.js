// The showroom visitor page (/visit/{showroom}, showroom id = stream id):
// reached from a QR code on a shelf. No video: the card on screen is shown at
// once, with live stock, and Buy orders with "source":"showroom".
import { connectOverlay } from './overlay-client.js';
import { createCardView } from './card.js';

const streamId = decodeURIComponent(location.pathname.split('/').filter(Boolean).pop());
const $ = (id) => document.getElementById(id);
const visitor = { streamId, source: 'showroom', serverNow: () => Date.now() };
window.streamdVisit = visitor;

const cardView = createCardView($('overlay'), visitor);
visitor.cardView = cardView;
$('watch').href = `/watch/${encodeURIComponent(streamId)}`;

function show(card, meta) {
  cardView.show(card, meta);
  $('empty').hidden = !!card;
}
function setLive(live) {
  $('live').dataset.live = String(!!live);
  $('live').textContent = live ? '● LIVE' : 'Offline';
}

fetch(`/api/streams/${encodeURIComponent(streamId)}/public`).then((r) => r.ok ? r.json() : null).then((s) => {
  if (!s) { $('title').textContent = 'This showroom is not on streamd'; return; }
  $('title').textContent = s.title || streamId;
  document.title = `${s.title || streamId} · live`;
}).catch(() => {});

// chat.js (the showroom chat) hangs off these, as in the player.
visitor.snapshotListeners = [];
visitor.eventListeners = [];
visitor.errorListeners = [];
const ov = connectOverlay(streamId, {
  onSnapshot: (m) => {
    setLive(m.live); cardView.setStock(m.stock); show(m.card, m);
    visitor.lastSnapshot = m;
    for (const fn of visitor.snapshotListeners) fn(m);
  },
  onEvent: (m) => { for (const fn of visitor.eventListeners) fn(m); },
  onError: (m) => { for (const fn of visitor.errorListeners) fn(m); },
  onCard: (m) => show(m.action === 'hide' ? null : m.card, m), // visitors: at once
  onStock: (m) => cardView.stock(m.product_id, m.available),
  onLive: (m) => setLive(m.live),
});
visitor.overlay = ov;
visitor.serverNow = () => ov.serverNow();
