// toast shows a short message at the top of a staff page (#toasts): errors
// stay longer. Returns {text, kind} so a page can keep the last one.
export function toast(text, kind = 'ok') {
  const el = document.createElement('div');
  el.className = 'toast ' + kind;
  el.textContent = text;
  document.getElementById('toasts').appendChild(el);
  setTimeout(() => el.classList.add('out'), kind === 'error' ? 5000 : 2500);
  setTimeout(() => el.remove(), kind === 'error' ? 5400 : 2900);
  return { text, kind };
}
