// Run by TestJSClient (node --experimental-websocket): checks
// web/static/overlay-client.js against a live overlay server.
import { connectOverlay, createFrameSync, rtpReached } from '../../web/static/overlay-client.js';

const base = process.env.OVERLAY_HTTP;
const assert = (c, msg) => { if (!c) throw new Error('assert: ' + msg); };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, f, ms = 5000) {
  const end = Date.now() + ms;
  while (!f()) { if (Date.now() > end) throw new Error('timeout: ' + what); await sleep(10); }
}
const post = (path) => fetch(base + path, { method: 'POST' }).then((r) => { assert(r.ok, path + ' ' + r.status); });

// ── frame sync with a fake video ──
{
  assert(rtpReached(10, 0xffffff00) && !rtpReached(0xfffff000, 10) && rtpReached(5, 5), 'rtpReached');
  // A frame a few ms before the stamp (another simulcast layer's timing) counts; half a frame at 100 fps does not.
  assert(rtpReached(3000 - 90, 3000) && rtpReached(10, 300) && !rtpReached(3000 - 451, 3000), 'rtpReached slack');
  let cb = null;
  const video = { requestVideoFrameCallback(f) { cb = f; return 1; } };
  const seen = [];
  const fs = createFrameSync(video, { onReveal: (ev, md) => seen.push([ev.seq, md]) });
  const frame = (md) => { const f = cb; cb = null; assert(f, 'frame callback requested'); f(performance.now(), md); };
  fs.push({ type: 'card', seq: 1, action: 'show', media: { rtp_ts: 1000, live: true } });
  fs.push({ type: 'card', seq: 2, action: 'hide', media: { rtp_ts: 2000, live: true } });
  const f500 = { rtpTimestamp: 500 }, f1500 = { rtpTimestamp: 1500 }, fEarly = { rtpTimestamp: 1500 + 49 }, f2000 = { rtpTimestamp: 2000 };
  frame(f500); assert(seen.length === 0, 'nothing before its frame');
  frame(f1500); assert(seen.length === 1 && seen[0][0] === 1 && seen[0][1] === f1500, 'show on its frame');
  frame(fEarly); assert(seen.length === 1, 'hide waits');
  frame(f2000); assert(seen.length === 2 && seen[1][1] === f2000, 'hide on its frame');
  assert(cb === null, 'no frame requested when idle');
  // wraparound, and a stamp already in the past
  fs.push({ type: 'card', seq: 3, action: 'show', media: { rtp_ts: 0xfffffff0, live: true } });
  const fw = { rtpTimestamp: 0x10 };
  frame(fw); assert(seen.length === 3 && seen[2][1] === fw, 'wraparound');
  fs.push({ type: 'card', seq: 4, action: 'update', media: { rtp_ts: 100, live: true } });
  const fp = { rtpTimestamp: 5000 };
  frame(fp); assert(seen.length === 4 && seen[3][1] === fp, 'past stamp on next frame');
  // seq order: 6 arrives before 5, 5 is due first
  fs.push({ type: 'card', seq: 6, action: 'hide', media: { rtp_ts: 6000, live: true } });
  fs.push({ type: 'card', seq: 5, action: 'show', media: { rtp_ts: 5500, live: true } });
  frame({ rtpTimestamp: 7000 }); assert(seen.length === 6 && seen[4][0] === 5 && seen[5][0] === 6, 'seq order');
  // no rtpTimestamp: measured playout delay (expectedDisplayTime - receiveTime = 50ms)
  const t0 = performance.now();
  fs.push({ type: 'card', seq: 7, action: 'show', media: { live: false } });
  frame({ receiveTime: t0, expectedDisplayTime: t0 + 50 });
  assert(Math.abs(fs.playoutDelay - 50) < 1, 'playout delay measured');
  assert(seen.length === 6, 'waits the playout delay');
  await sleep(60);
  const late = { receiveTime: performance.now(), expectedDisplayTime: performance.now() + 50 };
  frame(late); assert(seen.length === 7 && seen[6][1] === late, 'revealed after the delay');
  assert(fs.reveals.length === 7 && fs.reveals[0].metadata === f1500, 'reveals recorded');
  fs.close();
  // visitors: no video, at once
  const vs = []; const v = createFrameSync(null, { onReveal: (ev, md) => vs.push(md) });
  v.push({ type: 'card', seq: 1, media: { rtp_ts: 1, live: true } }); assert(vs.length === 1 && vs[0] === null, 'visitor at once');
  v.close();
}

// ── connectOverlay against the server ──
{
  const snaps = [], cards = [], stock = [], states = [];
  const o = connectOverlay('js', {
    onSnapshot: (m) => snaps.push(m), onCard: (m) => cards.push(m), onStock: (m) => stock.push(m),
    onState: (s) => states.push(s),
  }, { url: base.replace(/^http/, 'ws'), pingInterval: 100, minBackoff: 20, maxBackoff: 100 });
  await until('snapshot', () => snaps.length === 1);
  assert(snaps[0].seq === 1 && snaps[0].card && snaps[0].card.n === 0, 'snapshot: ' + JSON.stringify(snaps[0]));
  await post('/test/publish?count=3');
  await until('3 cards', () => cards.length === 3);
  assert(cards.map((c) => c.seq).join() === '2,3,4', 'card seqs');
  await post('/test/drop-and-publish?count=5');
  await until('resumed cards', () => cards.length === 8);
  assert(cards.map((c) => c.seq).join() === '2,3,4,5,6,7,8,9', 'resume without gap: ' + cards.map((c) => c.seq).join());
  assert(snaps.length === 1, 'resumed, not re-snapshotted');
  assert(states.includes('reconnecting'), 'reconnected');
  assert(o.lastSeq === 9, 'lastSeq');
  await until('clock samples', () => o.rtt < 1000);
  assert(Math.abs(o.serverNow() - Date.now()) < 100, 'serverNow on one machine');
  // history gone: a fresh snapshot
  await post('/test/drop-and-publish?count=40');
  await until('new snapshot', () => snaps.length === 2);
  assert(snaps[1].seq === 49, 'snapshot after history loss: ' + snaps[1].seq);
  o.close();
  await until('closed', () => states[states.length - 1] === 'closed');
}
// ── send, onError, onEvent (reactions) and reconnect() ──
{
  const snaps = [], errors = [], events = [];
  const o = connectOverlay('js', {
    onSnapshot: (m) => snaps.push(m), onError: (m) => errors.push(m), onEvent: (m) => events.push(m),
  }, { url: base.replace(/^http/, 'ws'), pingInterval: 100, minBackoff: 20, maxBackoff: 100 });
  await until('snapshot', () => snaps.length === 1);
  assert(o.send({ type: 'react', emoji: '🍕' }), 'send while open');
  await until('error', () => errors.length === 1);
  assert(errors[0].code === 'bad_reaction' && errors[0].message, 'error to the sender: ' + JSON.stringify(errors[0]));
  o.send({ type: 'chat', text: 'hi' }); // this server has no chat policy
  await until('chat_off', () => errors.length === 2 && errors[1].code === 'chat_off');
  o.send({ type: 'react', emoji: '❤️', count: 3 });
  await until('reactions', () => events.some((m) => m.type === 'reactions'));
  assert(events.find((m) => m.type === 'reactions').counts['❤️'] === 3, 'counts');
  const before = o.lastSeq;
  await o.reconnect();
  await post('/test/publish?count=1');
  await until('after reconnect', () => o.lastSeq === before + 1);
  assert(snaps.length === 1, 'reconnect() resumes, no new snapshot');
  o.close();
}
console.log('ok');
