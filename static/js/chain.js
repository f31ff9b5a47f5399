// The delivery chain page (/chains/<id>/) stays live by polling: every few seconds while the
// page is visible it asks for #chain-graph again with the stamp of what it shows, and the
// server answers 204 (htmx swaps nothing) until a task of the chain changes. A hidden tab
// asks nothing, and catches up as soon as it is shown again.
(function () {
  "use strict";

  const EVERY_MS = 3000;

  function poll() {
    const graph = document.getElementById("chain-graph");
    if (graph && !document.hidden && window.htmx) {
      window.htmx.trigger(graph, "chain:poll");
    }
  }

  window.setInterval(poll, EVERY_MS);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) poll();
  });
})();
