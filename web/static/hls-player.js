// LL-HLS playback for the player (/hls/{stream}/index.m3u8), used with ?hls=1
// and when WebRTC does not work here: no connection within a few seconds, or
// media arriving that this browser cannot decode. Safari plays HLS itself;
// elsewhere hls.js (vendored, loaded only when needed).
//
// Cards on frames: the server's fMP4 timestamps are the stream's RTP
// timestamps, so a displayed frame's RTP timestamp is its presentation time
// (rVFC mediaTime, plus the offset hls.js subtracted: initPTS) × 90 kHz —
// compared with a card's media.rtp_ts like WebRTC's rtpTimestamp.
const HLS_JS = '/static/vendor/hls-1.6.15.light.min.js';
const CONNECT_MS = 5000;

function loadScript(src) {
  if (window.Hls) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = src; s.onload = resolve; s.onerror = () => reject(new Error('could not load ' + src));
    document.head.appendChild(s);
  });
}

export async function playHLS(player, video, streamId, setState) {
  const src = `/hls/${encodeURIComponent(streamId)}/index.m3u8`;
  let offset = null; // s: fMP4 time − mediaTime
  player.frameRtp = (md) => (offset === null || !md || typeof md.mediaTime !== 'number' ? null : Math.round((md.mediaTime + offset) * 90000) >>> 0);
  if (!window.MediaSource && video.canPlayType('application/vnd.apple.mpegurl')) {
    // Safari: native HLS keeps the stream's timestamps (no offset is known
    // here, so cards fall back to the measured playout delay).
    video.src = src;
    video.play().catch(() => {});
    return;
  }
  await loadScript(HLS_JS);
  const Hls = window.Hls;
  const start = () => {
    const hls = new Hls({ lowLatencyMode: true, backBufferLength: 30 });
    hls.on(Hls.Events.INIT_PTS_FOUND, (_, d) => { offset = d.initPTS / d.timescale; });
    hls.on(Hls.Events.ERROR, (_, d) => {
      if (!d.fatal) return;
      // Not live yet, or the stream restarted: try again shortly.
      hls.destroy();
      offset = null;
      setState('waiting');
      setTimeout(start, 2000);
    });
    hls.loadSource(src);
    hls.attachMedia(video);
    video.play().catch(() => {});
    player.hls = hls;
  };
  start();
}

// webrtcFallback switches to HLS when the WebRTC session has not connected
// within CONNECT_MS, or video bytes arrive but no frame decodes (a codec this
// browser cannot play).
export function webrtcFallback(player, startHLS) {
  setTimeout(async () => {
    if (player.mode === 'hls' || player.state === 'missing') return;
    const pc = player.pc;
    if (!pc || pc.connectionState !== 'connected') { startHLS('no_webrtc'); return; }
    try {
      const stats = await pc.getStats();
      for (const r of stats.values()) {
        if (r.type === 'inbound-rtp' && r.kind === 'video' && r.bytesReceived > 20000 && !r.framesDecoded) { startHLS('codec'); return; }
      }
    } catch { /* keep WebRTC */ }
  }, CONNECT_MS);
}
