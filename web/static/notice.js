// A plain-language notice over the video (e.g. "This stream is H.264 and
// this browser can't decode it — …"). Text only, set with textContent.
export function showNotice(text) {
  const stage = document.querySelector('.stage') || document.body;
  let el = document.getElementById('notice');
  if (!el) {
    el = document.createElement('div');
    el.id = 'notice';
    el.setAttribute('role', 'alert');
    Object.assign(el.style, {
      position: 'absolute', left: '50%', top: '50%', transform: 'translate(-50%, -50%)', maxWidth: 'min(32rem, 90%)',
      padding: '1rem 1.25rem', borderRadius: '12px', background: 'rgba(0,0,0,.78)', color: '#fff',
      font: '500 1rem/1.4 system-ui, sans-serif', textAlign: 'center', zIndex: 5,
    });
    stage.appendChild(el);
  }
  el.textContent = text;
  return el;
}

// clearNotice removes the notice once the stream plays.
export function clearNotice() {
  const el = document.getElementById('notice');
  if (el) el.remove();
}
