/* PodBoard side panel (#panel): the task detail opened beside the board.
 *
 *   - Opening it moves keyboard focus to its heading; closing it (✕ or Escape) brings focus
 *     back to the card that opened it.
 *   - Every link to a task inside the panel or on a card (baton trail, dependencies, "waits
 *     for", continuations) opens that task in the panel; "Open full page" leaves the board.
 *   - It follows live updates: when a push changes the task it shows (a newer version, see
 *     live.js "podboard:card-changed"), the panel reloads; while someone is typing in it, it
 *     is marked stale instead and its actions are disabled until it is refreshed. A deleted
 *     task leaves the panel marked so, with no actions.
 */
(function () {
  "use strict";

  var TASK_PATH = /^\/tasks\/([^/]+)\/$/;
  var openerCard = ""; // DOM id of the card whose link opened the panel
  var focusOnSwap = false;
  var keepScroll = null;
  var panelRequests = 0; // panel requests in flight (an action's answer, an open, a refresh)
  var newestSeen = {}; // task id -> the newest version a live push announced

  function panel() { return document.getElementById("panel"); }
  function shown() { var p = panel(); return p && p.querySelector(".detail[data-task-id]"); }

  function open(url, fromElement) {
    var card = fromElement && fromElement.closest && fromElement.closest(".card");
    if (card) openerCard = card.id;
    focusOnSwap = true;
    htmx.ajax("GET", url, { target: "#panel", swap: "innerHTML" });
  }

  function close() {
    var p = panel();
    if (!p || !p.firstElementChild) return;
    p.replaceChildren();
    var card = openerCard && document.getElementById(openerCard);
    var link = card && card.querySelector(".card-id");
    if (link) link.focus();
  }

  function refresh() {
    var detail = shown();
    if (!detail) return;
    keepScroll = panel().scrollTop;
    htmx.ajax("GET", "/tasks/" + encodeURIComponent(detail.dataset.taskId) + "/", {
      target: "#panel",
      swap: "innerHTML",
      headers: { "PodBoard-Refresh": "1" },
    });
  }

  function typing(p) {
    var el = document.activeElement;
    if (!el || !p.contains(el)) return false;
    return (el.tagName === "TEXTAREA" || el.tagName === "INPUT") && !!el.value;
  }

  /* Say the panel is out of date and disable what may no longer apply. */
  function markStale(detail, text, canRefresh) {
    detail.classList.add("is-stale");
    detail.querySelectorAll("form button, form select, .actions .button").forEach(function (el) {
      if (el.tagName === "A") el.setAttribute("aria-disabled", "true");
      else el.disabled = true;
    });
    var note = detail.querySelector(".stale-note");
    if (!note) {
      note = document.createElement("p");
      note.className = "stale-note";
      note.setAttribute("role", "status");
      detail.insertBefore(note, detail.querySelector(".detail-head"));
    }
    note.textContent = text + " ";
    if (canRefresh) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "panel-refresh";
      button.textContent = "Refresh";
      note.appendChild(button);
    }
  }

  /* Bring the panel up to the newest version a push announced for its task. */
  function follow() {
    var detail = shown();
    if (!detail || panelRequests > 0) return; // an answer on its way is at least as new
    if ((newestSeen[detail.dataset.taskId] || 0) <= parseInt(detail.dataset.version, 10)) return;
    if (typing(panel())) markStale(detail, "This task changed since it was shown.", true);
    else refresh();
  }

  document.addEventListener("podboard:card-changed", function (evt) {
    var change = evt.detail || {};
    newestSeen[change.id] = Math.max(newestSeen[change.id] || 0, change.version || 0);
    var detail = shown();
    if (!detail || detail.dataset.taskId !== change.id) return;
    if (change.gone) { markStale(detail, "This task was deleted.", false); return; }
    follow();
  });

  document.addEventListener("click", function (evt) {
    if (!evt.target.closest) return;
    if (evt.target.closest(".panel-close")) { close(); return; }
    if (evt.target.closest(".panel-refresh")) { refresh(); return; }
    var link = evt.target.closest("a[href]");
    if (!link || link.hasAttribute("hx-get") || evt.defaultPrevented) return;
    if (evt.button !== 0 || evt.metaKey || evt.ctrlKey || evt.shiftKey || evt.altKey) return;
    if (!link.closest("#panel, #board-body") || link.closest(".panel-bar")) return;
    var url = new URL(link.href, location.href);
    if (url.origin !== location.origin || !TASK_PATH.test(url.pathname) || url.hash) return;
    evt.preventDefault();
    open(url.pathname, link);
  });

  document.addEventListener("keydown", function (evt) {
    if (evt.key !== "Escape" || !evt.target.closest) return;
    if (evt.target.closest(".card-menu, details[open]")) return;
    close();
  });

  function boot() {
    if (typeof htmx === "undefined") return;
    // A link with its own hx-get (a card's id, "Answer", dependencies) opens the panel too.
    document.body.addEventListener("htmx:beforeRequest", function (evt) {
      var elt = evt.detail.elt;
      var target = evt.detail.target;
      if (!target || target.id !== "panel") return;
      panelRequests += 1;
      if (!elt || elt === document.body) return;
      if (elt.tagName === "A") {
        focusOnSwap = true;
        var card = elt.closest(".card");
        if (card) openerCard = card.id;
      }
    });
    // A refresh asked for in the background never replaces what someone started typing
    // meanwhile: the panel says it is stale instead.
    document.body.addEventListener("htmx:beforeSwap", function (evt) {
      var target = evt.detail.target;
      var headers = (evt.detail.requestConfig && evt.detail.requestConfig.headers) || {};
      if (!target || target.id !== "panel" || !headers["PodBoard-Refresh"]) return;
      var detail = shown();
      if (detail && typing(panel())) {
        evt.detail.shouldSwap = false;
        markStale(detail, "This task changed since it was shown.", true);
      }
    });
    document.body.addEventListener("htmx:afterRequest", function (evt) {
      if (evt.detail.target && evt.detail.target.id === "panel") {
        panelRequests = Math.max(0, panelRequests - 1);
        setTimeout(follow, 50); // after the answer settled
      }
    });
    document.body.addEventListener("htmx:afterSettle", function (evt) {
      if (!evt.detail.target || evt.detail.target.id !== "panel") return;
      var p = panel();
      if (keepScroll !== null) { p.scrollTop = keepScroll; keepScroll = null; }
      if (!focusOnSwap) return;
      focusOnSwap = false;
      // Someone already in a field of the new panel (between the swap and the settle) keeps it.
      var active = document.activeElement;
      if (active && active !== p && p.contains(active) && active.matches("input, textarea, select")) return;
      var heading = p.querySelector("h1");
      if (heading) {
        heading.tabIndex = -1;
        heading.focus();
      }
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
