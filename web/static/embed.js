// Embed a streamd player on a shop page:
// <div data-streamd="STREAM"></div><script src="https://streamd.example/embed.js" async></script>
// data-quality="low|medium|high" on the div starts the player on that size
// (a page with many players, or one for phones); viewers can change it.
(function () {
  var script = document.currentScript;
  var base = script ? new URL(script.src).origin : location.origin;
  document.querySelectorAll('[data-streamd]').forEach(function (el) {
    var f = document.createElement('iframe');
    f.src = base + '/watch/' + encodeURIComponent(el.getAttribute('data-streamd'));
    if (el.getAttribute('data-quality')) f.src += '?quality=' + encodeURIComponent(el.getAttribute('data-quality'));
    f.allow = 'autoplay; fullscreen; payment';
    f.style.cssText = 'border:0;width:100%;aspect-ratio:9/16;max-height:90vh;border-radius:12px';
    el.appendChild(f);
  });
})();
