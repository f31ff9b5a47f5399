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
    Or ``batch``: a list of such messages, sent as one.

In a server process the announcements of its requests leave through ``Outgoing``: the first
after a quiet moment at once, the ones that follow within ``batch_seconds()`` together in one
message. Every hub reads every process's announcements; one message per rule made each hub
read ~100 a second from the layer under full load, more than a busy event loop kept up with
(they queued in Redis until they expired). A batch costs a hub one read.
"""

import logging
import threading
import time

from channels.layers import get_channel_layer
from django.conf import settings

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


def batch_seconds():
    """Return how long a busy server process gathers announcements into one message."""
    return float(getattr(settings, "PODBOARD_LIVE_BATCH_SECONDS", 0.1))


def send(message):
    """Send ``message`` to the board group, from sync code or from an event loop's thread."""
    layer = get_channel_layer()
    if layer is None:
        # No channel layer configured: only this process's boards can hear it.
        from .hub import deliver_locally

        deliver_locally(message)
        return
    loop = groups.event_loop()
    if loop is None or batch_seconds() <= 0:
        # A command or a test outside a server: nothing to gather it with.
        groups.send(layer, [(BOARD_GROUP, message)], what="announce to boards")
        return
    _outgoing.add(loop, layer, message)


class Outgoing:
    """This process's announcements on their way to the channel layer (see the module)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.queue = []
        self.loop = None  # the loop a flush is scheduled on, while one is
        self.last = float("-inf")  # when the last message left (loop.time())

    def add(self, loop, layer, message):
        with self.lock:
            self.queue.append(message)
            if self.loop is not None and not self.loop.is_closed():
                return  # the scheduled flush takes it
            self.loop = loop
        try:
            loop.call_soon_threadsafe(self._schedule, loop, layer)
        except RuntimeError:  # the loop closed meanwhile
            with self.lock:
                queue, self.queue, self.loop = self.queue, [], None
            groups.send(layer, [(BOARD_GROUP, m) for m in queue], what="announce to boards")

    def _schedule(self, loop, layer):
        delay = self.last + batch_seconds() - loop.time()
        if delay > 0:
            loop.call_later(delay, self._flush, loop, layer)
        else:
            self._flush(loop, layer)

    def _flush(self, loop, layer):
        with self.lock:
            queue, self.queue, self.loop = self.queue, [], None
        if not queue:
            return
        self.last = loop.time()
        message = queue[0] if len(queue) == 1 else {"type": "board.events", "batch": queue}
        groups.send(layer, [(BOARD_GROUP, message)], what="announce to boards")


_outgoing = Outgoing()
