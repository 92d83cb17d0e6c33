// overlay-client.js — browser client of streamd's overlay WebSocket
// (GET /ws/{stream}). Plain ES module, no build step, no dependencies.
//
// ── connectOverlay(stream, handlers, options) → { close(), serverNow(), lastSeq, epoch, rtt }
//   Connects to `${options.url || same origin ws(s)://host}/ws/{stream}` and keeps the
//   connection up: reconnects with exponential backoff (0.5 s → 15 s, jittered) and
//   resumes with `?since=<lastSeq>&epoch=<epoch>`, so the server sends exactly what
//   was missed, or a fresh snapshot when its history no longer reaches back.
//   A gap in `seq` (or a pong whose seq is ahead of what was received) makes it
//   reconnect with `since` at once. Pings every options.pingInterval ms (5000) and
//   keeps the server clock offset from the minimum-RTT sample of the last 8 pongs.
//   handlers (all optional):
//     onSnapshot(msg)  {type:"snapshot",seq,epoch,live,card|null,card_id?,stock:{id:n},server_time}
//                      — also after a reconnect that could not resume: replace all state.
//     onCard(msg)      {type:"card",seq,id,action:"show"|"hide"|"update",card|null,
//                       media:{rtp_ts?,live},server_time} — feed it to createFrameSync().push
//     onStock(msg)     {type:"stock",seq,product_id,available,server_time}
//     onLive(msg)      {type:"live",seq,live,server_time}
//     onEvent(msg)     any other event type (e.g. {type:"order",seq,order:{...}},
//                      chat, chat_delete, chat_pin, chat_mode, reactions)
//     onError(msg)     {type:"error",code,message} — for this client only (chat refusals)
//     onState(state, detail)  "connecting" | "open" | "reconnecting" | "closed";
//                      detail: {code, reason, attempt, delay} on "reconnecting"
//   Returned object: close() stops for good; serverNow() → server time in ms
//   (Date.now() + offset); lastSeq / epoch / rtt (ms, best sample) are getters;
//   send(obj) sends a client message (false when not connected); reconnect()
//   reopens the socket at once (resuming; e.g. after a new viewer cookie) and
//   resolves when it is open.
//   options: {url, pingInterval, minBackoff, maxBackoff, WebSocket, token}
//   (token: a viewer link of a private stream, sent as ?t=)
//
// ── createFrameSync(video, { onReveal, fallbackDelayMs, maxWaitMs, frameRtp }) → { push(msg), clear(), close(), setMaxWait(ms), pending, playoutDelay, reveals }
//   Holds card events (show/hide/update) and reveals each, in seq order, on the
//   video frame it belongs to: when video.requestVideoFrameCallback reports a frame
//   whose metadata.rtpTimestamp has reached the card's media.rtp_ts
//   (wraparound-aware: ((frameTs - cardTs) >>> 0) < 0x80000000). A stamp already in
//   the past reveals on the next frame. Where rtpTimestamp is missing, or the card
//   has no rtp_ts, it waits the measured playout delay after the card arrived
//   (expectedDisplayTime - receiveTime of recent frames, else fallbackDelayMs, 0 by
//   default). With no video (showroom visitors: video = null) cards reveal at once.
//   maxWaitMs (3000) bounds the wait (timeline jumps, paused video): then the card
//   reveals with metadata null.
//   onReveal(msg, metadata) is called once per card with the rVFC metadata object of
//   the frame it was revealed on (null when not revealed on a frame); the last 256
//   reveals are kept in .reveals as {event, metadata, at} for tests.
//   clear() drops pending cards (call it on a snapshot; the snapshot's card is
//   what is on screen now).

const MAX_RTT_SAMPLES = 8;

export function connectOverlay(stream, handlers = {}, options = {}) {
  const {
    pingInterval = 5000,
    minBackoff = 500,
    maxBackoff = 15000,
  } = options;
  const WS = options.WebSocket || globalThis.WebSocket;
  const base = options.url || `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}`;
  const call = (name, ...args) => {
    const fn = handlers[name];
    if (typeof fn !== 'function') return;
    try { fn(...args); } catch (err) { console.error(`overlay ${name} handler`, err); }
  };

  let ws = null;
  let closed = false;
  let lastSeq = null; // null until the first snapshot
  let epoch = '';
  let attempt = 0;
  let reconnectTimer = null;
  let pingTimer = null;
  let samples = []; // {rtt, offset}
  let offset = 0;
  let bestRtt = Infinity;
  let openWaiters = [];

  function url() {
    const q = new URLSearchParams();
    if (options.token) q.set('t', options.token);
    if (lastSeq !== null) { q.set('since', String(lastSeq)); q.set('epoch', epoch); }
    const qs = q.toString();
    return `${base}/ws/${encodeURIComponent(stream)}` + (qs ? '?' + qs : '');
  }

  function connect() {
    reconnectTimer = null;
    if (closed) return;
    call('onState', 'connecting');
    const sock = new WS(url());
    ws = sock;
    sock.onopen = () => {
      if (ws !== sock) return;
      call('onState', 'open');
      for (const fn of openWaiters.splice(0)) fn();
      ping();
      pingTimer = setInterval(ping, pingInterval);
    };
    sock.onmessage = (e) => {
      if (ws !== sock) return;
      let m;
      try { m = JSON.parse(e.data); } catch { return; }
      if (!m || typeof m.type !== 'string') return;
      handle(m);
    };
    sock.onclose = (e) => {
      if (ws !== sock) return;
      ws = null;
      clearInterval(pingTimer);
      pingTimer = null;
      if (closed) { call('onState', 'closed'); return; }
      const delay = Math.min(maxBackoff, minBackoff * 2 ** Math.min(attempt, 10)) * (0.5 + Math.random() / 2);
      attempt++;
      call('onState', 'reconnecting', { code: e.code, reason: e.reason, attempt, delay });
      reconnectTimer = setTimeout(connect, delay);
    };
    sock.onerror = () => {}; // onclose follows
  }

  // resync drops the connection and reconnects at once with since=lastSeq.
  function resync(why) {
    if (!ws) return;
    const sock = ws;
    ws = null;
    clearInterval(pingTimer);
    pingTimer = null;
    try { sock.close(4000, why); } catch { /* already closing */ }
    call('onState', 'reconnecting', { code: 4000, reason: why, attempt, delay: 0 });
    connect();
  }

  function ping() {
    if (ws && ws.readyState === 1) ws.send(JSON.stringify({ type: 'ping', t: Date.now() }));
  }

  function handle(m) {
    switch (m.type) {
      case 'snapshot':
        lastSeq = m.seq;
        epoch = m.epoch || '';
        attempt = 0;
        call('onSnapshot', m);
        return;
      case 'pong': {
        const now = Date.now();
        const rtt = now - m.t;
        if (rtt >= 0 && typeof m.server_time === 'number') {
          samples.push({ rtt, offset: m.server_time - (m.t + rtt / 2) });
          if (samples.length > MAX_RTT_SAMPLES) samples.shift();
          const best = samples.reduce((a, b) => (b.rtt < a.rtt ? b : a));
          offset = best.offset;
          bestRtt = best.rtt;
        }
        // A viewer who joined before the stream's first event got epoch "".
        if (!epoch && m.epoch && m.seq === lastSeq) epoch = m.epoch;
        if (lastSeq !== null && m.seq > lastSeq) resync('missed events');
        return;
      }
      case 'error':
        if (handlers.onError) call('onError', m);
        else console.warn('overlay:', m.code || m.error, m.message);
        return;
      default:
        break;
    }
    if (typeof m.seq !== 'number' || lastSeq === null) return;
    if (m.seq <= lastSeq) return; // duplicate
    if (m.seq !== lastSeq + 1) { resync('seq gap'); return; }
    lastSeq = m.seq;
    attempt = 0;
    switch (m.type) {
      case 'skip': return; // a stale update superseded by a newer one
      case 'card': call('onCard', m); return;
      case 'stock': call('onStock', m); return;
      case 'live': call('onLive', m); return;
      default: call('onEvent', m);
    }
  }

  connect();
  return {
    close() {
      closed = true;
      clearTimeout(reconnectTimer);
      clearInterval(pingTimer);
      if (ws) { try { ws.close(1000, 'bye'); } catch { /* ignore */ } }
      else call('onState', 'closed');
    },
    send(obj) {
      if (!ws || ws.readyState !== 1) return false;
      ws.send(JSON.stringify(obj));
      return true;
    },
    reconnect() {
      const opened = new Promise((resolve) => openWaiters.push(resolve));
      if (ws) resync('reconnect');
      else if (!closed) { clearTimeout(reconnectTimer); connect(); }
      return opened;
    },
    serverNow() { return Date.now() + offset; },
    get lastSeq() { return lastSeq; },
    get epoch() { return epoch; },
    get rtt() { return bestRtt; },
  };
}

// reached reports whether RTP timestamp frameTs is at or past cardTs (32-bit
// wraparound aware).
// A frame up to rtpSlack ticks (5 ms at 90 kHz) before the stamp counts:
// with simulcast the stamp is on the reference layer's frames, and another
// layer's encoder may time the same captured frame a millisecond apart.
// Under half a frame even at 100 fps, so it never reveals a frame early.
export const rtpSlack = 450;

export function rtpReached(frameTs, cardTs) {
  return ((frameTs + rtpSlack - cardTs) >>> 0) < 0x80000000;
}

export function createFrameSync(video, { onReveal, fallbackDelayMs = 0, maxWaitMs = 3000, frameRtp = null } = {}) {
  const queue = []; // {event, arrived, ts} in seq order; ts: the card's rtp_ts or null
  const reveals = [];
  let playoutDelay = null; // ms, smoothed expectedDisplayTime - receiveTime
  let frameRequested = false;
  let closed = false;
  const hasRVFC = !!(video && typeof video.requestVideoFrameCallback === 'function');

  function reveal(item, metadata) {
    const rec = { event: item.event, metadata, at: performance.now() };
    reveals.push(rec);
    if (reveals.length > 256) reveals.shift();
    if (typeof onReveal === 'function') {
      try { onReveal(item.event, metadata); } catch (err) { console.error('overlay onReveal', err); }
    }
  }

  function delay() { return playoutDelay !== null ? playoutDelay : fallbackDelayMs; }

  function onFrame(now, metadata) {
    frameRequested = false;
    if (closed) return;
    if (metadata && typeof metadata.receiveTime === 'number' && typeof metadata.expectedDisplayTime === 'number') {
      const d = metadata.expectedDisplayTime - metadata.receiveTime;
      if (d >= 0 && d < 10000) playoutDelay = playoutDelay === null ? d : playoutDelay * 0.9 + d * 0.1;
    }
    // frameRtp maps a frame to its RTP timestamp where rVFC has none (HLS: from its PTS).
    const fromPTS = frameRtp && metadata ? frameRtp(metadata) : null;
    const frameTs = typeof fromPTS === 'number' ? fromPTS : metadata && typeof metadata.rtpTimestamp === 'number' ? metadata.rtpTimestamp : null;
    const shownAt = metadata && typeof metadata.expectedDisplayTime === 'number' ? metadata.expectedDisplayTime : now;
    while (queue.length) {
      const head = queue[0];
      let due;
      if (head.ts !== null && frameTs !== null) due = rtpReached(frameTs, head.ts);
      else due = shownAt >= head.arrived + delay();
      if (!due) break;
      queue.shift();
      reveal(head, metadata);
    }
    request();
  }

  function request() {
    if (closed || frameRequested || !queue.length) return;
    frameRequested = true;
    if (hasRVFC) video.requestVideoFrameCallback(onFrame);
    else requestAnimationFrame((now) => onFrame(now, null));
  }

  // Watchdog: a card never waits longer than maxWaitMs (paused or hidden
  // video, a timeline jump after the publisher restarted).
  const watchdog = setInterval(() => {
    const now = performance.now();
    while (queue.length && now - queue[0].arrived > maxWaitMs) reveal(queue.shift(), null);
  }, 250);

  return {
    push(event) {
      if (closed || !event || event.type !== 'card') return;
      const item = { event, arrived: performance.now(), ts: null };
      if (!video) { reveal(item, null); return; } // visitors: at once
      // Read the stamp once here, not on every frame while the card waits.
      const media = event.media;
      if (media && typeof media.rtp_ts === 'number') item.ts = media.rtp_ts >>> 0;
      let i = queue.length;
      while (i > 0 && queue[i - 1].event.seq > event.seq) i--;
      queue.splice(i, 0, item);
      request();
    },
    clear() { queue.length = 0; },
    close() { closed = true; queue.length = 0; clearInterval(watchdog); },
    get pending() { return queue.length; },
    get playoutDelay() { return delay(); },
    // HLS plays seconds behind the socket: cards must be allowed to wait longer.
    setMaxWait(ms) { maxWaitMs = ms; },
    reveals,
  };
}
