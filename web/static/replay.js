// The replay page: plays a recorded show (/replay/{stream}/{show}/index.m3u8:
// natively where the browser plays HLS, else through hls.js) and puts each
// product card on the frame it was live on. The show's events carry media
// times on the recording's timeline; requestVideoFrameCallback's mediaTime
// is the displayed frame's presentation time, so a card shows on the first
// frame at or past its time — the frame it was pushed on. Live deals are
// over: cards show the regular price and today's stock, and orders are
// attributed to source "replay" with the card moment (its event id).
import { createCardView } from './card.js';
import { createTimeline, fmtTime } from './replay-timeline.js';

const parts = location.pathname.split('/').filter(Boolean).map(decodeURIComponent);
const [streamId, showId] = [parts[1], parts[2]];
const base = `/replay/${encodeURIComponent(streamId)}/${encodeURIComponent(showId)}`;
const video = document.getElementById('video');
const list = document.getElementById('chapter-list');

const player = { streamId, showId, video, source: 'replay', serverNow: () => Date.now(), reveals: [], offset: 0, ready: false };
window.streamdPlayer = player;
const cardView = createCardView(document.getElementById('overlay'), player);
player.cardView = cardView;

// hls.js shifts timestamps by the first fragment's (initPTS); adding it back
// gives the recording's own media time.
function attach(src) {
  const Hls = window.Hls;
  if (Hls && Hls.isSupported()) {
    const hls = new Hls({ enableWorker: true });
    hls.on(Hls.Events.INIT_PTS_FOUND, (_, d) => { if (d.frag && d.frag.cc === 0) player.offset = d.initPTS / d.timescale; });
    hls.loadSource(src);
    hls.attachMedia(video);
    player.hls = hls;
  } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
    video.src = src; // Safari: the recording's timestamps as they are
  }
}

async function stockOf(productId) {
  try {
    const r = await fetch(`/api/products/${encodeURIComponent(productId)}`);
    if (r.ok) { const p = await r.json(); cardView.stock(productId, p.available); }
  } catch { /* the card keeps the stock it was recorded with */ }
}

async function main() {
  const res = await fetch(`${base}/events.json`);
  if (!res.ok) { document.getElementById('state').textContent = 'No such show'; return; }
  const show = await res.json();
  player.show = show;
  const timeline = createTimeline(show.events);
  player.timeline = timeline;

  for (const ch of timeline.chapters) {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button'; b.className = 'chapter'; b.dataset.id = ch.id;
    const t = document.createElement('time'); t.textContent = fmtTime(ch.t);
    const name = document.createElement('span'); name.textContent = ch.card.title || ch.card.product_id;
    b.append(t, name);
    b.addEventListener('click', () => { video.currentTime = Math.max(0, ch.t - player.offset) + 0.001; video.play().catch(() => {}); });
    li.appendChild(b); list.appendChild(li);
  }
  document.getElementById('chapter-empty').hidden = timeline.chapters.length > 0;

  let shown = undefined;
  const onFrame = (now, md) => {
    const t = md.mediaTime + player.offset;
    const ev = timeline.at(t);
    const id = ev ? ev.id : null;
    if (id !== shown) {
      shown = id;
      player.reveals.push({ id, seq: ev ? ev.seq : null, t: ev ? ev.t : null, frame_media: t });
      if (ev && ev.action !== 'hide' && ev.card) {
        // Live deals are over: the regular price, and today's stock.
        cardView.show({ ...ev.card, deal: null }, { id: ev.id });
        stockOf(ev.card.product_id);
      } else cardView.show(null);
      for (const b of list.querySelectorAll('.chapter')) b.classList.toggle('current', !!ev && b.dataset.id === ev.id);
    }
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
  attach(`${base}/index.m3u8`);
  player.ready = true;
}

main();
