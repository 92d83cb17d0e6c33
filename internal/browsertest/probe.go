package browsertest

// GlassProbeJS installs, in a player page, a requestVideoFrameCallback loop
// that decodes the test pattern from every played frame and records
// {frame, latency_ms, rtp} in window.__glass (rtp: rVFC's rtpTimestamp, or
// on HLS the player's frameRtp from the frame's PTS). Latency is presentation time
// minus the time the publisher drew the frame (both wall clocks of one
// machine), i.e. glass to glass.
const GlassProbeJS = `(async () => {
  const { decodeFrame } = await import('/static/testpattern.js');
  const video = window.streamdPlayer.video;
  const canvas = document.createElement('canvas');
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  window.__glass = [];
  window.__glassBad = 0;
  const onFrame = (now, md) => {
    const w = video.videoWidth, h = video.videoHeight;
    if (w && h) {
      if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
      ctx.drawImage(video, 0, 0, w, h);
      const d = decodeFrame(ctx, w / 640, h / 360);
      if (d) {
        const shown = Math.floor(performance.timeOrigin + (md.expectedDisplayTime || now)) >>> 0;
        window.__glass.push({ frame: d.frame, latency_ms: ((shown - d.t) | 0), rtp: md.rtpTimestamp ?? (window.streamdPlayer.frameRtp ? window.streamdPlayer.frameRtp(md) : null) });
      } else window.__glassBad++;
    }
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
  return true;
})()`
