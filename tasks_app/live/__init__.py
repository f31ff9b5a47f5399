"""The live board: every committed change reaches every open board within about a second.

One announcement per committed rule, one subscription per server process, one render per
change, and per board only the newest state of what it has not seen yet:

``announce``   the entry point (``publish(events)``, called once per committed rule): one
               small message to the board group of the channel layer.
``hub``        per process: joins the group with one channel, collects what changed, renders
               it once per burst on its own thread, offers the frame to every board, and
               polls the Event sequence for changes nobody announced.
``changes``    rendering a frame: cards, their places in their columns, lane counts; the
               catch-up of a board that missed events.
``fanout``     per board: the outbox that merges pending frames (latest state wins, bounded,
               a refresh past the bound) and the task that sends them.
``fragments``  per board: the htmx out-of-band fragments for what it shows.
``lag``        how far behind the boards are: the gauge and the warning line.

The board's socket is ``tasks_app.consumers.BoardConsumer``; its client is static/js/live.js.
"""

from .announce import BOARD_GROUP, get_channel_layer, publish
from .changes import (
    CATCH_UP_LIMIT,
    REFRESH_OVER_CARDS,
    catch_up_frame,
    latest_seq_now,
    recent_seq,
)
from .fragments import board_filters
from .hub import current_hub, frame_seconds, poll_seconds
from .lag import lag_seconds, lag_stats

__all__ = [
    "BOARD_GROUP",
    "CATCH_UP_LIMIT",
    "REFRESH_OVER_CARDS",
    "board_filters",
    "catch_up_frame",
    "current_hub",
    "frame_seconds",
    "get_channel_layer",
    "lag_seconds",
    "lag_stats",
    "latest_seq_now",
    "poll_seconds",
    "publish",
    "recent_seq",
]
