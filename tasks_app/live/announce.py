"""The one entry point of the live path: announce a committed rule's Events to every process.

The rule runner calls ``publish(events)`` once per committed rule. It sends one small message
to the board group of the channel layer; each server process's hub (``hub``) is the group's
only member in that process and does the rest. No query and no rendering here: this runs on
the request that made the change, so the pod API pays almost nothing for open boards.

``board.events`` (on the channel layer)
    ``seq``/``first``: the highest and lowest Event id; ``at``: ``time.time()`` at commit, the
    origin of every board's lag figure; and either ``events`` (``id``, ``kind``,
    ``task_key``, ``from_pod``, ``to_pod`` and the payload keys that name other cards) or
    ``refresh`` (``import``, ``batch``) with ``count`` when card-by-card updates would not do.
"""

import logging
import time

from channels.layers import get_channel_layer

from .. import groups
from ..models import EventKind
from .changes import REFRESH_OVER_CARDS, TOUCHING_KEYS, touched

log = logging.getLogger(__name__)

BOARD_GROUP = "board"


def publish(events):
    """Announce ``events`` (one rule's, committed, saved with ids) to every open board.

    Never raises: the change is committed whatever happens to its announcement (a board that
    misses it catches up by the Event sequence).
    """
    try:
        message = announcement_for(events)
        if message is not None:
            send(message)
    except Exception:  # a board update must never undo or fail a committed change
        log.exception("could not announce %d event(s)", len(events))


def announcement_for(events, *, at=None):
    """Return the ``board.events`` message for ``events``, or None when none is saved."""
    events = [e for e in events if e is not None and e.id is not None]
    if not events:
        return None
    message = {
        "type": "board.events",
        "seq": max(e.id for e in events),
        "first": min(e.id for e in events),
        "at": time.time() if at is None else at,
    }
    imported = [e for e in events if e.kind == EventKind.IMPORTED]
    if imported:
        # An import may add pods, whose lanes a board cannot grow card by card.
        marker = next((e.payload["count"] for e in imported if "count" in (e.payload or {})), None)
        return {**message, "refresh": "import", "count": marker or len(imported)}
    task_ids, _flash, _pods = touched(events)
    if len(task_ids) > REFRESH_OVER_CARDS:
        return {**message, "refresh": "batch", "count": len(task_ids)}
    message["events"] = [
        {
            "id": e.id,
            "kind": e.kind,
            "task_key": e.task_key,
            "from_pod": e.from_pod,
            "to_pod": e.to_pod,
            "payload": {k: v for k, v in (e.payload or {}).items() if k in TOUCHING_KEYS},
        }
        for e in events
    ]
    return message


def send(message):
    """Send ``message`` to the board group, from sync code or from an event loop's thread."""
    layer = get_channel_layer()
    if layer is None:
        # No channel layer configured: only this process's boards can hear it.
        from .hub import deliver_locally

        deliver_locally(message)
        return
    groups.send(layer, [(BOARD_GROUP, message)], what="announce to boards")
