// WHIP/WHEP clients shared by the player, the console preview and the
// browser publisher. Offers are sent once ICE gathering is complete (host
// candidates only, so it is quick); the server answers with all of its own.
// TURN servers the endpoint offers (Link headers) are used from the start.
import { iceServers } from './iceservers.js';

async function gathered(pc, timeoutMs = 2000) {
  if (pc.iceGatheringState === 'complete') return;
  await new Promise((resolve) => {
    const t = setTimeout(resolve, timeoutMs);
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') { clearTimeout(t); resolve(); }
    });
  });
}

export class HTTPError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error;
  }
}

async function exchange(url, pc, token) {
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  await gathered(pc);
  const headers = { 'Content-Type': 'application/sdp' };
  if (token) headers.Authorization = 'Bearer ' + token;
  const res = await fetch(url, { method: 'POST', headers, body: pc.localDescription.sdp });
  if (res.status !== 201) {
    let body = null;
    try { body = await res.json(); } catch (_) { /* not JSON */ }
    throw new HTTPError(res.status, body);
  }
  const location = new URL(res.headers.get('Location'), url).toString();
  await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
  return location;
}

// whepPlay starts a WHEP session; onTrack gets each remote track's stream.
// token: the staff token (marks the console's preview, which is no viewer),
// or a viewer link or publish key (opens a private stream).
export async function whepPlay(url, { onStream, iceTransportPolicy, token } = {}) {
  const pc = new RTCPeerConnection({ iceServers: await iceServers(url), iceTransportPolicy: iceTransportPolicy || 'all' });
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  const stream = new MediaStream();
  pc.ontrack = (ev) => { stream.addTrack(ev.track); if (onStream) onStream(stream); };
  try {
    const location = await exchange(url, pc, token);
    return { pc, stream, location, close: () => { pc.close(); fetch(location, { method: 'DELETE' }).catch(() => {}); } };
  } catch (e) { pc.close(); throw e; }
}

// whipPublish publishes a MediaStream; codec ('h264'|'vp8'|...) is preferred when given.
export async function whipPublish(url, token, media, { codec } = {}) {
  const pc = new RTCPeerConnection({ iceServers: await iceServers(url) });
  for (const track of media.getTracks()) {
    const tr = pc.addTransceiver(track, { direction: 'sendonly' });
    if (codec && track.kind === 'video' && RTCRtpSender.getCapabilities) {
      const caps = RTCRtpSender.getCapabilities('video').codecs;
      const want = caps.filter((c) => c.mimeType.toLowerCase() === 'video/' + codec.toLowerCase());
      if (want.length) tr.setCodecPreferences([...want, ...caps.filter((c) => !want.includes(c))]);
    }
  }
  try {
    const location = await exchange(url, pc, token);
    return { pc, location, close: () => { pc.close(); fetch(location, { method: 'DELETE', headers: { Authorization: 'Bearer ' + token } }).catch(() => {}); } };
  } catch (e) { pc.close(); throw e; }
}
