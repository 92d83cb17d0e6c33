// ICE servers (the embedded TURN server, with short-lived credentials) as
// WHIP/WHEP endpoints offer them: Link headers, RFC 9725 §4.6, e.g.
//   Link: <turn:host:3478?transport=udp>; rel="ice-server"; username="…"; credential="…"
// fetch joins several Link headers with ", ", so split outside <…> and "…".

function splitOutside(s, sep) {
  const out = [];
  let quoted = false, angle = false, last = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '"') quoted = !quoted;
    else if (c === '<' && !quoted) angle = true;
    else if (c === '>' && !quoted) angle = false;
    else if (c === sep && !quoted && !angle) { out.push(s.slice(last, i)); last = i + 1; }
  }
  out.push(s.slice(last));
  return out;
}

// parseIceLinks turns a Link header value into RTCIceServer entries.
export function parseIceLinks(header) {
  const servers = [];
  if (!header) return servers;
  for (const raw of splitOutside(header, ',')) {
    const link = raw.trim();
    const end = link.indexOf('>');
    if (link[0] !== '<' || end < 0) continue;
    const server = { urls: link.slice(1, end) };
    let rel = '';
    for (const p of splitOutside(link.slice(end + 1), ';')) {
      const eq = p.indexOf('=');
      if (eq < 0) continue;
      const k = p.slice(0, eq).trim().toLowerCase();
      const v = p.slice(eq + 1).trim().replace(/^"|"$/g, '');
      if (k === 'rel') rel = v;
      else if (k === 'username') server.username = v;
      else if (k === 'credential') server.credential = v;
    }
    if (rel === 'ice-server') servers.push(server);
  }
  return servers;
}

// iceServers asks the endpoint for its ICE servers before the offer is
// made, so relay candidates are in it. No servers (TURN off, or the
// request failed): direct UDP/TCP only, as before.
export async function iceServers(url) {
  try {
    const res = await fetch(url, { method: 'OPTIONS', cache: 'no-store' });
    return parseIceLinks(res.headers.get('Link'));
  } catch (_) {
    return [];
  }
}
