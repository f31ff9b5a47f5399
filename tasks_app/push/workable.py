"""Which Events make a task workable for its pod: the source of webhooks and long-poll wakes.

A rule's Events say what it did; this reads them once, after they are saved, and answers
``Workable`` items: the pod, the task, the webhook kind (DESIGN.md, "Push to pods"), and
whether a waiting ``next`` could now claim the task. Per task only its last status in the rule
counts (a task moved Ready → Done in one rule was never workable), and a task that became ready
while a dependency is not done is left out (one query, only when such a task exists).
"""

from dataclasses import dataclass

from ..graph import waiting_for
from ..models import EventKind, Status

RESERVED = "task.reserved"
READY = "task.ready"
REVIEW_DECIDED = "task.review_decided"
ANSWERED = "task.answered"
KINDS = (RESERVED, READY, REVIEW_DECIDED, ANSWERED)

# Kinds whose ready task may still wait for a dependency: checked with one query.
_CHECK_BLOCKED = {
    EventKind.CREATED,
    EventKind.LEASE_EXPIRED,
    EventKind.MOVED,
    EventKind.EDITED,
    EventKind.SENT_BACK,
}


@dataclass(frozen=True)
class Workable:
    pod: str
    task_id: str
    kind: str
    event: object  # the Event that made it so (saved, with an id)
    claimable: bool  # a waiting ``next`` of the pod may now claim it


def _pod(event):
    return event.to_pod or event.from_pod


def _changed_place(event):
    return event.from_status != event.to_status or event.from_pod != event.to_pod


def _candidate(event):
    """Return ``(kind, claimable, check_blocked)`` for an Event that sets a status, or None."""
    kind, to_status, payload = event.kind, event.to_status, event.payload or {}
    if kind == EventKind.REVIEWED:
        return REVIEW_DECIDED, to_status == Status.READY, False
    if to_status == Status.ACTIVE:
        if kind == EventKind.HANDOFF or kind == EventKind.ACTIVATED:
            return RESERVED, True, False
        if kind == EventKind.MOVED and _changed_place(event):
            # A human put it in Active (held by nobody) or moved it to another pod's lane.
            return RESERVED, True, False
        return None
    if to_status != Status.READY:
        return None
    if kind == EventKind.HANDOFF:
        # An async handoff says whether the successor still waits; a baton linked to a task
        # that is not done (auto_handoff) always does.
        if payload.get("blocked") is False:
            return READY, True, False
        return None
    if kind == EventKind.CREATED:
        return READY, True, not payload.get("continuation_of")
    if kind in (EventKind.MOVED, EventKind.EDITED):
        return (READY, True, True) if _changed_place(event) else None
    if kind in _CHECK_BLOCKED:
        return READY, True, True
    return None


def workable(events):
    """Return ``(items, wake_all)``: the ``Workable`` items of a rule's saved ``events``, and
    the pods whose waiters should look again although no single task says so (``"*"``: all)."""
    last = {}  # task id -> (event, candidate or None), in order
    notices = []
    wake_all = set()
    for event in events:
        if event.kind == EventKind.ANSWERED:
            notices.append(Workable(_pod(event), event.task_key, ANSWERED, event, False))
            continue
        if event.kind == EventKind.IMPORTED:
            wake_all.add("*")
            continue
        if event.kind == EventKind.RESUMED:
            wake_all.add(_pod(event) or "*")
            continue
        if not event.task_key or not (event.to_status or event.kind == EventKind.REVIEWED):
            continue
        if event.from_status == Status.ACTIVE and event.to_status != Status.ACTIVE:
            # One active task fewer: a pod waiting at its WIP limit may claim again.
            wake_all.add(event.from_pod or "*")
        last[event.task_key] = (event, _candidate(event))
    check = [
        task_id for task_id, (_e, c) in last.items() if c is not None and c[0] == READY and c[2]
    ]
    blocked = waiting_for(check) if check else {}
    items = []
    for task_id, (event, candidate) in last.items():
        if candidate is None or task_id in blocked:
            continue
        kind, claimable, _check = candidate
        pod = _pod(event)
        if pod:
            items.append(Workable(pod, task_id, kind, event, claimable))
    return items + notices, wake_all
