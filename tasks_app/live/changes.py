"""What changed, rendered once per process: the frames every open board is built from.

A *frame* is the process-wide rendering of a set of changed tasks; each board then wraps the
part it shows in htmx fragments (``fragments``). Rendering runs on the hub's render thread
(sync code, database access), never on the event loop.

``change`` frame
    ``seq``: the newest Event id it covers. ``at``: the commit time (``time.time()``) of its
    newest change, None when unknown (a replay on connect). ``stamp``: render order, so a
    board that merges frames keeps the newest rendering of a card. ``cards``: ``{id: card}``
    for tasks that exist, each card ``id``, ``pod``, ``status``, ``task_type``, ``title``,
    ``version``, ``lane`` (DOM id of its column), ``before`` (the card that follows it there,
    or None), ``html``, ``flash``, ``caption`` (why it flashes), ``stamp``. ``gone``: ids of
    tasks that no longer exist.
    ``counts``: ``{pod: html}`` unfiltered lane counts of the lanes touched; ``narrowed``:
    ``{narrowing key: {pod: html}}`` the same counts for boards whose filters narrow them.
``refresh`` frame
    ``seq``, ``at``, ``stamp``, ``reason`` (``import``, ``batch``, ``gap``, ``behind``) and
    ``count``: too much changed for card-by-card updates; boards reload their columns.
"""

import itertools

from django.db.models import Max
from django.template.loader import render_to_string
from django.utils import timezone

from ..models import Event, EventKind, Pod, Task
from .placement import next_in_column

# Above this many cards in one frame, boards refresh instead of swapping card by card.
REFRESH_OVER_CARDS = 100
# A board that missed more events than this refreshes instead of catching up card by card.
CATCH_UP_LIMIT = 500

# The payload keys that name another card a change touches (and lights up), and the handoff
# mode its caption names.
TOUCHING_KEYS = ("handoff_from", "continuation", "successors", "mode")

CARD_FIELDS = (
    "id",
    "pod_owner",
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
    "handoff_from",
)

# Frames are stamped in render order (one render thread per process).
_stamps = itertools.count(1)


def lane_id(pod, status):
    return f"lane-{pod}-{status}"


def narrowing_key(filters):
    """Return what makes ``filters`` count a lane differently from an unfiltered board, or
    None when its counts are the unfiltered ones (a pod filter only hides other lanes)."""
    if filters.task_type or filters.q:
        return (filters.task_type, filters.q)
    return None


def _get(event, name):
    return event.get(name) if isinstance(event, dict) else getattr(event, name, None)


def touched(events):
    """Return ``(ids, flash, pods)`` for ``events`` (Events or announcement dicts).

    ``ids``: the cards they changed, in order; a handoff or scale-out also touches the other
    task it names, and a deletion the successors whose blocked mark changed. ``flash``:
    ``{id: caption}`` for the cards a handoff, a scale-out or a stall lights up, the caption
    saying why ("baton from PROD-120", "scaled out → DEV-101.2", "stalled, back to Ready").
    ``pods``: lanes whose counts may have changed.
    """
    ids, captions, pods = {}, {}, set()

    def caption(task_id, text):
        if task_id and text not in captions.setdefault(task_id, []):
            captions[task_id].append(text)

    for event in events:
        kind = _get(event, "kind")
        key = _get(event, "task_key")
        payload = _get(event, "payload") or {}
        ids[key] = True
        pods.update(p for p in (_get(event, "from_pod"), _get(event, "to_pod")) if p)
        if kind == EventKind.HANDOFF:
            giver = payload.get("handoff_from")
            ids[giver] = True
            mode = f" · {payload['mode']}" if payload.get("mode") else ""
            caption(key, f"baton from {giver}{mode}")
            caption(giver, f"baton → {key}")
        elif kind == EventKind.SCALED_OUT:
            continuation = payload.get("continuation")
            ids[continuation] = True
            caption(key, f"scaled out → {continuation}")
            caption(continuation, f"continues {key}")
        elif kind == EventKind.LEASE_EXPIRED:
            caption(key, "stalled, back to Ready")
        elif kind == EventKind.DELETED:
            ids.update((s, True) for s in payload.get("successors") or ())
    flash = {i: "; ".join(texts) for i, texts in captions.items() if i}
    return [i for i in ids if i], flash, pods


def refresh_frame(seq, *, reason, count, at=None):
    return {
        "kind": "refresh",
        "seq": seq,
        "at": at,
        "stamp": next(_stamps),
        "reason": reason,
        "count": count,
    }


def render_frame(task_ids, *, seq, at=None, flash=(), pods=(), narrowing=()):
    """Render ``task_ids``'s cards, places and lane counts once; return a change frame.

    ``narrowing``: the filters of open boards whose counts differ from the unfiltered ones
    (``narrowing_key``); their counts are computed here too, once per distinct filter.
    """
    from .. import board

    stamp = next(_stamps)
    # The cards first, then their rows: when a task changes in between, its card says where
    # it is now (``lane``, ``version``) while showing the older content, and the next frame,
    # which that change's announcement brings, carries a newer version that boards apply.
    # (The other way round a board would keep content that no later frame corrects.)
    html = board.render_cards(task_ids)
    rows = {r["id"]: r for r in Task.objects.filter(pk__in=task_ids).values(*CARD_FIELDS)}
    cards = {}
    pods = set(pods)
    for task_id in task_ids:
        row = rows.get(task_id)
        if row is None or task_id not in html:
            continue
        pod, status = row["pod_owner__name"], row["status"]
        pods.add(pod)
        cards[task_id] = {
            "id": task_id,
            "pod": pod,
            "status": status,
            "task_type": row["task_type"],
            "title": row["title"],
            "version": row["version"],
            "lane": lane_id(pod, status),
            "before": next_in_column(row),
            "html": str(html[task_id]),
            "flash": task_id in flash,
            "caption": flash.get(task_id, "") if isinstance(flash, dict) else "",
            "stamp": stamp,
        }
    narrowed = {}
    for filters in narrowing:
        key = narrowing_key(filters)
        if key is not None and key not in narrowed:
            narrowed[key] = lane_counts(pods, filters)
    return {
        "kind": "change",
        "seq": seq,
        "at": at,
        "stamp": stamp,
        "cards": cards,
        "gone": [t for t in task_ids if t not in rows],
        "counts": lane_counts(pods),
        "narrowed": narrowed,
    }


def frame_for(task_ids, *, seq, at=None, flash=(), pods=(), narrowing=(), reason="batch"):
    """Return the change frame for ``task_ids``, or a refresh when there are too many."""
    if len(task_ids) > REFRESH_OVER_CARDS:
        return refresh_frame(seq, reason=reason, count=len(task_ids), at=at)
    return render_frame(task_ids, seq=seq, at=at, flash=flash, pods=pods, narrowing=narrowing)


def lane_counts(pod_names, filters=None):
    """Return ``{pod: html}``: each lane's out-of-band count spans and WIP badge, in two
    queries. ``filters`` (a ``board.Filters``) narrows the column counts, as the board does;
    the WIP badge counts all of a pod's active tasks."""
    from .. import board

    pods = list(Pod.objects.filter(name__in=[p for p in pod_names if p]))
    if not pods:
        return {}
    counts, active = board.counts_and_active(filters or board.NO_FILTERS, pods=pods)
    answer = {}
    for pod in pods:
        lane = board.lane_counts(pod, counts, active)
        answer[pod.name] = render_to_string("tasks_app/board.html#counts", {"counts": [lane]})
    return answer


# Catching up ---------------------------------------------------------------------------------


def catch_up_frame(since, *, narrowing=(), timed=False):
    """Return the frame that brings a board that saw events up to ``since`` up to date.

    None when nothing happened since; a refresh when too much did, or when an import did (an
    import may add pods, whose lanes a board cannot grow card by card). ``timed``: stamp the
    frame with its newest Event's time, so a late catch-up shows as lag (a replay on connect
    is not lag: the board was not open).
    """
    events = list(
        Event.objects.filter(id__gt=since)
        .order_by("id")
        .only("id", "kind", "task_key", "from_pod", "to_pod", "payload", "created_at")[
            : CATCH_UP_LIMIT + 1
        ]
    )
    if not events:
        return None
    seq = events[-1].id
    at = events[-1].created_at.timestamp() if timed else None
    if len(events) > CATCH_UP_LIMIT:
        return refresh_frame(latest_seq_now(), reason="gap", count=len(events), at=at)
    if any(e.kind == EventKind.IMPORTED for e in events):
        return refresh_frame(seq, reason="import", count=len(events), at=at)
    task_ids, _flash, pods = touched(events)
    return frame_for(task_ids, seq=seq, at=at, pods=pods, narrowing=narrowing, reason="gap")


def latest_seq_now():
    return Event.objects.aggregate(m=Max("id"))["m"] or 0


def recent_seq(seconds=15):
    """Return the sequence number just before the events of the last ``seconds``."""
    since = timezone.now() - timezone.timedelta(seconds=seconds)
    first = Event.objects.filter(created_at__gte=since).order_by("id").values_list("id", flat=True)
    first = first.first()
    return latest_seq_now() if first is None else first - 1
