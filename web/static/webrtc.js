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
// or a viewer link or publish key (opens a private stream). layer: the
// simulcast layer to join on ('auto' | 'low' | 'medium' | 'high'; the
// session's /layer resource changes it later).
export async function whepPlay(url, { onStream, iceTransportPolicy, token, layer } = {}) {
  const pc = new RTCPeerConnection({ iceServers: await iceServers(url), iceTransportPolicy: iceTransportPolicy || 'all' });
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  const stream = new MediaStream();
  pc.ontrack = (ev) => { stream.addTrack(ev.track); if (onStream) onStream(stream); };
  if (layer && layer !== 'auto') {
    const u = new URL(url);
    u.searchParams.set('layer', layer);
    url = u.toString();
  }
  try {
    const location = await exchange(url, pc, token);
    return { pc, stream, location, close: () => { pc.close(); fetch(location, { method: 'DELETE' }).catch(() => {}); } };
  } catch (e) { pc.close(); throw e; }
}

// The three sizes a simulcast publisher sends (rids l, m, h: the server
// names them low, medium, high), smallest first.
export const SIMULCAST_LAYERS = [
  { rid: 'l', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'm', scaleResolutionDownBy: 2, maxBitrate: 600_000 },
  { rid: 'h', scaleResolutionDownBy: 1, maxBitrate: 2_500_000 },
];

// whipPublish publishes a MediaStream; codec ('h264'|'vp8'|...) is preferred
// when given. simulcast: send the video in SIMULCAST_LAYERS' three sizes.
// The session's layers says how many the browser agreed to send (1 when it
// refused simulcast; refused then carries its reason).
export async function whipPublish(url, token, media, { codec, simulcast } = {}) {
  const pc = new RTCPeerConnection({ iceServers: await iceServers(url) });
  let video = null, refused = '';
  for (const track of media.getTracks()) {
    let tr = null;
    if (simulcast && track.kind === 'video') {
      try { tr = pc.addTransceiver(track, { direction: 'sendonly', sendEncodings: SIMULCAST_LAYERS.map((l) => ({ ...l })) }); }
      catch (e) { refused = e.message || String(e); }
    }
    if (!tr) tr = pc.addTransceiver(track, { direction: 'sendonly' });
    if (track.kind === 'video') video = tr;
    if (codec && track.kind === 'video' && RTCRtpSender.getCapabilities) {
      const caps = RTCRtpSender.getCapabilities('video').codecs;
      const want = caps.filter((c) => c.mimeType.toLowerCase() === 'video/' + codec.toLowerCase());
      if (want.length) tr.setCodecPreferences([...want, ...caps.filter((c) => !want.includes(c))]);
    }
  }
  try {
    const location = await exchange(url, pc, token);
    // The answer may take simulcast away (the browser then keeps one encoding).
    const layers = video ? video.sender.getParameters().encodings.length : 0;
    if (simulcast && layers < 2 && !refused) refused = 'the connection did not agree to simulcast';
    return { pc, location, layers, refused, close: () => { pc.close(); fetch(location, { method: 'DELETE', headers: { Authorization: 'Bearer ' + token } }).catch(() => {}); } };
  } catch (e) { pc.close(); throw e; }
}
