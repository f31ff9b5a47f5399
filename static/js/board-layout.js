/* PodBoard board layout: a page that stays put while the board changes live.
 *
 *   - Each column keeps to its page (data-page on .cards: the server's page size, grown by
 *     every "Show more"): cards that live updates push past it leave the page, and the
 *     column's "Show N more" button says how many are not shown (from its count).
 *   - Lanes collapse (the lane title is a toggle); on narrow screens each lane shows one
 *     column at a time, picked with its tabs ("Ready 3 · Active 1 · Done 66").
 *   - Both choices are remembered per user in this browser (localStorage, keyed by the
 *     user name on .board-wrap[data-user]); nothing is stored on the server.
 *   - The filter form's "Clear" link shows whenever filters are set, also after filtering in
 *     place.
 * Runs after every swap of #board-body and every live frame ("podboard:live-applied").
 */
(function () {
  "use strict";

  function byId(id) { return id ? document.getElementById(id) : null; }

  // Remembered choices ------------------------------------------------------------------------

  function storeKey() {
    var wrap = document.querySelector(".board-wrap");
    return "podboard:board:" + ((wrap && wrap.dataset.user) || "");
  }

  function load() {
    try {
      return JSON.parse(localStorage.getItem(storeKey()) || "{}") || {};
    } catch (e) {
      return {};
    }
  }

  function save(change) {
    var prefs = load();
    change(prefs);
    try { localStorage.setItem(storeKey(), JSON.stringify(prefs)); } catch (e) { /* full, private */ }
  }

  // Collapsing lanes --------------------------------------------------------------------------

  function setCollapsed(lane, collapsed) {
    lane.classList.toggle("is-collapsed", collapsed);
    var toggle = lane.querySelector(".lane-toggle");
    if (toggle) toggle.setAttribute("aria-expanded", collapsed ? "false" : "true");
  }

  // Column tabs (narrow screens) --------------------------------------------------------------

  function selectColumn(lane, status) {
    var found = false;
    lane.querySelectorAll(".col-tab").forEach(function (tab) {
      var on = tab.dataset.status === status;
      found = found || on;
      tab.setAttribute("aria-selected", on ? "true" : "false");
      tab.tabIndex = on ? 0 : -1;
    });
    if (!found) return;
    lane.dataset.current = status;
    lane.querySelectorAll(".column").forEach(function (column) {
      column.classList.toggle("is-current", column.dataset.status === status);
    });
  }

  function syncTabCounts(root) {
    (root || document).querySelectorAll(".tab-count[data-count]").forEach(function (el) {
      var count = byId(el.dataset.count);
      if (count && el.textContent !== count.textContent) el.textContent = count.textContent;
    });
  }

  // Columns kept to their page ---------------------------------------------------------------

  function isCard(el) { return el.classList && el.classList.contains("card"); }

  function cardsOf(list) { return Array.prototype.filter.call(list.children, isCard); }

  function trim(list, keep) {
    var page = parseInt(list.dataset.page, 10);
    if (!page) return;
    var cards = cardsOf(list);
    var dragging = document.body.dataset.dragging;
    for (var i = cards.length - 1; i >= page; i--) {
      var card = cards[i];
      // Never pull away the card someone holds or works in.
      if (card.dataset.taskId === dragging || card.contains(document.activeElement)) break;
      if (card !== keep) card.remove(); // the card a person just moved stays in sight

    }
  }

  function moreUrl(list, offset, limit) {
    var body = byId("board-body");
    var filters = (body && body.dataset.filters) || "";
    return "/board/" + encodeURIComponent(list.dataset.pod) + "/" + list.dataset.status +
      "/more/?offset=" + offset + (limit ? "&limit=" + limit : "") + (filters ? "&" + filters : "");
  }

  /* Make the column's "Show N more" button match its count and the cards it shows. */
  function syncMore(list) {
    var key = list.id.slice("lane-".length);
    var holder = byId("more-" + key);
    var count = byId("count-" + key);
    if (!holder || !count) return;
    var shown = cardsOf(list).length;
    var hidden = Math.max(0, (parseInt(count.textContent, 10) || 0) - shown);
    var button = holder.querySelector(".more-button");
    if (!hidden) {
      if (button) holder.replaceChildren();
      return;
    }
    var label = "Show " + hidden + " more";
    if (button && button.dataset.offset === String(shown)) {
      if (button.textContent !== label) button.textContent = label;
      return;
    }
    button = document.createElement("button");
    button.type = "button";
    button.className = "link more-button";
    button.dataset.offset = String(shown);
    button.setAttribute("hx-get", moreUrl(list, shown));
    button.setAttribute("hx-target", "#" + CSS.escape(list.id));
    button.setAttribute("hx-swap", "beforeend");
    button.textContent = label;
    holder.replaceChildren(button);
    if (window.htmx) htmx.process(button);
  }

  /* A column that lost cards (claimed, done) while more wait beyond it reloads its page, so
   * it does not empty itself card by card. Debounced: one request per burst. */
  var refillTimer = null;

  function wantsRefill(list) {
    var count = byId("count-" + list.id.slice("lane-".length));
    var shown = cardsOf(list).length;
    return !list.dataset.refilling && count && shown < parseInt(list.dataset.page, 10) &&
      (parseInt(count.textContent, 10) || 0) > shown;
  }

  function refill() {
    refillTimer = null;
    if (document.body.dataset.dragging) { refillTimer = setTimeout(refill, 400); return; }
    document.querySelectorAll("#board-body .cards[data-page]").forEach(function (list) {
      if (!wantsRefill(list) || !window.htmx) return;
      list.dataset.refilling = "1";
      htmx.ajax("GET", moreUrl(list, 0, list.dataset.page), { target: list, swap: "innerHTML" })
        .catch(function () {})
        .then(function () {
          delete list.dataset.refilling;
          cardsOf(list).forEach(keepNewestCopy);
          keepColumns(); // changes that came meanwhile may call for another page
        });
    });
  }

  /* A card fetched for a column may also be elsewhere on the page (a push on its way):
   * keep the copy with the newest version (on a tie, the other one, already placed). */
  function keepNewestCopy(card) {
    var copies = document.querySelectorAll("#" + CSS.escape(card.id));
    Array.prototype.forEach.call(copies, function (other) {
      if (other === card || !card.parentNode) return;
      var mine = parseInt(card.dataset.version, 10) || 0;
      if ((parseInt(other.dataset.version, 10) || 0) >= mine) card.remove();
      else other.remove();
    });
  }

  function keepColumns(evt) {
    var keep = evt && evt.detail && evt.detail.card;
    var refillSoon = false;
    document.querySelectorAll("#board-body .cards[data-page]").forEach(function (list) {
      trim(list, keep);
      syncMore(list);
      refillSoon = refillSoon || wantsRefill(list);
    });
    syncTabCounts();
    if (refillSoon && !refillTimer) refillTimer = setTimeout(refill, 400);
  }

  // Setting a board up -------------------------------------------------------------------------

  function setUp() {
    var prefs = load();
    var collapsed = prefs.collapsed || {};
    var columns = prefs.columns || {};
    document.querySelectorAll("#board-body .lane").forEach(function (lane) {
      setCollapsed(lane, !!collapsed[lane.dataset.pod]);
      if (columns[lane.dataset.pod]) selectColumn(lane, columns[lane.dataset.pod]);
      else selectColumn(lane, lane.dataset.current);
    });
    var body = byId("board-body");
    var clear = byId("clear-filters");
    if (body && clear) clear.hidden = !body.dataset.filters;
    keepColumns();
  }

  document.addEventListener("click", function (evt) {
    var toggle = evt.target.closest && evt.target.closest(".lane-toggle");
    if (toggle) {
      var lane = toggle.closest(".lane");
      var collapsed = !lane.classList.contains("is-collapsed");
      setCollapsed(lane, collapsed);
      save(function (prefs) {
        prefs.collapsed = prefs.collapsed || {};
        if (collapsed) prefs.collapsed[lane.dataset.pod] = true;
        else delete prefs.collapsed[lane.dataset.pod];
      });
      return;
    }
    var more = evt.target.closest && evt.target.closest(".more-button");
    if (more) {
      var holder = more.closest(".more");
      var column = holder && byId("lane-" + holder.id.slice("more-".length));
      if (column) column.dataset.growing = "1";
      return;
    }
    var tab = evt.target.closest && evt.target.closest(".col-tab");
    if (tab) {
      var owner = tab.closest(".lane");
      selectColumn(owner, tab.dataset.status);
      save(function (prefs) {
        prefs.columns = prefs.columns || {};
        prefs.columns[owner.dataset.pod] = tab.dataset.status;
      });
    }
  });

  // Arrow keys move between a lane's tabs (the WAI-ARIA tabs pattern).
  document.addEventListener("keydown", function (evt) {
    var tab = evt.target.closest && evt.target.closest(".col-tab");
    if (!tab || (evt.key !== "ArrowRight" && evt.key !== "ArrowLeft")) return;
    var tabs = Array.prototype.slice.call(tab.parentNode.querySelectorAll(".col-tab"));
    var next = tabs[(tabs.indexOf(tab) + (evt.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
    next.focus();
    next.click();
    evt.preventDefault();
  });

  // A lane link jumps to the lane and puts keyboard focus there.
  document.addEventListener("click", function (evt) {
    var link = evt.target.closest && evt.target.closest(".lane-link");
    if (!link) return;
    var lane = byId(decodeURIComponent(link.getAttribute("href").slice(1)));
    if (!lane) return;
    evt.preventDefault();
    lane.scrollIntoView({ block: "start" });
    lane.focus({ preventScroll: true });
  });

  function boot() {
    document.body.addEventListener("htmx:afterSettle", function (evt) {
      var target = evt.detail && evt.detail.target;
      if (!target) return;
      if (target.id === "board-body") { setUp(); return; }
      if (target.classList && target.classList.contains("cards") && target.dataset.growing) {
        // "Show more" appended a page: the column now keeps that many.
        delete target.dataset.growing;
        target.dataset.page = String(Math.max(cardsOf(target).length, parseInt(target.dataset.page, 10) || 0));
        syncMore(target);
      }
    });
    document.addEventListener("podboard:live-applied", keepColumns);
    document.body.addEventListener("podboard:placed", keepColumns);
    document.body.addEventListener("htmx:oobAfterSwap", function () { syncTabCounts(); });
    setUp();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
