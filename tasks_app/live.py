"""Board announcements: turn committed Events into one message for every open board.

``workflow.announce`` calls ``publish(events)`` after each commit. ``publish`` sends a light
``board.events`` message (event ids, kinds and task ids; no query, no rendering) to the board
group, so the request that made the change pays almost nothing. In each server process one
render loop (``LocalBoards``) renders the changed cards once for every board of that process,
coalescing announcements that arrive while it renders; each consumer keeps what its board's
filters show and wraps it in htmx out-of-band fragments (``fragments_for``: string work, no
rendering per board).

On the channel layer travel ``board.events`` and ``board.refresh``; consumers turn
``board.events`` into ``board.change`` (also what a catch-up builds):

``board.change``
    ``seq`` and ``first``: the highest and lowest Event id announced.
    ``cards``: one dict per changed card: ``id``, ``pod``, ``status``, ``task_type``,
    ``title``, ``version`` (what a board filters and compares on), ``lane`` (the DOM id of its
    column), ``before`` (the card that follows it in that column, or None), ``html`` (the
    board's own card markup) and ``flash`` (a handoff or scale-out touched it).
    ``gone``: ids of tasks that no longer exist.
    ``counts``: ``{pod: html}``, the out-of-band count spans and WIP badge of every lane the
    change touched, unfiltered (a board whose filters narrow counts re-counts once per process).
``board.refresh``
    ``seq``, ``reason`` (``import``, ``batch``, ``gap``) and ``count``: too much changed for
    card-by-card updates, so boards reload their columns.
"""

import asyncio
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

from asgiref.sync import async_to_sync, sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections
from django.db.models import Count, Max, Q
from django.template.loader import render_to_string
from django.utils import timezone

from .models import Event, EventKind, Pod, Status, Task

log = logging.getLogger(__name__)

BOARD_GROUP = "board"
# Above this many cards in one change, boards refresh instead of swapping card by card.
REFRESH_OVER_CARDS = 100
# A board that missed more events than this refreshes instead of catching up card by card.
CATCH_UP_LIMIT = 500

# Each column's order on the board (board.COLUMN_ORDER), as keys for finding a card's
# successor; a ``None`` in a key field means "unknown place": the board appends the card.
LANE_ORDER = {
    Status.READY: ("-priority", "position", "created_at", "id"),
    Status.ACTIVE: ("-priority", "position", "started_at", "id"),
    Status.DONE: ("-completed_at", "-id"),
}

_pending_sends = set()  # keeps fire-and-forget sends alive until they finish
# What this thread announced last: one rule's commit can announce several batches (handoffs,
# then the completion); a card already sent at the same version is not rendered twice.
_recent = threading.local()
RECENT_SECONDS = 2.0


def lane_id(pod, status):
    return f"lane-{pod}-{status}"


def card_dom_id(task_id):
    return f"task-{task_id}"


def poll_seconds():
    """Return how often an open board checks for events it was not told about."""
    return float(getattr(settings, "PODBOARD_LIVE_POLL_SECONDS", 5))


# Publishing ----------------------------------------------------------------------------------


def publish(events):
    """Send one light message about ``events`` (already committed) to every open board.

    No query and no rendering here: this runs on the request that made the change, so the
    pod API stays fast. Each server process that has boards open renders the change once
    (``LocalBoards``). Never raises: the change is committed whatever happens to its
    announcement.
    """
    try:
        message = announcement_for(events)
        if message is not None:
            send(message)
    except Exception:  # a board update must never undo or fail a committed change
        log.exception("could not announce %d event(s)", len(events))


ANNOUNCED_PAYLOAD = ("handoff_from", "continuation")


def _announced(events):
    """Return ``(events, seq, refresh)``: the saved events, the newest id, and the refresh
    message when one of them is an import marker (None otherwise)."""
    events = [e for e in events if e is not None and e.id is not None]
    if not events:
        return [], None, None
    seq = max(e.id for e in events)
    for event in events:
        if event.kind == EventKind.IMPORTED and "count" in (event.payload or {}):
            return events, seq, refresh_message(seq, reason="import", count=event.payload["count"])
    return events, seq, None


def announcement_for(events):
    """Return the ``board.events`` (or ``board.refresh``) message for ``events``, or None."""
    events, seq, refresh = _announced(events)
    if not events or refresh:
        return refresh
    return {
        "type": "board.events",
        # Every board of a process receives its own copy; this tells copies from new news.
        "nonce": uuid.uuid4().hex,
        "seq": seq,
        "first": min(e.id for e in events),
        "events": [
            {
                "id": e.id,
                "kind": e.kind,
                "task_key": e.task_key,
                "from_pod": e.from_pod,
                "payload": {k: v for k, v in (e.payload or {}).items() if k in ANNOUNCED_PAYLOAD},
            }
            for e in events
        ],
    }


class LocalBoards:
    """The open boards of one server process (one event loop) and the render loop they share.

    Every consumer receives each ``board.events`` announcement from the channel layer; the
    first copy is queued, the others are recognised and dropped. One render loop turns what
    is queued into a ``board.change`` and hands it to every local board. Announcements that
    arrive while a render runs are coalesced into the next one, so a burst of changes costs
    one render of the cards it touched, not one per change: the work stays bounded under load
    instead of queueing up behind itself.
    """

    SEEN_KEEP = 1024

    def __init__(self):
        self.boards = set()
        self.pending = []
        self.seen = {}
        self.worker = None

    def submit(self, announcement):
        key = announcement["nonce"]
        if key in self.seen:
            return
        self.seen[key] = True
        while len(self.seen) > self.SEEN_KEEP:
            self.seen.pop(next(iter(self.seen)))
        self.pending.extend(announcement["events"])
        if self.worker is None or self.worker.done():
            self.worker = asyncio.ensure_future(self.run())

    async def run(self):
        while self.pending:
            events, self.pending = self.pending, []
            try:
                change = await render_change([SimpleNamespace(**e) for e in events])
            except Exception:
                log.exception("could not render a board change")
                continue
            if change is None:
                continue
            for board in list(self.boards):
                try:
                    await board.forward(change)
                except Exception:  # one closed socket must not starve the others
                    log.debug("could not forward a change to a board", exc_info=True)


_local = {}  # id(event loop) -> LocalBoards


def local_boards():
    """Return this event loop's ``LocalBoards``."""
    loop = asyncio.get_running_loop()
    boards = _local.get(id(loop))
    if boards is None or boards.loop is not loop:
        boards = _local[id(loop)] = LocalBoards()
        boards.loop = loop
    return boards


# One thread renders, apart from the thread Django runs sync views in, so board pushes never
# wait behind API requests (and requests never wait behind renders).
_render_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="podboard-render")


def _render_in_thread(events):
    close_old_connections()
    try:
        return message_for(events)
    finally:
        close_old_connections()


async def render_change(events):
    """Return the ``board.change`` for ``events``, rendered on the render thread."""
    return await sync_to_async(_render_in_thread, thread_sensitive=False, executor=_render_thread)(
        events
    )


def send(message):
    """Send ``message`` to the board group, from sync code or from an event loop's thread."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is None:
        # A sync thread (a request under ASGI, a command): runs on the outer loop if any.
        async_to_sync(layer.group_send)(BOARD_GROUP, message)
        return
    # On the loop's own thread async_to_sync refuses: schedule the send instead.
    task = loop.create_task(layer.group_send(BOARD_GROUP, message))
    _pending_sends.add(task)
    task.add_done_callback(_sent)


def _sent(task):
    _pending_sends.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("could not announce to boards", exc_info=task.exception())


def message_for(events):
    """Return the ``board.change`` (or ``board.refresh``) for ``events``, or None."""
    events, seq, refresh = _announced(events)
    if not events or refresh:
        return refresh
    task_ids, flash = touched_tasks(events)
    if len(task_ids) > REFRESH_OVER_CARDS:
        return refresh_message(seq, reason="batch", count=len(task_ids))
    return change_message(
        seq,
        task_ids,
        flash=flash,
        first=min(e.id for e in events),
        pods={e.from_pod for e in events if e.from_pod},
        once=True,
    )


def refresh_message(seq, *, reason, count):
    return {"type": "board.refresh", "seq": seq, "reason": reason, "count": count}


def touched_tasks(events):
    """Return ``(ids, flash)``: the cards ``events`` changed, and those a handoff lights up."""
    ids, flash = {}, set()
    for event in events:
        payload = event.payload or {}
        ids[event.task_key] = True
        if event.kind == EventKind.HANDOFF:
            ids[payload.get("handoff_from")] = True
            flash.update([event.task_key, payload.get("handoff_from")])
        elif event.kind == EventKind.SCALED_OUT:
            ids[payload.get("continuation")] = True
            flash.update([event.task_key, payload.get("continuation")])
    return [i for i in ids if i], {i for i in flash if i}


CARD_FIELDS = (
    "id",
    "pod_owner__name",
    "status",
    "task_type",
    "title",
    "version",
    "priority",
    "position",
    "created_at",
    "started_at",
    "completed_at",
    "updated_at",
)


def change_message(seq, task_ids, *, flash=(), first=None, pods=(), once=False):
    """Render ``task_ids``'s cards and counts once; return the ``board.change`` message.

    ``once``: leave out cards this thread announced at the same version moments ago.
    """
    from . import board

    rows = {r["id"]: r for r in Task.objects.filter(pk__in=task_ids).values(*CARD_FIELDS)}
    sent = _recently_sent() if once else {}
    fresh = [
        t for t, r in rows.items() if sent.get(t) != (r["version"], r["updated_at"]) or t in flash
    ]
    html = board.render_cards(fresh) if fresh else {}
    sent.update((t, (rows[t]["version"], rows[t]["updated_at"])) for t in fresh)
    cards = []
    pods = set(pods) if fresh else set()
    for task_id in task_ids:
        row = rows.get(task_id)
        if row is None or task_id not in html:
            continue
        pod, status = row["pod_owner__name"], row["status"]
        pods.add(pod)
        cards.append(
            {
                "id": task_id,
                "pod": pod,
                "status": status,
                "task_type": row["task_type"],
                "title": row["title"],
                "version": row["version"],
                "lane": lane_id(pod, status),
                "before": next_in_lane(row),
                "html": str(html.get(task_id, "")),
                "flash": task_id in flash,
            }
        )
    return {
        "type": "board.change",
        "seq": seq,
        "first": first if first is not None else seq,
        "cards": cards,
        "gone": [t for t in task_ids if t not in rows],
        "counts": lane_counts(pods),
    }


def _recently_sent():
    now = time.monotonic()
    if getattr(_recent, "at", float("-inf")) < now - RECENT_SECONDS:
        _recent.versions = {}
    _recent.at = now
    return _recent.versions


def next_in_lane(row):
    """Return the id of the card that follows ``row`` in its column, or None when unknown."""
    order = LANE_ORDER.get(row["status"])
    after, equal = Q(), Q()
    for key in order:
        name = key.lstrip("-")
        value = row[name]
        if value is None:
            return None
        after |= equal & Q(**{f"{name}__lt" if key.startswith("-") else f"{name}__gt": value})
        equal &= Q(**{name: value})
    return (
        Task.objects.filter(pod_owner__name=row["pod_owner__name"], status=row["status"])
        .filter(after)
        .order_by(*order)
        .values_list("id", flat=True)
        .first()
    )


def lane_counts(pod_names, filters=None):
    """Return ``{pod: html}``: each lane's out-of-band count spans and WIP badge, in two
    queries. ``filters`` (a ``board.Filters``) narrows what is counted, as the board does."""
    from . import board

    pods = list(Pod.objects.filter(name__in=[p for p in pod_names if p]))
    if not pods:
        return {}
    tasks = Task.objects.filter(pod_owner__in=pods)
    if filters is not None:
        tasks = filters.apply(tasks)
    counts = dict(
        ((pod_id, status), n)
        for pod_id, status, n in tasks.order_by()
        .values_list("pod_owner_id", "status")
        .annotate(n=Count("pk"))
    )
    answer = {}
    for pod in pods:
        active = counts.get((pod.pk, Status.ACTIVE), 0)
        lane = {
            "pod": pod,
            "active": active,
            "over_wip": pod.wip_limit is not None and active > pod.wip_limit,
            "at_wip": pod.wip_limit is not None and active >= pod.wip_limit,
            "columns": [(status, counts.get((pod.pk, status), 0)) for status, _ in board.COLUMNS],
        }
        answer[pod.name] = render_to_string("tasks_app/board.html#counts", {"counts": [lane]})
    return answer


# Catching up ---------------------------------------------------------------------------------


def catch_up_message(since):
    """Return the message that brings a board that saw events up to ``since`` up to date.

    None when nothing happened since; a refresh when too much did.
    """
    events = list(
        Event.objects.filter(id__gt=since)
        .order_by("id")
        .only("id", "kind", "task_key", "from_pod", "payload")[: CATCH_UP_LIMIT + 1]
    )
    if not events:
        return None
    seq = events[-1].id
    if len(events) > CATCH_UP_LIMIT:
        return refresh_message(latest_seq_now(), reason="gap", count=len(events))
    if any(e.kind == EventKind.IMPORTED for e in events):
        return refresh_message(seq, reason="import", count=len(events))
    task_ids, _flash = touched_tasks(events)
    if len(task_ids) > REFRESH_OVER_CARDS:
        return refresh_message(seq, reason="gap", count=len(task_ids))
    return change_message(
        seq, task_ids, first=events[0].id, pods={e.from_pod for e in events if e.from_pod}
    )


def latest_seq_now():
    return Event.objects.aggregate(m=Max("id"))["m"] or 0


def recent_seq(seconds=15):
    """Return the sequence number just before the events of the last ``seconds``."""
    since = timezone.now() - timezone.timedelta(seconds=seconds)
    first = Event.objects.filter(created_at__gte=since).order_by("id").values_list("id", flat=True)
    first = first.first()
    return latest_seq_now() if first is None else first - 1


_latest = {"at": float("-inf"), "seq": 0}


async def latest_seq():
    """Return the newest Event id, asking the database at most twice a poll per process."""
    now = time.monotonic()
    if now - _latest["at"] >= min(1.0, poll_seconds() / 2):
        _latest["seq"] = await database_sync_to_async(latest_seq_now)()
        _latest["at"] = now
    return _latest["seq"]


# What one board receives ---------------------------------------------------------------------


def board_filters(params):
    """Return the ``board.Filters`` of the board whose socket querystring is ``params``."""
    from . import board

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


def meta_fragment(seq, *, refresh="", count=0):
    extra = f' data-refresh="{_attr(refresh)}" data-count="{int(count)}"' if refresh else ""
    return f'<div id="live-meta" hx-swap-oob="true" hidden data-seq="{int(seq)}"{extra}></div>'


def fragments_for(message, filters, counts=None):
    """Return the htmx out-of-band HTML a board with ``filters`` receives for ``message``.

    Every top-level element has an id and ``hx-swap-oob``: ``live-meta`` carries the
    sequence number (and a refresh request); a changed card is dropped from wherever it is
    (``live-drop-…``) and, if the board shows it, put into its column (``live-put-…``, with
    ``data-before`` naming the card it goes in front of); counts and WIP badges replace
    theirs. ``counts`` replaces the message's counts (for a board whose filters narrow them).
    """
    if message["type"] == "board.refresh":
        return meta_fragment(message["seq"], refresh=message["reason"], count=message["count"])
    parts = [meta_fragment(message["seq"])]
    for card in message["cards"]:
        dom_id, version = card_dom_id(card["id"]), int(card["version"])
        parts.append(
            f'<div id="live-drop-{dom_id}" hx-swap-oob="delete:#{css_id(dom_id)}" '
            f'data-card="{dom_id}" data-version="{version}"></div>'
        )
        if not shows(filters, card):
            continue
        where = "afterbegin" if card["status"] == Status.DONE else "beforeend"
        before = card_dom_id(card["before"]) if card["before"] else ""
        flash = ' data-flash="1"' if card["flash"] else ""
        parts.append(
            f'<div id="live-put-{dom_id}" hx-swap-oob="{where}:#{card["lane"]}" '
            f'data-card="{dom_id}" data-version="{version}" data-lane="{card["lane"]}" '
            f'data-before="{_attr(before)}"{flash}>{card["html"]}</div>'
        )
    for task_id in message["gone"]:
        dom_id = card_dom_id(task_id)
        parts.append(
            f'<div id="live-drop-{dom_id}" hx-swap-oob="delete:#{css_id(dom_id)}" '
            f'data-card="{dom_id}" data-gone="1"></div>'
        )
    for pod, html in sorted((message["counts"] if counts is None else counts).items()):
        if not filters.pod or pod == filters.pod:
            parts.append(html.strip())
    return "".join(parts)


_filtered_counts = {}


async def counts_for(message, filters):
    """Return the counts a board with ``filters`` shows for ``message``, or None for the
    message's own; computed once per process for each distinct narrowing filter."""
    if message["type"] != "board.change" or not message["counts"]:
        return None
    if not (filters.task_type or filters.q):
        return None
    key = (message["seq"], message["first"], filters.task_type, filters.q)
    if key not in _filtered_counts:
        if len(_filtered_counts) > 256:
            _filtered_counts.clear()
        _filtered_counts[key] = asyncio.ensure_future(
            database_sync_to_async(lane_counts)(list(message["counts"]), filters)
        )
    return await _filtered_counts[key]
