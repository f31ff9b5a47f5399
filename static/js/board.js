/* PodBoard board: drag and drop (SortableJS), the keyboard move menu, toasts, lease countdowns.
 *
 * A drop or a menu choice POSTs to the move endpoint with the card's version. Success or
 * refusal, the answer is the card as the server now has it (and out-of-band counts) and where
 * it belongs (PodBoard-Lane / PodBoard-Before headers): the card goes there, wherever the
 * drop put it, so a conflict with another person or a pod never leaves it in a wrong column.
 * A toast says what happened.
 *
 * For live updates: while a card is dragged (and until its move request settles)
 * document.body.dataset.dragging is that card's task id and window.podboard.draggingTaskId is
 * set; "podboard:drag-end" fires on document.body when it clears.
 */
(function () {
  "use strict";

  var MOVE_URL = "/board/move/";
  var TOAST_MS = 6000;

  var podboard = (window.podboard = window.podboard || {});
  podboard.draggingTaskId = null;

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (e) {
      return "";
    }
  }

  // Toasts ------------------------------------------------------------------------------------

  function toast(message, level) {
    var box = document.getElementById("toasts");
    if (!box || !message) return;
    var item = document.createElement("div");
    item.className = "toast toast-" + (level || "info");
    item.setAttribute("role", level === "error" ? "alert" : "status");
    item.textContent = message;
    item.addEventListener("click", function () { item.remove(); });
    box.appendChild(item);
    setTimeout(function () { item.remove(); }, TOAST_MS);
  }
  podboard.toast = toast;

  document.body.addEventListener("podboard:toast", function (evt) {
    var d = evt.detail || {};
    toast(d.message || d.value, d.level);
  });

  function toastFromHeader(response, fallback, level) {
    var raw = response && response.headers.get("HX-Trigger");
    if (raw) {
      try {
        var info = JSON.parse(raw)["podboard:toast"];
        if (info) { toast(info.message, info.level || level); return; }
      } catch (e) { /* fall through */ }
    }
    toast(fallback, level);
  }

  // Dragging flag -----------------------------------------------------------------------------

  function setDragging(taskId) {
    podboard.draggingTaskId = taskId;
    document.body.dataset.dragging = taskId;
  }

  function clearDragging() {
    var was = podboard.draggingTaskId;
    podboard.draggingTaskId = null;
    delete document.body.dataset.dragging;
    if (was) document.body.dispatchEvent(new CustomEvent("podboard:drag-end", { detail: { task: was } }));
  }

  // Moving ------------------------------------------------------------------------------------

  function cardNeighbourId(card, direction) {
    var el = card[direction];
    while (el && !(el.classList && el.classList.contains("card"))) el = el[direction];
    return el ? el.dataset.taskId : "";
  }

  /* POST a move. `card` is the card element where it now sits; `revert()` puts it back. */
  function postMove(card, target, revert) {
    var form = new FormData();
    form.append("task", card.dataset.taskId);
    form.append("version", card.dataset.version);
    form.append("to_status", target.status);
    form.append("to_pod", target.pod);
    form.append("after", target.after || "");
    form.append("before", target.before || "");
    var bodyEl = document.getElementById("board-body");
    var filters = new URLSearchParams((bodyEl && bodyEl.dataset.filters) || "");
    filters.forEach(function (value, key) { form.append(key, value); });
    card.classList.add("is-saving");
    return fetch(MOVE_URL, {
      method: "POST",
      body: form,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), "HX-Request": "true", "HX-Current-URL": location.href },
    })
      .then(function (response) {
        return response.text().then(function (html) {
          if (response.redirected && /\/login\//.test(response.url)) {
            revert();
            location.href = response.url;
            return false;
          }
          var place = placeFrom(response);
          if (!response.ok) {
            revert();
            if (html.trim()) putAt(swapCard(card, html), place);
            else if (place && !place.lane) card.remove(); // the task no longer exists
            else card.classList.remove("is-saving");
            toastFromHeader(response, "The move was refused (" + response.status + ").", "error");
            return false;
          }
          var fresh = putAt(swapCard(card, html), place);
          toastFromHeader(response, "", "success");
          return fresh || true;
        });
      })
      .catch(function () {
        revert();
        card.classList.remove("is-saving");
        toast("Could not reach the server; the card is back where it was.", "error");
        return false;
      });
  }

  /* Replace `card` with the server's html (a card plus out-of-band counts); return the new card. */
  function swapCard(card, html) {
    var id = card.id;
    htmx.swap(card, html, { swapStyle: "outerHTML" });
    return document.getElementById(id);
  }

  function placeFrom(response) {
    if (!response.headers.has("PodBoard-Lane")) return null;
    return {
      lane: decodeURIComponent(response.headers.get("PodBoard-Lane") || ""),
      before: decodeURIComponent(response.headers.get("PodBoard-Before") || ""),
    };
  }

  /* Put `card` where the server says it is (`place`: column and following card, DOM ids).
   * A column this board does not show (filtered out): the card leaves the page. */
  function putAt(card, place) {
    if (!card) return card;
    if (!place || !place.lane) { placeCard(card); return card; }
    var list = document.getElementById(place.lane);
    if (!list) { card.remove(); return null; }
    var before = place.before ? document.getElementById(place.before) : null;
    if (before && before.parentNode !== list) before = null;
    var next = cardNeighbourId(card, "nextElementSibling");
    if (card.parentNode === list) {
      if (before ? next === before.dataset.taskId : (place.before || !next)) return card;
    }
    // No following card on this page: it goes last (or beyond what the column shows).
    list.insertBefore(card, before);
    document.querySelectorAll("#" + CSS.escape(card.id)).forEach(function (copy) {
      if (copy !== card && !copy.classList.contains("card-drag")) copy.remove();
    });
    document.body.dispatchEvent(new CustomEvent("podboard:placed", { detail: { card: card } }));
    return card;
  }
  podboard.putAt = putAt;

  /* Put a card the server re-rendered in the column its status and pod say: a completion of a
   * reviewed pod lands in Review, an approval in Done, a send-back or a change request in Ready.
   * The live push that follows places it exactly; this keeps it out of the wrong column meanwhile. */
  function placeCard(card) {
    if (!card || !card.classList || !card.classList.contains("card")) return;
    if (card.dataset.taskId === podboard.draggingTaskId) return;
    var list = document.getElementById("lane-" + card.dataset.pod + "-" + card.dataset.status);
    if (!list || card.parentNode === list) return;
    if (card.dataset.status === "done") list.insertBefore(card, list.firstElementChild);
    else list.appendChild(card);
  }
  podboard.placeCard = placeCard;

  function onSortEnd(evt) {
    var card = evt.item;
    var from = evt.from;
    var to = evt.to;
    var oldIndex = evt.oldDraggableIndex;
    if (from === to && evt.oldDraggableIndex === evt.newDraggableIndex) {
      clearDragging();
      return;
    }
    var origin = { list: from, next: null };
    // The card that followed it before the drag (its index among the other cards).
    var siblings = Array.prototype.filter.call(from.children, function (el) {
      return el !== card && el.classList.contains("card");
    });
    origin.next = siblings[oldIndex] || null;
    function revert() {
      var next = origin.next && origin.next.parentNode === origin.list ? origin.next : null;
      origin.list.insertBefore(card, next);
    }
    postMove(card, {
      status: to.dataset.status,
      pod: to.dataset.pod,
      after: cardNeighbourId(card, "previousElementSibling"),
      before: cardNeighbourId(card, "nextElementSibling"),
    }, revert).then(clearDragging, clearDragging);
  }

  /* The keyboard move menu: the same move without a drag. */
  document.addEventListener("submit", function (evt) {
    var form = evt.target;
    if (!form.classList || !form.classList.contains("move-form")) return;
    var card = form.closest(".card");
    if (!card || typeof htmx === "undefined") return; // no JS helpers: plain form post
    evt.preventDefault();
    var status = form.elements.to_status.value;
    var pod = form.elements.to_pod.value;
    if (status === card.dataset.status && pod === card.dataset.pod) {
      form.closest("details").open = false;
      return;
    }
    var home = { list: card.parentNode, next: card.nextElementSibling };
    var target = document.getElementById("lane-" + pod + "-" + status);
    if (target) target.insertBefore(card, target.firstElementChild);
    postMove(card, {
      status: status,
      pod: pod,
      after: "",
      before: target ? cardNeighbourId(card, "nextElementSibling") : "",
    }, function () {
      if (home.list) home.list.insertBefore(card, home.next && home.next.parentNode === home.list ? home.next : null);
    }).then(function (fresh) {
      if (fresh && fresh !== true && !target) fresh.remove(); // its lane is filtered out
      var focusOn = (fresh && fresh !== true ? fresh : document.getElementById(card.id));
      var summary = focusOn && focusOn.querySelector(".card-menu summary");
      if (summary) summary.focus();
    });
  });

  // SortableJS on every column, again after each htmx swap -------------------------------------

  function initSortables(root) {
    if (typeof Sortable === "undefined") return;
    // A read-only board (no "change task" permission) has nothing to drag.
    if (document.body.classList.contains("board-read-only")) return;
    var lists = [];
    if (root.matches && root.matches(".cards")) lists.push(root);
    if (root.querySelectorAll) lists = lists.concat(Array.prototype.slice.call(root.querySelectorAll(".cards")));
    lists.forEach(function (list) {
      if (Sortable.get(list)) return;
      Sortable.create(list, {
        group: "board",
        draggable: ".card",
        filter: "details, a, button, select, input, textarea, label, summary",
        preventOnFilter: false,
        animation: 150,
        ghostClass: "card-ghost",
        chosenClass: "card-chosen",
        dragClass: "card-drag",
        forceFallback: true,
        fallbackOnBody: true,
        fallbackTolerance: 4,
        scroll: true,
        bubbleScroll: true,
        onStart: function (evt) { setDragging(evt.item.dataset.taskId); },
        onEnd: onSortEnd,
      });
    });
  }

  /* A "show more" page can repeat a card that moved meanwhile: keep the first copy. */
  function dropDuplicateCards(root) {
    if (!root.querySelectorAll) return;
    root.querySelectorAll(".card[id]").forEach(function (card) {
      var copies = document.querySelectorAll("#" + CSS.escape(card.id));
      for (var i = 1; i < copies.length; i++) copies[i].remove();
    });
  }

  // Lease countdowns ----------------------------------------------------------------------------

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  function tickLeases() {
    var now = Date.now();
    document.querySelectorAll("[data-lease-expires]").forEach(function (el) {
      var until = Date.parse(el.dataset.leaseExpires);
      if (isNaN(until)) return;
      var left = Math.round((until - now) / 1000);
      if (left <= 0) {
        el.textContent = "lease expired";
        el.classList.add("expired");
        return;
      }
      var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
      el.textContent = "lease " + (h ? h + ":" + pad(m) : m) + ":" + pad(s);
      el.classList.toggle("soon", left < 120);
    });
  }

  // The side panel: static/js/board-panel.js.

  // htmx wiring ---------------------------------------------------------------------------------

  function boot() {
    if (typeof htmx === "undefined") return;
    // A refused action in the panel answers 409/422 with the panel and its message: show it.
    document.body.addEventListener("htmx:beforeSwap", function (evt) {
      var status = evt.detail.xhr.status;
      // A refused card action (review, send back) answers the card as it now is (the winner of
      // a race, say) and a toast with the reason: show that too.
      var target = evt.detail.target;
      if ((status === 403 || status === 409 || status === 422 || status === 404) && target &&
          (target.id === "panel" || (target.classList && target.classList.contains("card")))) {
        evt.detail.shouldSwap = true;
        evt.detail.isError = false;
      }
    });
    document.body.addEventListener("htmx:responseError", function (evt) {
      toast("The server answered " + evt.detail.xhr.status + ".", "error");
    });
    document.body.addEventListener("htmx:sendError", function () {
      toast("Could not reach the server.", "error");
    });
    htmx.onLoad(function (root) {
      placeCard(root); // a card an action answered (review, send back) may change column
      initSortables(root);
      dropDuplicateCards(root);
      tickLeases();
    });
    initSortables(document.body);
    setInterval(tickLeases, 1000);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
