// A canvas source whose pixels carry a frame number and the wall-clock time
// it was drawn (ms since the epoch, low 32 bits) as rows of black/white
// blocks, plus a check row. Decoding them from played video gives exact
// glass-to-glass latency and frame identity; block size survives lossy
// encoders at low bitrates. The picture is laid out on a 640×360 grid and
// scaled to the canvas, so a 1280×720 pattern (simulcast: its 1/4 layer is
// 320×180) decodes with the same scale, video width / 640.
export const BLOCK = 20, BITS = 32, ROWS = 3, GRID_W = 640, GRID_H = 360;

export function createTestPattern({ width = 640, height = 360, fps = 30 } = {}) {
  const canvas = document.createElement('canvas');
  canvas.width = width; canvas.height = height;
  const ctx = canvas.getContext('2d');
  ctx.scale(width / GRID_W, height / GRID_H);
  let frame = 0;
  const state = { frame: 0, drawnAt: 0 };
  function bits(y, v) {
    for (let i = 0; i < BITS; i++) {
      ctx.fillStyle = ((v >>> (BITS - 1 - i)) & 1) ? '#fff' : '#000';
      ctx.fillRect(i * BLOCK, y, BLOCK, BLOCK);
    }
  }
  function draw() {
    frame++;
    const now = performance.timeOrigin + performance.now();
    const t = Math.floor(now) >>> 0;
    ctx.fillStyle = `hsl(${(frame * 3) % 360} 60% 35%)`;
    ctx.fillRect(0, 0, GRID_W, GRID_H);
    ctx.fillStyle = '#fff';
    ctx.font = 'bold 48px sans-serif';
    ctx.fillText('streamd #' + frame, 40, GRID_H - 60);
    bits(0, frame); bits(BLOCK, t); bits(2 * BLOCK, (frame ^ t) >>> 0);
    state.frame = frame; state.drawnAt = now;
  }
  draw();
  const timer = setInterval(draw, 1000 / fps);
  const stream = canvas.captureStream(fps);
  return { canvas, stream, state, stop: () => { clearInterval(timer); stream.getTracks().forEach((t) => t.stop()); } };
}

// decodeFrame reads the pattern from a drawn video frame (one readback of
// the top rows); null if unreadable. scale = video width / 640 (GRID_W).
export function decodeFrame(ctx, scaleX = 1, scaleY = 1) {
  const w = Math.ceil(BITS * BLOCK * scaleX), h = Math.ceil(ROWS * BLOCK * scaleY);
  const img = ctx.getImageData(0, 0, w, h);
  const row = (y) => {
    let v = 0;
    const py = Math.floor((y + BLOCK / 2) * scaleY);
    for (let i = 0; i < BITS; i++) {
      const px = Math.floor((i * BLOCK + BLOCK / 2) * scaleX);
      const o = (py * img.width + px) * 4;
      v = ((v << 1) | ((img.data[o] + img.data[o + 1] + img.data[o + 2]) / 3 > 128 ? 1 : 0)) >>> 0;
    }
    return v;
  };
  const frame = row(0), t = row(BLOCK), check = row(2 * BLOCK);
  if (((frame ^ t) >>> 0) !== check) return null;
  return { frame, t };
}
