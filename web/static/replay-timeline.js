// A recorded show's cards on its media timeline: at(t) is the card event in
// force at media time t (the last show/update/hide at or before t), and
// chapters are the moments a product was shown.

// Frames are 1/30 s or more apart; a card's time is its frame's time
// exactly (the stamp names a real frame), so half a millisecond absorbs
// float rounding without reaching the previous frame.
const EPS = 0.0005;

export function createTimeline(events) {
  const cards = events.filter((e) => e.type === 'card' && e.data)
    .map((e) => ({ t: e.t, id: e.data.id, seq: e.data.seq, action: e.data.action, card: e.data.card }))
    .sort((a, b) => a.t - b.t || a.seq - b.seq);
  const chapters = cards.filter((c) => c.action === 'show' && c.card);
  function at(t) {
    let cur = null;
    for (const c of cards) {
      if (c.t > t + EPS) break;
      cur = c;
    }
    // An update keeps the product on screen with new details.
    return cur;
  }
  return { cards, chapters, at };
}

export function fmtTime(s) {
  s = Math.max(0, Math.floor(s));
  const m = Math.floor(s / 60), r = s % 60;
  return `${m}:${String(r).padStart(2, '0')}`;
}
