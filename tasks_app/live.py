"""Board announcements: what the workflow sends after commit, and where it goes."""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)

BOARD_GROUP = "board"


def publish(events):
    """Send ``events`` to every open board."""
    layer = get_channel_layer()
    if layer is None:
        return
    message = {
        "type": "board.events",
        "events": [
            {
                "seq": e.id,
                "kind": e.kind,
                "task": e.task_key,
                "to_status": e.to_status,
                "to_pod": e.to_pod,
            }
            for e in events
        ],
    }
    try:
        async_to_sync(layer.group_send)(BOARD_GROUP, message)
    except Exception:  # a board update must never undo or fail a committed change
        log.exception("could not announce %d event(s)", len(events))
