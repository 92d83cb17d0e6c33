// Browser publisher: camera or the test pattern, over WHIP.
import { whipPublish } from './webrtc.js';
import { createTestPattern } from './testpattern.js';

const streamId = decodeURIComponent(location.pathname.split('/').filter(Boolean).pop());
const $ = (id) => document.getElementById(id);
let session = null, pattern = null;

// publish is also what tests call: streamdPublish({key, source, codec}).
async function publish({ key, source = 'camera', codec = '' }) {
  let media;
  if (source === 'canvas') {
    pattern = createTestPattern();
    media = pattern.stream;
    window.streamdPattern = pattern.state;
  } else {
    media = await navigator.mediaDevices.getUserMedia({ video: { width: 1280, height: 720 }, audio: true });
  }
  $('preview').srcObject = pattern ? null : media;
  if (pattern) { $('preview').replaceWith(pattern.canvas); pattern.canvas.id = 'preview'; }
  session = await whipPublish(`${location.origin}/whip/${encodeURIComponent(streamId)}`, key, media, { codec });
  window.streamdPublisher = session;
  await new Promise((resolve, reject) => {
    const check = () => {
      const s = session.pc.connectionState;
      if (s === 'connected') resolve();
      if (s === 'failed') reject(new Error('connection failed'));
    };
    session.pc.addEventListener('connectionstatechange', check);
    check();
  });
  return session.location;
}
window.streamdPublish = publish;

$('form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('go').disabled = true;
  $('status').textContent = 'Connecting…';
  try {
    await publish({ key: $('key').value, source: $('source').value, codec: $('codec').value });
    $('status').textContent = `Live on /watch/${streamId}`;
    $('stop').hidden = false;
  } catch (e) {
    $('status').textContent = 'Could not go live: ' + e.message;
    $('go').disabled = false;
  }
});
$('stop').addEventListener('click', () => { if (session) session.close(); if (pattern) pattern.stop(); $('status').textContent = 'Stopped.'; $('stop').hidden = true; $('go').disabled = false; });
