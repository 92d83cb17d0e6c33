// The player's quality menu (Auto / High / Medium / Low) for a publisher
// that sends several sizes (simulcast). The server gives each viewer one
// layer: on Auto it follows this viewer's bandwidth, otherwise the chosen
// one. The WHEP session's /layer resource says which layers exist and which
// one plays now: it is read when the session starts, every POLL_MS while it
// lives and when the picture's size changes; a choice is POSTed to it.
// Hidden while the stream offers fewer than two layers (or the server has
// no /layer). The choice lasts the tab's session (sessionStorage) and a
// reconnect joins with it; /watch/{id}?quality=low|medium|high joins on it.
const NAMES = { auto: 'Auto', high: 'High', medium: 'Medium', low: 'Low' };
const KEY = 'streamd.quality';
const POLL_MS = 3000;

function remember(choice) {
  try { sessionStorage.setItem(KEY, choice); } catch { /* storage blocked (embeds) */ }
}

function firstChoice() {
  const asked = new URLSearchParams(location.search).get('quality');
  if (NAMES[asked]) { remember(asked); return asked; }
  try { const kept = sessionStorage.getItem(KEY); if (NAMES[kept]) return kept; } catch { /* blocked */ }
  return 'auto';
}

// createQuality wires the menu in root (watch.html's #quality). The state
// (choice, current, layers, estimate_bps) is readable on the result.
export function createQuality(root) {
  const btn = root.querySelector('.quality-btn');
  const label = root.querySelector('.quality-label');
  const menu = root.querySelector('.quality-menu');
  const items = [...menu.querySelectorAll('[data-layer]')];
  const autoNow = menu.querySelector('.quality-now');
  const q = { choice: firstChoice(), current: '', layers: [], estimate_bps: null, location: null };
  let timer = null;
  let epoch = 0; // bumped by a choice: reads begun before it are stale

  function render() {
    root.hidden = !q.location || q.layers.length < 2;
    if (root.hidden) close(false);
    const now = NAMES[q.current] || '';
    label.textContent = q.choice === 'auto' ? (now ? `Auto (${now})` : 'Auto') : NAMES[q.choice];
    btn.setAttribute('aria-label', 'Quality: ' + label.textContent);
    autoNow.textContent = q.choice === 'auto' && now ? 'now ' + now : '';
    for (const it of items) {
      const l = it.dataset.layer;
      it.hidden = l !== 'auto' && !q.layers.includes(l);
      it.setAttribute('aria-checked', String(l === q.choice));
    }
  }

  function update(body) {
    if (NAMES[body.layer]) q.choice = body.layer;
    q.current = body.current || '';
    q.layers = Array.isArray(body.layers) ? body.layers : [];
    q.estimate_bps = body.estimate_bps ?? null;
    render();
  }

  async function call(init) {
    const loc = q.location, mine = epoch;
    if (!loc) return;
    try {
      const res = await fetch(loc + '/layer', init);
      if (loc !== q.location || mine !== epoch) return;
      if (res.ok) update(await res.json());
      else if (res.status === 404) stopPolling(); // the session ended, or a server without layers
    } catch { /* offline: the next poll */ }
  }
  const refresh = () => call(undefined);
  const stopPolling = () => { clearInterval(timer); timer = null; q.layers = []; render(); };

  function choose(layer) {
    epoch++;
    q.choice = layer;
    remember(layer);
    render();
    return call({ method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ layer }) });
  }

  // ── the menu: a button and a menu of radio items (WAI-ARIA menu button)
  const visible = () => items.filter((it) => !it.hidden);
  function open() {
    menu.hidden = false;
    btn.setAttribute('aria-expanded', 'true');
    (visible().find((it) => it.getAttribute('aria-checked') === 'true') || visible()[0]).focus();
  }
  function close(focusButton) {
    if (menu.hidden) return;
    menu.hidden = true;
    btn.setAttribute('aria-expanded', 'false');
    if (focusButton) btn.focus();
  }
  btn.addEventListener('click', () => (menu.hidden ? open() : close(true)));
  btn.addEventListener('keydown', (ev) => { if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') { ev.preventDefault(); open(); } });
  menu.addEventListener('click', (ev) => {
    const it = ev.target.closest('[data-layer]');
    if (!it) return;
    close(true);
    choose(it.dataset.layer);
  });
  menu.addEventListener('keydown', (ev) => {
    const vis = visible(), i = vis.indexOf(document.activeElement);
    const go = { ArrowDown: i + 1, ArrowUp: i - 1, Home: 0, End: vis.length - 1 }[ev.key];
    if (go !== undefined) { ev.preventDefault(); vis[(go + vis.length) % vis.length].focus(); }
    else if (ev.key === 'Escape') { ev.preventDefault(); close(true); }
    else if (ev.key === 'Tab') close(false);
  });
  document.addEventListener('pointerdown', (ev) => { if (!root.contains(ev.target)) close(false); });

  render();
  return Object.assign(q, {
    choose,
    refresh,
    // attach follows a WHEP session (its Location); detach when it ends.
    attach(location) {
      clearInterval(timer);
      q.location = location;
      q.current = '';
      refresh();
      timer = setInterval(refresh, POLL_MS);
    },
    detach() {
      clearInterval(timer);
      timer = null;
      q.location = null;
      render();
    },
  });
}
