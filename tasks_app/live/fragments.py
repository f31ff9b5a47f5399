"""What one board receives: htmx out-of-band fragments for the changes it has pending.

String work only (no query, no template): the cards were rendered once per process
(``changes``); each board keeps what its filters show. Every top-level element has an id and
``hx-swap-oob`` (htmx's rule for websocket pushes):

``#live-meta``
    ``data-seq``: the newest Event the board has now seen (it reconnects with ``?since=``);
    ``data-lag``: milliseconds from the commit of the newest change in this frame to its
    sending (absent on a replay); ``data-refresh``/``data-count`` when the board should
    reload its columns instead.
``#live-drop-task-…``
    removes a changed card from wherever it is (``data-version``; ``data-gone`` when the
    task no longer exists).
``#live-put-task-…``
    puts the card into its column (``data-lane``), in front of ``data-before`` when set;
    ``data-flash`` lights it up and ``data-caption`` says why (a handoff, a scale-out, a stall).
``#count-…``, ``#wip-…``
    the lane counts and WIP badges the change touched.
"""

from django.http import QueryDict

from ..models import Status
from .changes import narrowing_key


def board_filters(params):
    """Return the ``board.Filters`` of the board whose socket querystring is ``params``."""
    from .. import board

    if isinstance(params, str):
        params = QueryDict(params)
    return board.Filters.from_query(params)


def shows(filters, card):
    """Return True when a board with ``filters`` displays ``card`` (as ``Filters.apply``)."""
    if filters.pod and card["pod"] != filters.pod:
        return False
    if filters.task_type and card["task_type"] != filters.task_type:
        return False
    if filters.q:
        needle = filters.q.casefold()
        return needle in card["id"].casefold() or needle in card["title"].casefold()
    return True


def card_dom_id(task_id):
    return f"task-{task_id}"


def css_id(dom_id):
    """Escape a DOM id (letters, digits, ``.``, ``_``, ``-``) for a CSS ``#id`` selector."""
    return dom_id.replace(".", "\\.")


def _attr(value):
    return (
        str(value)
        .replace("&", "&amp;")
        .replace('"', "&quot;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
    )


def meta_fragment(seq, *, lag_ms=None, refresh="", count=0):
    extra = f' data-lag="{max(0, int(lag_ms))}"' if lag_ms is not None else ""
    if refresh:
        extra += f' data-refresh="{_attr(refresh)}" data-count="{int(count)}"'
    return f'<div id="live-meta" hx-swap-oob="true" hidden data-seq="{int(seq)}"{extra}></div>'


def card_fragments(card, filters):
    """Return the drop (and, when the board shows it, the put) fragments of one card."""
    dom_id = card_dom_id(card["id"])
    if card.get("gone"):
        return (
            f'<div id="live-drop-{dom_id}" hx-swap-oob="delete:#{css_id(dom_id)}" '
            f'data-card="{dom_id}" data-gone="1"></div>'
        )
    version = int(card["version"])
    drop = (
        f'<div id="live-drop-{dom_id}" hx-swap-oob="delete:#{css_id(dom_id)}" '
        f'data-card="{dom_id}" data-version="{version}"></div>'
    )
    if not shows(filters, card):
        return drop
    where = "afterbegin" if card["status"] == Status.DONE else "beforeend"
    before = card_dom_id(card["before"]) if card["before"] else ""
    flash = ' data-flash="1"' if card["flash"] else ""
    if card["flash"] and card.get("caption"):
        flash += f' data-caption="{_attr(card["caption"])}"'
    return (
        f'{drop}<div id="live-put-{dom_id}" hx-swap-oob="{where}:#{card["lane"]}" '
        f'data-card="{dom_id}" data-version="{version}" data-lane="{card["lane"]}" '
        f'data-before="{_attr(before)}"{flash}>{card["html"]}</div>'
    )


def frame_text(*, seq, filters, lag_ms=None, refresh=None, cards=(), counts=None):
    """Return the message for a board with ``filters``.

    ``refresh``: ``(reason, count)`` when the board should reload its columns (then nothing
    else is sent). ``cards``: card dicts (or ``{"id", "gone": True}``), newest state each.
    ``counts``: ``{pod: html}`` for the board's counting (already narrowed when it must be).
    """
    if refresh:
        return meta_fragment(seq, lag_ms=lag_ms, refresh=refresh[0], count=refresh[1])
    return meta_fragment(seq, lag_ms=lag_ms) + body_text(filters, cards, counts)


def body_text(filters, cards, counts):
    """Return the card and count fragments of a message (everything but ``#live-meta``)."""
    parts = [card_fragments(card, filters) for card in cards]
    for pod, html in sorted((counts or {}).items()):
        if not filters.pod or pod == filters.pod:
            parts.append(html.strip())
    return "".join(parts)


def counts_key(filters):
    """Return the key of a frame's ``narrowed`` counts this board uses, None for its
    unfiltered ``counts``."""
    return narrowing_key(filters)
