"""The board-wide activity feed: the latest Events, newest first, each with a short caption.

The page (``/activity/``) and the board's drawer render the same rows from ``feed_page``; the
caption of every row comes from ``caption`` alone, so both say the same thing. Rows are read
by the Event id (the board's sequence number): a page is "the ``limit`` newest Events before
id N", and the live poll asks for "the Events after id N", both walks of the primary key.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from ..models import Event, EventKind, Pod

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
# A poll that finds more new Events than this shows the newest ones and a note to reload.
MAX_NEWER = 100
SETTLE_SECONDS, SETTLE_IDS = 10, 50

STATUS_LABELS = {"ready": "Ready", "active": "Active", "review": "Review", "done": "Done"}
KIND_LABELS = {
    EventKind.CREATED: "created",
    EventKind.IMPORTED: "imported",
    EventKind.CLAIMED: "claimed",
    EventKind.ACTIVATED: "activated",
    EventKind.HANDOFF: "baton",
    EventKind.COMPLETED: "completed",
    EventKind.SCALED_OUT: "scaled out",
    EventKind.LEASE_EXPIRED: "stalled",
    EventKind.MOVED: "moved",
    EventKind.EDITED: "edited",
    EventKind.TRACED: "traced",
    EventKind.DELETED: "deleted",
    EventKind.SUBMITTED: "submitted",
    EventKind.REVIEWED: "reviewed",
    EventKind.SENT_BACK: "sent back",
    EventKind.ASKED: "asked",
    EventKind.ANSWERED: "answered",
    EventKind.COMMENTED: "commented",
    EventKind.PAUSED: "paused",
    EventKind.RESUMED: "resumed",
}
QUOTE_CHARS = 60

__all__ = ["Filters", "FeedRow", "caption", "feed_page", "newer_than"]


@dataclass(frozen=True)
class Filters:
    """What the feed shows: one pod (by name) and one kind of Event, or all of them."""

    pod: str = ""
    kind: str = ""

    @classmethod
    def from_query(cls, query):
        """Read ``pod`` and ``kind`` from a QueryDict; an unknown value means "all"."""
        kind = query.get("kind", "")
        pod = query.get("pod", "")
        if pod and not Pod.objects.filter(name=pod).exists():
            pod = ""
        return cls(pod=pod, kind=kind if kind in EventKind.values else "")

    def query_string(self):
        parts = [f"pod={self.pod}" if self.pod else "", f"kind={self.kind}" if self.kind else ""]
        return "&".join(p for p in parts if p)

    def apply(self, events):
        if self.pod:
            events = events.filter(Q(to_pod=self.pod) | Q(from_pod=self.pod))
        if self.kind:
            events = events.filter(kind=self.kind)
        return events


@dataclass(frozen=True)
class FeedRow:
    id: int
    at: datetime
    kind: str
    label: str
    task_key: str
    task_exists: bool
    pod: str
    actor: str
    caption: str


def _rows(events):
    return [
        FeedRow(
            id=e.id,
            at=e.created_at,
            kind=e.kind,
            label=KIND_LABELS.get(e.kind, e.kind),
            task_key="" if ":" in e.task_key else e.task_key,  # pod:DevPod names a pod
            task_exists=e.task_id is not None,
            pod=e.to_pod or e.from_pod,
            actor=e.actor,
            caption=caption(e),
        )
        for e in events
    ]


def _events(filters):
    return filters.apply(Event.objects.all()).only(
        "id",
        "task_id",
        "task_key",
        "kind",
        "actor",
        "from_status",
        "to_status",
        "from_pod",
        "to_pod",
        "payload",
        "created_at",
    )


def feed_page(filters, *, before=None, limit=PAGE_SIZE):
    """Return ``(rows, older)``: the ``limit`` newest Events matching ``filters`` (with an id
    below ``before`` when given), newest first, and the id to ask ``before`` for the next
    page (None on the last page)."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    events = _events(filters)
    if before is not None:
        events = events.filter(id__lt=before)
    found = list(events.order_by("-id")[: limit + 1])
    older = found[limit - 1].id if len(found) > limit else None
    return _rows(found[:limit]), older


def newer_than(filters, after, *, now=None):
    """Return ``(rows, more)``: the Events matching ``filters`` with an id above ``after``,
    newest first, at most ``MAX_NEWER``; ``more`` is True when there were more than that.

    Ids are handed out when an Event is written, not when it commits: a slow transaction may
    commit id 10 after a quick one committed id 11, which a poll already showed. So the Events
    of the last ``SETTLE_SECONDS`` just below ``after`` come again too, and the page skips
    the rows it has.
    """
    now = now or timezone.now()
    settling = Q(
        id__gt=after - SETTLE_IDS,
        id__lte=after,
        created_at__gte=now - timedelta(seconds=SETTLE_SECONDS),
    )
    found = list(
        _events(filters).filter(Q(id__gt=after) | settling).order_by("-id")[: MAX_NEWER + 1]
    )
    return _rows(found[:MAX_NEWER]), len(found) > MAX_NEWER


def latest_id():
    """The newest Event id (0 on an empty board): where a poll starts from."""
    return Event.objects.order_by("-id").values_list("id", flat=True).first() or 0


# Captions ------------------------------------------------------------------------------------


def _status(value):
    return STATUS_LABELS.get(value, value or "—")


def _quote(text):
    text = " ".join(str(text or "").split())
    if len(text) > QUOTE_CHARS:
        text = text[: QUOTE_CHARS - 1].rstrip() + "…"
    return f"“{text}”" if text else ""


def _ids(values):
    """``["A-1", {"id": "B-1", …}]`` → ``A-1, B-1``."""
    return ", ".join(str(v.get("id") if isinstance(v, dict) else v) for v in values or ())


def caption(event):
    """Return the short human caption of ``event``: "baton from PROD-120 → DEV-120 (sync)",
    "scaled out → DEV-101.2", "stalled, back to Ready"."""
    p = event.payload or {}
    kind = event.kind
    write = _CAPTIONS.get(kind)
    if write is not None:
        return write(event, p)
    return KIND_LABELS.get(kind, kind)


def _created(e, p):
    if p.get("continuation_of"):
        return f"continuation of {p['continuation_of']} (scale-out), in Ready"
    if p.get("rework_of"):
        return f"rework of {p['rework_of']}, sent back by {p.get('sent_back_by') or '—'}"
    return f"created in {_status(e.to_status)}"


def _handoff(e, p):
    text = f"baton from {p.get('handoff_from') or '—'} → {e.task_key}"
    if p.get("mode"):
        text += f" ({p['mode']})"
    if p.get("blocked"):
        text += ", still waiting on other dependencies"
    elif e.to_status == "active":
        text += ", reserved"
    return text


def _completed(e, p):
    text = f"approved by {p['approved_by']}, done" if p.get("approved_by") else "done"
    if p.get("successors"):
        text += f" → {_ids(p['successors'])}"
    return text


def _scaled_out(e, p):
    text = f"scaled out → {p.get('continuation') or '—'}"
    if p.get("reason"):
        text += f" ({str(p['reason']).replace('_', ' ')})"
    return text


def _moved(e, p):
    text = f"moved {_status(e.from_status)} → {_status(e.to_status)}"
    if e.from_pod and e.to_pod and e.from_pod != e.to_pod:
        text += f", {e.from_pod} → {e.to_pod}"
    return text


def _edited(e, p):
    if p.get("waits_for"):
        return f"now waits for {p['waits_for']} instead of {p.get('instead_of') or '—'}"
    fields = p.get("fields")
    text = f"edited: {_ids(fields)}" if fields else "edited"
    if e.from_status and e.to_status and e.from_status != e.to_status:
        text += f" ({_status(e.from_status)} → {_status(e.to_status)})"
    return text


def _reviewed(e, p):
    if p.get("verdict") == "approve":
        return "approved in review"
    note = _quote(p.get("note"))
    return "changes requested" + (f": {note}" if note else "")


def _traced(e, p):
    steps, thoughts = p.get("steps") or 0, p.get("thoughts") or 0
    parts = [f"{steps} step{'s' if steps != 1 else ''}"] if steps else []
    if thoughts:
        parts.append(f"{thoughts} thought{'s' if thoughts != 1 else ''}")
    text = "trace: " + (", ".join(parts) if parts else "tokens")
    if p.get("token_count"):
        text += f", {p['token_count']:,} tokens"
    return text


_CAPTIONS = {
    EventKind.CREATED: _created,
    EventKind.IMPORTED: lambda e, p: "imported, new" if p.get("created") else "imported, updated",
    EventKind.CLAIMED: lambda e, p: f"claimed by {p.get('instance') or e.actor or '—'}",
    EventKind.ACTIVATED: lambda e, p: "activated: Ready → Active",
    EventKind.HANDOFF: _handoff,
    EventKind.COMPLETED: _completed,
    EventKind.SCALED_OUT: _scaled_out,
    EventKind.LEASE_EXPIRED: lambda e, p: (
        "stalled, back to Ready" + (f" ({p['holder']} went quiet)" if p.get("holder") else "")
    ),
    EventKind.MOVED: _moved,
    EventKind.EDITED: _edited,
    EventKind.TRACED: _traced,
    EventKind.DELETED: lambda e, p: (
        "deleted" + (f" {_quote(p.get('title'))}" if p.get("title") else "")
    ),
    EventKind.SUBMITTED: lambda e, p: "submitted for review",
    EventKind.REVIEWED: _reviewed,
    EventKind.SENT_BACK: lambda e, p: (
        f"sent back to {p.get('to') or '—'} → rework {p.get('rework') or '—'}"
    ),
    EventKind.ASKED: lambda e, p: f"asked a person: {_quote(p.get('question'))}",
    EventKind.ANSWERED: lambda e, p: "question answered",
    EventKind.COMMENTED: lambda e, p: "commented",
    EventKind.PAUSED: lambda e, p: f"{e.from_pod or 'pod'} paused",
    EventKind.RESUMED: lambda e, p: f"{e.from_pod or 'pod'} resumed",
}
