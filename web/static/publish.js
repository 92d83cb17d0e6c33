// Browser publisher: camera or the test pattern, over WHIP, in one size or
// three (simulcast).
import { whipPublish, SIMULCAST_LAYERS } from './webrtc.js';
import { createTestPattern } from './testpattern.js';
import { connectOverlay } from './overlay-client.js';

const streamId = decodeURIComponent(location.pathname.split('/').filter(Boolean).pop());
const $ = (id) => document.getElementById(id);
let session = null, pattern = null;

// Test pattern sizes by source; the camera is asked for 1280×720.
const PATTERN = { canvas: { width: 640, height: 360 }, 'canvas-720': { width: 1280, height: 720 } };
// Simulcast is on by default from 720p up: below, the smallest layer is too
// small to watch (and Chrome sends fewer layers anyway). The box follows
// the source until the host sets it.
const SIMULCAST_FROM = 720;
let simulcastSet = false;
$('simulcast').addEventListener('change', () => { simulcastSet = true; });
$('source').addEventListener('change', () => {
  if (!simulcastSet) $('simulcast').checked = (PATTERN[$('source').value] || { height: 720 }).height >= SIMULCAST_FROM;
});

function note(text, kind) {
  $('note').textContent = text;
  $('note').hidden = !text;
  $('note').dataset.kind = kind || '';
}

// publish is also what tests call: streamdPublish({key, source, codec, simulcast}).
// simulcast: true/false, or undefined for the default (on from 720p up).
async function publish({ key, source = 'camera', codec = '', simulcast }) {
  let media;
  if (PATTERN[source]) {
    pattern = createTestPattern(PATTERN[source]);
    media = pattern.stream;
    window.streamdPattern = pattern.state;
  } else {
    media = await navigator.mediaDevices.getUserMedia({ video: { width: 1280, height: 720 }, audio: true });
  }
  const vt = media.getVideoTracks()[0];
  const size = vt ? vt.getSettings() : {};
  if (simulcast === undefined) simulcast = (size.height || 0) >= SIMULCAST_FROM;
  $('simulcast').checked = simulcast;
  $('preview').srcObject = pattern ? null : media;
  if (pattern) { $('preview').replaceWith(pattern.canvas); pattern.canvas.id = 'preview'; }
  session = await whipPublish(`${location.origin}/whip/${encodeURIComponent(streamId)}`, key, media, { codec, simulcast });
  window.streamdPublisher = session;
  if (simulcast && session.layers < 2) note(`This browser would not send several sizes (${session.refused}): viewers all get one size.`, 'warn');
  else if (simulcast && size.width) note('Sending ' + SIMULCAST_LAYERS.slice().reverse().map((l) => `${Math.round(size.width / l.scaleResolutionDownBy)}×${Math.round(size.height / l.scaleResolutionDownBy)}`).join(', ') + '.');
  else note('');
  await new Promise((resolve, reject) => {
    const check = () => {
      const s = session.pc.connectionState;
      if (s === 'connected') resolve();
      if (s === 'failed') reject(new Error('connection failed'));
    };
    session.pc.addEventListener('connectionstatechange', check);
    check();
  });
  track(session, key);
  return session.location;
}
window.streamdPublish = publish;

// track keeps the page honest about the session: the server may end it (a
// takeover by another source, a restart, DELETE) or ICE may fail, and the
// host must see it at once and be offered to go live again. An empty
// trickle PATCH every 2 s asks the server whether the session still exists
// (404: it ended); the overlay then tells a takeover (the stream is live
// from elsewhere) from an end.
const HEARTBEAT_MS = 2000;
window.streamdPublishState = { state: 'idle' };
function track(s, key) {
  const st = window.streamdPublishState;
  st.state = 'live';
  let misses = 0;
  const stop = () => { clearInterval(timer); s.pc.removeEventListener('connectionstatechange', onState); };
  const timer = setInterval(async () => {
    try {
      const res = await fetch(s.location, { method: 'PATCH', headers: { 'Content-Type': 'application/trickle-ice-sdpfrag', Authorization: 'Bearer ' + key }, body: '' });
      misses = 0;
      if (res.status === 404) { stop(); ended(s, await tookOver() ? 'takeover' : 'ended'); }
    } catch {
      if (++misses >= 3) { stop(); ended(s, 'lost'); } // the server does not answer
    }
  }, HEARTBEAT_MS);
  const onState = () => { if (s.pc.connectionState === 'failed') { stop(); ended(s, 'lost'); } };
  s.pc.addEventListener('connectionstatechange', onState);
}

// tookOver: is the stream live now (from another source)?
function tookOver() {
  return new Promise((resolve) => {
    const ov = connectOverlay(streamId, { onSnapshot: (m) => { ov.close(); resolve(!!m.live); } });
    setTimeout(() => { ov.close(); resolve(false); }, 3000);
  });
}

const ENDED = {
  takeover: 'Disconnected — another source took over this stream. Go live again to take it back.',
  ended: 'Disconnected — the server ended this session (restart or stop). Go live again.',
  lost: 'Connection lost — Go live again.',
};
function ended(s, why) {
  if (session !== s) return;
  window.streamdPublishState.state = why;
  s.pc.close();
  session = null;
  if (pattern) { pattern.stop(); pattern = null; }
  $('status').textContent = ENDED[why];
  $('status').dataset.state = why;
  $('stop').hidden = true;
  $('go').disabled = false;
  $('go').textContent = 'Go live again';
}

$('form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('go').disabled = true;
  $('status').textContent = 'Connecting…';
  try {
    await publish({ key: $('key').value, source: $('source').value, codec: $('codec').value, simulcast: simulcastSet ? $('simulcast').checked : undefined });
    $('status').textContent = `Live on /watch/${streamId}`;
    $('status').dataset.state = 'live';
    $('stop').hidden = false;
  } catch (e) {
    $('status').textContent = 'Could not go live: ' + e.message;
    $('go').disabled = false;
  }
});
$('stop').addEventListener('click', () => { if (session) session.close(); session = null; window.streamdPublishState.state = 'stopped'; if (pattern) pattern.stop(); $('status').textContent = 'Stopped.'; $('stop').hidden = true; $('go').disabled = false; });
