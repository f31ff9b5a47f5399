/* The activity feed: the /activity/ page and the board's drawer (_activity_drawer.html).
 *
 * Live by polling, like the chain page: every POLL_MS while the page is visible (and, for the
 * drawer, while it is open) each ol[data-feed] asks its data-rows-url for the rows after
 * data-after, with its data-filters. The server answers 204 when nothing is new, or the rows
 * (newest first) and a PodBoard-Feed-After header with the next cursor. Rows already shown
 * (the server sends the last seconds' rows again, see tasks_app/insight/feed.py) are skipped;
 * the others go in id order. A list with data-lazy (the drawer) loads its first page when it
 * first opens. Every <time> in a feed is rewritten as "3 min ago" once a TICK_MS.
 *
 * The drawer: button#activity-toggle opens and closes #activity-drawer (aria-expanded). When
 * it opens, focus moves to the drawer; Esc or the close button closes it and focus goes back
 * to the toggle. Its filters reload its list.
 */
(function () {
  "use strict";

  if (window.podboardActivity) return;
  window.podboardActivity = true;

  var POLL_MS = 4000;
  var TICK_MS = 30000;
  var MAX_ROWS = 300; // a page left open drops its oldest rows past this

  function ago(date) {
    var seconds = (Date.now() - date.getTime()) / 1000;
    if (seconds < 60) return "just now";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min ago";
    if (seconds < 86400) return Math.floor(seconds / 3600) + " h ago";
    return Math.floor(seconds / 86400) + " d ago";
  }

  function tick(root) {
    (root || document).querySelectorAll(".feed time[datetime]").forEach(function (el) {
      var at = new Date(el.getAttribute("datetime"));
      if (!isNaN(at)) el.textContent = ago(at);
    });
  }

  function rowsUrl(list, extra) {
    var params = new URLSearchParams(list.getAttribute("data-filters") || "");
    Object.keys(extra).forEach(function (key) { params.set(key, extra[key]); });
    return list.getAttribute("data-rows-url") + "?" + params.toString();
  }

  function parseRows(html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    return Array.prototype.slice.call(template.content.querySelectorAll("li.feed-row"));
  }

  /* Put each new row where its id belongs (newest on top); skip the ones already shown. */
  function insertRows(list, rows) {
    rows.reverse().forEach(function (row) {
      var id = parseInt(row.getAttribute("data-id"), 10) || 0;
      if (id && list.querySelector('li[data-id="' + id + '"]')) return;
      var before = null;
      if (id) {
        before = Array.prototype.find.call(list.children, function (li) {
          var other = parseInt(li.getAttribute("data-id"), 10) || 0;
          return other && other < id;
        }) || null;
      } else {
        before = list.firstElementChild;
      }
      list.insertBefore(row, before);
      if (id) row.classList.add("feed-new");
    });
    while (list.children.length > MAX_ROWS) list.lastElementChild.remove();
    tick(list);
    var empty = list.parentElement && list.parentElement.querySelector(".empty-feed");
    if (empty && list.children.length) empty.hidden = true;
  }

  function request(list, url) {
    if (list.dataset.busy) return Promise.resolve();
    list.dataset.busy = "1";
    return fetch(url, { credentials: "same-origin", headers: { "HX-Request": "true" } })
      .then(function (response) {
        // Signed out: htmx requests get a client redirect; stop polling rather than show it.
        if (response.headers.get("HX-Redirect") || response.redirected) {
          list.removeAttribute("data-feed");
          return null;
        }
        var after = response.headers.get("PodBoard-Feed-After");
        if (after) list.setAttribute("data-after", after);
        return response.status === 200 ? response.text() : null;
      })
      .then(function (html) {
        if (html) insertRows(list, parseRows(html));
      })
      .catch(function () { /* offline for a moment: the next poll tries again */ })
      .finally(function () {
        delete list.dataset.busy;
        list.removeAttribute("aria-busy");
      });
  }

  function load(list) {
    list.replaceChildren();
    list.removeAttribute("data-after");
    return request(list, rowsUrl(list, {}));
  }

  function poll() {
    if (document.hidden) return;
    document.querySelectorAll("ol[data-feed]").forEach(function (list) {
      var drawer = list.closest(".activity-drawer");
      if (drawer && drawer.hidden) return;
      var after = list.getAttribute("data-after");
      if (after === null) return; // a lazy list not opened yet
      request(list, rowsUrl(list, { after: after }));
    });
  }

  // The drawer ----------------------------------------------------------------------------------

  function parts() {
    return {
      toggle: document.getElementById("activity-toggle"),
      drawer: document.getElementById("activity-drawer"),
    };
  }

  function setOpen(open) {
    var p = parts();
    if (!p.drawer) return;
    p.drawer.hidden = !open;
    document.body.classList.toggle("activity-open", open);
    if (p.toggle) p.toggle.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) {
      var list = p.drawer.querySelector("ol[data-feed]");
      if (list && list.hasAttribute("data-lazy") && list.getAttribute("data-after") === null) {
        load(list);
      }
      p.drawer.focus();
    } else if (p.toggle) {
      p.toggle.focus();
    }
  }

  document.addEventListener("click", function (evt) {
    if (!evt.target.closest) return;
    if (evt.target.closest("#activity-toggle")) {
      var drawer = parts().drawer;
      setOpen(!!drawer && drawer.hidden);
    } else if (evt.target.closest("[data-drawer-close]")) {
      setOpen(false);
    }
  });

  // Capture phase: Esc inside the drawer closes the drawer only, not the board's task panel.
  document.addEventListener(
    "keydown",
    function (evt) {
      if (evt.key !== "Escape") return;
      var drawer = parts().drawer;
      if (!drawer || drawer.hidden) return;
      var inside = drawer.contains(evt.target) || evt.target === parts().toggle;
      var panel = document.getElementById("panel");
      if (inside || !(panel && panel.firstElementChild)) {
        evt.stopPropagation();
        setOpen(false);
      }
    },
    true
  );

  document.addEventListener("change", function (evt) {
    var form = evt.target.closest && evt.target.closest(".drawer-filters");
    if (!form) return;
    var list = parts().drawer.querySelector("ol[data-feed]");
    var params = new URLSearchParams(new FormData(form));
    ["pod", "kind"].forEach(function (key) { if (!params.get(key)) params.delete(key); });
    list.setAttribute("data-filters", params.toString());
    load(list);
  });

  document.addEventListener("submit", function (evt) {
    if (evt.target.closest && evt.target.closest(".drawer-filters")) evt.preventDefault();
  });

  function boot() {
    var p = parts();
    if (p.toggle) p.toggle.hidden = false;
    tick(document);
    setInterval(poll, POLL_MS);
    setInterval(function () { tick(document); }, TICK_MS);
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) poll();
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
