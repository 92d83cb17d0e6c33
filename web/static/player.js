// The viewer page: plays /whep/{stream}, starts muted (autoplay policy),
// retries while the stream is not live, and shows live / waiting /
// reconnecting. Other modules (overlay cards, buy sheet) hang off
// window.streamdPlayer.
import { whepPlay } from './webrtc.js';
import { connectOverlay, createFrameSync } from './overlay-client.js';
import { createCardView } from './card.js';
import { playHLS, webrtcFallback } from './hls-player.js';
import { showNotice, clearNotice } from './notice.js';
import { createQuality } from './quality.js';

const streamId = decodeURIComponent(location.pathname.split('/').filter(Boolean).pop());
// A private stream's viewer link (/watch/{id}?t=…): the server also keeps it
// in a cookie, but the page sends it along itself (embeds may block cookies).
const linkToken = new URLSearchParams(location.search).get('t') || '';
const video = document.getElementById('video');
const badge = document.getElementById('state');
const unmute = document.getElementById('unmute');

const player = { streamId, video, pc: null, state: 'connecting', listeners: [], eventListeners: [] };
window.streamdPlayer = player;
// The quality menu (simulcast layers); a new picture size may be a new layer.
const quality = createQuality(document.getElementById('quality'));
player.quality = quality;
video.addEventListener('resize', () => quality.refresh());

const labels = { connecting: 'Connecting…', waiting: 'Waiting for the host…', live: '● LIVE', reconnecting: 'Reconnecting…', missing: 'No such stream', unsupported: "Can't play in this browser",
  private: 'Private stream — open it with the link you were sent', expired: 'This link has expired — ask for a new one' };
function setState(s) {
  if (player.state === s) return;
  if (s === 'live') clearNotice(); // whatever path plays, the notice is moot
  player.state = s;
  badge.dataset.state = s;
  badge.textContent = labels[s] || s;
  for (const fn of player.listeners) fn(s);
}

// Frames flowing means live; a stall means the host is away (the session
// stays up: the server splices the next publisher in).
let lastFrame = 0;
function watchFrames() {
  const tick = () => { lastFrame = performance.now(); if (player.state !== 'live' && (player.mode === 'hls' || (player.pc && player.pc.connectionState === 'connected'))) setState('live'); video.requestVideoFrameCallback(tick); };
  if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(tick);
  else video.addEventListener('timeupdate', () => { lastFrame = performance.now(); if (player.state !== 'live') setState('live'); });
  setInterval(() => {
    if (player.state === 'live' && performance.now() - lastFrame > 2500) setState('waiting');
  }, 500);
}

let backoff = 500;
async function connect() {
  // LL-HLS instead of WebRTC: asked for (?hls=1), or WebRTC failed (hls-player.js).
  if (new URLSearchParams(location.search).get('hls') === '1') return startHLS('asked');
  webrtcFallback(player, startHLS);
  for (;;) {
    if (player.mode === 'hls') return;
    try {
      const session = await whepPlay(`${location.origin}/whep/${encodeURIComponent(streamId)}`, {
        onStream: (s) => { if (video.srcObject !== s) video.srcObject = s; }, token: linkToken, layer: quality.choice,
      });
      player.pc = session.pc;
      player.session = session;
      quality.attach(session.location);
      clearNotice();
      backoff = 500;
      setState('waiting');
      await new Promise((resolve) => {
        session.pc.addEventListener('connectionstatechange', () => {
          const s = session.pc.connectionState;
          if (s === 'failed' || s === 'closed') resolve();
          if (s === 'disconnected') setState('reconnecting');
          if (s === 'connected' && player.state === 'reconnecting') setState('waiting');
        });
      });
      quality.detach();
      session.close();
      setState('reconnecting');
    } catch (e) {
      // The browser cannot decode the stream's codec over WebRTC: say so,
      // and try LL-HLS (decoded by Media Source, which may have the codec).
      if (e.code === 'codec_unsupported') {
        showNotice(e.message);
        setState('unsupported');
        startHLS('codec');
        return;
      }
      setState(e.status === 404 ? 'missing' : e.code === 'link_expired' ? 'expired' : (e.status === 401 || e.status === 403) ? 'private' : 'reconnecting');
    }
    await new Promise((r) => setTimeout(r, backoff));
    backoff = Math.min(backoff * 2, 5000);
  }
}

video.addEventListener('playing', () => { if (video.muted) unmute.hidden = false; });
unmute.addEventListener('click', () => { video.muted = false; unmute.hidden = true; video.play().catch(() => {}); });
window.addEventListener('pagehide', () => player.session && player.session.close());
// Product cards: received at once over the overlay socket, revealed on the
// video frame they were pushed on (createFrameSync), so a card never shows
// before the host holds the product up, however late this viewer's video is.
const cardView = createCardView(document.getElementById('overlay'), player);
player.cardView = cardView;
player.reveals = [];
const sync = createFrameSync(video, {
  frameRtp: (md) => (player.frameRtp ? player.frameRtp(md) : null),
  onReveal: (ev, md) => {
    player.reveals.push({ seq: ev.seq, id: ev.id, action: ev.action, rtp_ts: ev.media && ev.media.rtp_ts, frame_rtp: md ? (player.frameRtp ? player.frameRtp(md) : md.rtpTimestamp) : null,
      arrived_ms: ev.arrivedAt, shown_ms: md ? md.expectedDisplayTime : null });
    cardView.show(ev.action === 'hide' ? null : ev.card, ev);
  },
});
player.sync = sync;
player.snapshotListeners = [];
player.errorListeners = [];
player.overlay = connectOverlay(streamId, {
  onSnapshot: (m) => {
    sync.clear(); cardView.setStock(m.stock); cardView.show(m.card, m);
    player.lastSnapshot = m; // chat.js may load after the first snapshot
    for (const fn of player.snapshotListeners) fn(m);
  },
  onError: (m) => { for (const fn of player.errorListeners) fn(m); },
  onCard: (m) => { m.arrivedAt = performance.now(); sync.push(m); },
  onStock: (m) => cardView.stock(m.product_id, m.available),
  onEvent: (m) => { for (const fn of player.eventListeners) fn(m); },
}, { token: linkToken });
player.serverNow = () => player.overlay.serverNow();

function startHLS(why) {
  if (player.mode === 'hls') return;
  player.mode = 'hls';
  player.hlsReason = why;
  if (player.session) player.session.close();
  quality.detach();
  video.srcObject = null;
  sync.setMaxWait(15000);
  playHLS(player, video, streamId, setState);
}

watchFrames();
connect();
