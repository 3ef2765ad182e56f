// Lector's live progress fallback. The document page follows its progress over Server-Sent
// Events (the htmx SSE extension); where the stream cannot be opened (no EventSource, a
// proxy that buffers or cuts streams), this polls the progress fragment instead, once a
// second, until the document has finished (the fragment then reloads the page).
(function () {
  'use strict';

  function poll(live) {
    if (live.dataset.polling === 'yes') {
      return;
    }
    live.dataset.polling = 'yes';
    var timer = setInterval(function () {
      var box = document.getElementById('progress');
      if (!box || box.dataset.finished === 'true') {
        clearInterval(timer);
        return;
      }
      htmx.ajax('GET', live.dataset.poll, { target: '#progress', swap: 'outerHTML' });
    }, 1000);
  }

  document.addEventListener('htmx:sseError', function (event) {
    var live = event.target.closest && event.target.closest('[data-poll]');
    if (live) {
      poll(live);
    }
  });

  document.addEventListener('DOMContentLoaded', function () {
    if (!window.EventSource) {
      document.querySelectorAll('[data-poll]').forEach(poll);
    }
  });
})();
