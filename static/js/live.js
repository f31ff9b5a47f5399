/* PodBoard live board: the client side of tasks_app/consumers.py.
 *
 * The htmx ws extension owns the socket (#live, ws-connect) and swaps the out-of-band
 * fragments the server pushes. This file is the "podboard-live" htmx extension that sits
 * between the two (transformResponse) and:
 *   - remembers the last sequence number and asks for what it missed on every (re)connect
 *     (?since=N), with the board's current filters;
 *   - ignores a pushed card whose data-version is not newer than the card on the page (the
 *     echo of the user's own drag, a replay), but still flashes it when a handoff touched it;
 *   - puts a card in front of its successor in its column (data-before) or swaps it in place;
 *     a card whose successor is beyond what a full column shows stays off the page (the
 *     column's "Show N more" counts it: static/js/board-layout.js);
 *   - captions a flashing card with why it changed (data-caption: "baton from PROD-120");
 *   - says which cards changed ("podboard:card-changed", for the side panel) and when a
 *     frame is applied ("podboard:live-applied");
 *   - holds pushes for the card being dragged (body[data-dragging]) until the drop settles;
 *   - reloads the columns when the server asks for a refresh (an import, a long gap, a
 *     board that fell too far behind);
 *   - shows the connection state in #live-status, and "behind by N s" in #live-lag when a
 *     frame says its newest change is more than LAG_NOTE_MS old (data-lag on #live-meta).
 */
(function () {
  'use strict'
  if (window.podboardLive || !window.htmx) return

  var CAPTION_MS = 6000 // the ring fades in 2.4 s (CSS); the caption stays a little longer
  var LAG_NOTE_MS = 2000 // the server logs a warning past the same lag (tasks_app/live/lag.py)
  var SETTLE_MAX_MS = 3000
  var lastSeq = null
  var wrapper = null // the ws extension's socket wrapper (reconnect, send)
  var currentSocket = null
  var held = [] // [{card: dom id, html: string}] pushes waiting for a drag to end
  var heldRefresh = null
  var refreshing = false
  var queuedWhileRefreshing = []
  var inFlight = 0
  var failures = 0
  var leaving = false

  function byId (id) { return id ? document.getElementById(id) : null }
  function liveRoot () { return byId('live') }

  function seqFromPage () {
    if (lastSeq !== null) return lastSeq
    var meta = byId('live-meta')
    var value = meta && meta.getAttribute('data-seq')
    return value ? parseInt(value, 10) : null
  }

  function noteSeq (seq) {
    if (!isNaN(seq) && (lastSeq === null || seq > lastSeq)) lastSeq = seq
  }

  function currentFilters () {
    var body = byId('board-body')
    if (body && body.hasAttribute('data-filters')) return body.getAttribute('data-filters')
    var root = liveRoot()
    return (root && root.getAttribute('data-filters')) || ''
  }

  function socketUrl () {
    var root = liveRoot()
    var path = (root && root.getAttribute('data-ws-path')) || '/ws/board/'
    var params = new URLSearchParams(currentFilters())
    var seq = seqFromPage()
    if (seq !== null) params.set('since', String(seq))
    var scheme = location.protocol === 'https:' ? 'wss://' : 'ws://'
    var query = params.toString()
    return scheme + location.host + path + (query ? '?' + query : '')
  }

  // Every (re)connect goes through here: the ws extension keeps the URL it first read, so
  // the filters and the last sequence number are added now.
  htmx.createWebSocket = function () {
    var socket = new WebSocket(socketUrl(), [])
    socket.binaryType = htmx.config.wsBinaryType || 'blob'
    currentSocket = socket
    return socket
  }

  // Connection indicator ---------------------------------------------------------------------

  var LABELS = { connecting: 'Connecting…', connected: 'Live', reconnecting: 'Reconnecting…', offline: 'Offline' }

  function setState (state) {
    var el = byId('live-status')
    if (!el) return
    el.setAttribute('data-state', state)
    var label = el.querySelector('.live-label') || el
    label.textContent = LABELS[state]
    el.title = state === 'connected' ? 'Live updates on' : 'Live updates ' + state
    document.documentElement.setAttribute('data-live', state)
  }

  // Lag note ---------------------------------------------------------------------------------

  function lagNote () {
    var note = byId('live-lag')
    if (note) return note
    var status = byId('live-status')
    if (!status) return null
    note = document.createElement('p')
    note.id = 'live-lag'
    note.className = 'live-lag'
    note.setAttribute('role', 'status')
    note.hidden = true
    status.insertAdjacentElement('afterend', note)
    return note
  }

  /* Every frame says how old its newest change is (ms): show the note past LAG_NOTE_MS, hide
   * it on the next frame that is on time (the server sends one once it has caught up). */
  function noteLag (value) {
    if (value === null || value === '') return
    var ms = parseInt(value, 10)
    var note = lagNote()
    if (!note || isNaN(ms)) return
    if (ms > LAG_NOTE_MS) {
      var seconds = Math.round(ms / 1000)
      note.textContent = 'behind by ' + seconds + ' s'
      note.title = 'The server is busy: this board shows changes about ' + seconds + ' s late'
      note.hidden = false
    } else {
      note.hidden = true
    }
    note.setAttribute('data-lag', String(ms))
  }

  document.addEventListener('htmx:wsConnecting', function () {
    setState(failures > 0 || lastSeq !== null ? 'reconnecting' : 'connecting')
  })
  document.addEventListener('htmx:wsOpen', function (evt) {
    wrapper = evt.detail.socketWrapper
    failures = 0
    setState('connected')
  })
  document.addEventListener('htmx:wsClose', function (evt) {
    var event = evt.detail.event
    if (leaving || (event && event.target !== currentSocket)) return
    failures += 1
    var code = event ? event.code : 0
    var socketWrapper = evt.detail.socketWrapper
    setState(navigator.onLine === false || failures > 5 ? 'offline' : 'reconnecting')
    // The extension retries 1006/1011/1012/1013 itself; a clean close by the server (a
    // restart, a deploy) should come back too.
    if ([1006, 1011, 1012, 1013].indexOf(code) < 0 && socketWrapper) {
      setTimeout(function () { if (!leaving) socketWrapper.reconnect() },
        Math.min(30000, 500 * Math.pow(2, Math.min(failures, 6)) * Math.random() + 250))
    }
  })
  window.addEventListener('offline', function () { setState('offline') })
  window.addEventListener('online', function () {
    if (wrapper && (!currentSocket || currentSocket.readyState > 1)) wrapper.reconnect()
  })
  window.addEventListener('pagehide', function () { leaving = true })

  // The board's filters changed (the filter form swaps #board-body): listen with them.
  var socketFilters = null
  document.addEventListener('htmx:afterSettle', function (evt) {
    var target = evt.detail && evt.detail.target
    if (!target || target.id !== 'board-body') return
    var filters = currentFilters()
    if (socketFilters === null) socketFilters = filters
    if (filters !== socketFilters && wrapper) {
      socketFilters = filters
      wrapper.reconnect()
    }
  })
  document.addEventListener('htmx:wsOpen', function () { socketFilters = currentFilters() })

  // Drags and requests in flight -------------------------------------------------------------

  function draggingId () {
    var value = document.body.getAttribute('data-dragging') ||
      (window.podboard && window.podboard.draggingTaskId) || ''
    if (!value) return ''
    return value.indexOf('task-') === 0 ? value : 'task-' + value
  }

  document.addEventListener('htmx:beforeRequest', function () { inFlight += 1 })
  document.addEventListener('htmx:afterRequest', function () {
    inFlight = Math.max(0, inFlight - 1)
    if (inFlight === 0) releaseSoon()
  })

  var releaseTimer = null
  var dragEndedAt = 0

  function releaseSoon () {
    if (releaseTimer || (!held.length && !heldRefresh)) return
    releaseTimer = setTimeout(function () {
      releaseTimer = null
      if (draggingId()) return
      // Let the drop's own request answer first, so its echo compares against it.
      if (inFlight > 0 && Date.now() - dragEndedAt < SETTLE_MAX_MS) { releaseSoon(); return }
      var pushes = held
      held = []
      if (pushes.length) apply(pushes.map(function (p) { return p.html }).join(''))
      if (heldRefresh) { var r = heldRefresh; heldRefresh = null; refresh(r) }
    }, 60)
  }

  new MutationObserver(function () {
    if (!draggingId()) { dragEndedAt = Date.now(); releaseSoon() }
  }).observe(document.body, { attributes: true, attributeFilter: ['data-dragging'] })

  // Preparing a push -------------------------------------------------------------------------

  var toFlash = [] // [{id, caption}]
  var changed = [] // [{id, version, gone}]

  function version (el) {
    var v = el && el.getAttribute('data-version')
    return v ? parseInt(v, 10) : 0
  }

  function nextCard (el) {
    var next = el.nextElementSibling
    while (next && !next.classList.contains('card')) next = next.nextElementSibling
    return next
  }

  /* Return the html to swap for a pushed message: what is still worth applying, rewritten
   * for this page. Held pieces are kept aside. */
  function prepare (text) {
    var template = document.createElement('template')
    template.innerHTML = text
    var nodes = Array.prototype.slice.call(template.content.children)
    var drops = {}
    var puts = {}
    var out = []
    var dragged = draggingId()
    nodes.forEach(function (node) {
      var card = node.getAttribute('data-card')
      if (node.id === 'live-meta') {
        noteSeq(parseInt(node.getAttribute('data-seq'), 10))
        noteLag(node.getAttribute('data-lag'))
        var reason = node.getAttribute('data-refresh')
        if (reason) {
          if (dragged) heldRefresh = reason
          else refresh(reason)
        }
        out.push(node)
      } else if (card && node.id.indexOf('live-drop-') === 0) {
        drops[card] = node
      } else if (card && node.id.indexOf('live-put-') === 0) {
        puts[card] = node
      } else if (node.id && byId(node.id)) {
        out.push(node) // counts, WIP badges: only those this board has
      }
    })
    var emitted = {} // card dom id -> the lane it was put in by this frame
    inFrameOrder(Object.keys(drops), puts).forEach(function (card) {
      var drop = drops[card]
      var put = puts[card]
      var existing = byId(card)
      if (dragged && dragged === card) {
        held.push({ card: card, html: drop.outerHTML + (put ? put.outerHTML : '') })
        return
      }
      var gone = drop.hasAttribute('data-gone')
      changed.push({ id: card.slice('task-'.length), version: version(drop), gone: gone })
      if (existing && !gone && version(drop) <= version(existing)) {
        // Already showing this version (the user's own move, a replay): nothing to swap.
        if (put && put.hasAttribute('data-flash')) toFlash.push(flashOf(card, put))
        return
      }
      if (!put) {
        if (existing) out.push(drop)
        return
      }
      var lane = byId(put.getAttribute('data-lane'))
      if (!lane) {
        if (existing) out.push(drop)
        return
      }
      var fresh = put.firstElementChild
      var beforeId = put.getAttribute('data-before')
      var before = byId(beforeId)
      // Its successor came in this same frame and was put in this column just before.
      var beforeInFrame = !!beforeId && emitted[beforeId] === lane.id
      if (before && before.parentNode !== lane && !beforeInFrame) before = null
      if (!before && !beforeInFrame && beforeId && columnIsCut(lane, existing)) {
        // It belongs after cards this column does not show: leave it to "Show more".
        if (existing) out.push(drop)
        return
      }
      if (existing && existing.parentNode === lane && !beforeInFrame && (!before || nextCard(existing) === before)) {
        // Same column, same place: swap the card in place.
        fresh.setAttribute('hx-swap-oob', 'true')
        out.push(fresh)
      } else {
        if (existing) out.push(drop)
        if (before || beforeInFrame) put.setAttribute('hx-swap-oob', 'beforebegin:#' + CSS.escape(beforeId))
        out.push(put)
      }
      emitted[card] = lane.id
      if (put.hasAttribute('data-flash')) toFlash.push(flashOf(card, put))
    })
    return out.map(function (node) { return node.outerHTML }).join('')
  }

  /* Return the frame's cards in an order where a card whose successor (data-before) is also
   * in the frame comes after it, so it can be put in front of it. */
  function inFrameOrder (keys, puts) {
    var inFrame = {}
    keys.forEach(function (k) { inFrame[k] = true })
    var placed = {}
    var order = []
    var rest = keys.slice()
    while (rest.length) {
      var ready = rest.filter(function (k) {
        var b = puts[k] && puts[k].getAttribute('data-before')
        return !b || b === k || !inFrame[b] || placed[b]
      })
      if (!ready.length) ready = rest.slice() // a cycle cannot happen; keep the frame's order
      ready.forEach(function (k) { placed[k] = true; order.push(k) })
      rest = rest.filter(function (k) { return !placed[k] })
    }
    return order
  }

  /* Does `lane` (a column's card list) show fewer cards than its count? */
  function columnIsCut (lane, existing) {
    var holder = byId('more-' + lane.id.slice('lane-'.length))
    if (holder && holder.querySelector('.more-button')) return true
    var page = parseInt(lane.getAttribute('data-page'), 10)
    var shown = lane.querySelectorAll(':scope > .card').length - (existing && existing.parentNode === lane ? 1 : 0)
    return !!page && shown >= page
  }

  function flashOf (card, put) {
    return { id: card, caption: put.getAttribute('data-caption') || '' }
  }

  /* Light up the cards a handoff, a scale-out or a stall touched, each with a caption that
   * says what happened (read by screen readers as part of the card, not announced). */
  function flash () {
    var items = toFlash
    toFlash = []
    items.forEach(function (item) {
      var el = byId(item.id)
      if (!el) return
      el.classList.remove('live-flash')
      void el.offsetWidth // restart the animation
      el.classList.add('live-flash')
      var old = el.querySelector(':scope > .flash-caption')
      if (old) old.remove()
      if (item.caption) {
        var caption = document.createElement('p')
        caption.className = 'flash-caption'
        caption.textContent = item.caption
        el.insertBefore(caption, el.firstChild)
      }
      setTimeout(function () {
        el.classList.remove('live-flash')
        var shown = el.querySelector(':scope > .flash-caption')
        if (shown) shown.remove()
      }, CAPTION_MS)
    })
    var cards = changed
    changed = []
    cards.forEach(function (detail) {
      document.dispatchEvent(new CustomEvent('podboard:card-changed', { detail: detail }))
    })
    document.dispatchEvent(new CustomEvent('podboard:live-applied'))
  }

  function apply (text) {
    var html = prepare(text)
    if (html) htmx.swap(liveRoot() || document.body, html, { swapStyle: 'none' })
    flash()
  }

  function refresh (reason) {
    var body = byId('board-body')
    if (!body) { location.reload(); return }
    if (refreshing) return
    refreshing = true
    htmx.ajax('GET', location.pathname + location.search, { target: '#board-body', swap: 'outerHTML' })
      .catch(function () {})
      .then(function () {
        refreshing = false
        var queued = queuedWhileRefreshing
        queuedWhileRefreshing = []
        queued.forEach(apply)
        document.dispatchEvent(new CustomEvent('podboard:live-refreshed', { detail: { reason: reason } }))
      })
  }

  htmx.defineExtension('podboard-live', {
    transformResponse: function (text, xhr, elt) {
      if (xhr !== null || !elt || elt.id !== 'live') return text
      if (refreshing) {
        // The columns are being reloaded: apply after, against the new page.
        var template = document.createElement('template')
        template.innerHTML = text
        var meta = template.content.getElementById('live-meta')
        if (meta && !meta.getAttribute('data-refresh')) {
          queuedWhileRefreshing.push(text)
          return ''
        }
      }
      return prepare(text)
    }
  })
  document.addEventListener('htmx:wsAfterMessage', flash)

  window.podboardLive = {
    lastSeq: function () { return lastSeq === null ? seqFromPage() : lastSeq },
    reconnect: function () { if (wrapper) wrapper.reconnect() },
    apply: apply
  }
})()
