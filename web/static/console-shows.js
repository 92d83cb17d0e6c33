// The console's list of recorded shows of this stream, each with its replay
// link (GET /api/streams/{id}/shows, staff). Kept apart from console.js: it
// only reads the staff token the console keeps in sessionStorage.
const TOKEN_KEY = 'streamd.staff';
const streamId = decodeURIComponent(location.pathname.split('/').filter(Boolean).pop());
const wrap = document.getElementById('shows-wrap');
const list = document.getElementById('shows');

function fmtDuration(s) {
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h ? `${h} h ${m} min` : m ? `${m} min ${r} s` : `${r} s`;
}

async function refresh() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) return;
  let shows;
  try {
    const r = await fetch(`/api/streams/${encodeURIComponent(streamId)}/shows`, { headers: { Authorization: 'Bearer ' + token } });
    if (!r.ok) { wrap.hidden = true; return; } // recording off, or signed out
    shows = await r.json();
  } catch { return; }
  list.replaceChildren();
  for (const s of shows) {
    const li = document.createElement('li');
    li.className = 'show-row';
    li.dataset.show = s.id;
    const main = document.createElement('div');
    main.className = 'feed-main';
    const line = document.createElement('div');
    line.className = 'feed-line';
    line.textContent = new Date(s.started_at).toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
    const sub = document.createElement('div');
    sub.className = 'muted';
    sub.textContent = s.ended_at
      ? `${fmtDuration(s.duration_s)} · ${s.cards} product${s.cards === 1 ? '' : 's'} · ${(s.bytes / 1e6).toFixed(1)} MB`
      : 'Recording now…';
    main.append(line, sub);
    li.appendChild(main);
    if (s.ended_at) {
      const a = document.createElement('a');
      a.className = 'ghost-link';
      a.href = s.replay_url;
      a.target = '_blank';
      a.rel = 'noopener';
      a.textContent = 'Replay';
      li.appendChild(a);
    }
    list.appendChild(li);
  }
  wrap.hidden = shows.length === 0;
}

refresh();
setInterval(() => { if (!document.hidden) refresh(); }, 15000);
window.addEventListener('storage', refresh);
// The console signs in after this module loads: list the shows once it shows.
new MutationObserver(() => { if (!document.getElementById('console').hidden) refresh(); })
  .observe(document.getElementById('console'), { attributes: true, attributeFilter: ['hidden'] });
