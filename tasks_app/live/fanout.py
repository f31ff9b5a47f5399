"""One board's outbox: what it has yet to receive, merged, and the task that sends it.

The hub offers every frame to every board's outbox; offering is a few dict operations and
never waits on the socket. The outbox keeps the latest state of each pending card (a card
changed five times while the socket was busy goes out once, as it is now), the latest lane
counts and the newest sequence number. Its own sender task turns that into one message
whenever the socket is free, so a slow or stalled socket (a client that never reads) delays
only itself. Nothing queues without bound: past ``limit`` pending cards the board is too far
behind to catch up card by card, and its backlog becomes a column refresh.
"""

import asyncio
import logging
import time

from django.conf import settings

from . import lag
from .changes import REFRESH_OVER_CARDS
from .fragments import body_text, counts_key, frame_text, meta_fragment

log = logging.getLogger(__name__)

# After a frame that showed the board lagging, a quiet moment this long sends "caught up".
ALL_CLEAR_SECONDS = 1.0


def backlog_limit():
    """Return how many distinct cards a board may have pending before it refreshes instead:
    two of the largest frames the hub sends card by card, so a socket that is only a little
    slow does not turn every burst into a reload of its columns."""
    return int(getattr(settings, "PODBOARD_LIVE_BACKLOG_CARDS", 2 * REFRESH_OVER_CARDS))


def _newer(a, b):
    """Return True when card ``a`` shows a later state than ``b``: a higher version, else (a
    deletion, or the same version rendered twice) the later rendering."""
    if "version" in a and "version" in b and a["version"] != b["version"]:
        return a["version"] > b["version"]
    return a["stamp"] > b["stamp"]


class Outbox:
    """Pending changes of one board (``board.filters``, ``await board.send(text_data=…)``)."""

    def __init__(self, board, *, limit=None):
        self.board = board
        self.filters = board.filters
        self.counts_key = counts_key(board.filters)
        self.limit = backlog_limit() if limit is None else limit
        self.seq = 0  # the newest Event this board will have seen once its pending is sent
        self.cards = {}  # task id -> newest card dict (or {"id", "gone": True, "stamp"})
        self.counts = {}  # pod -> (stamp, html)
        self.refresh = None  # (reason, count) when the board should reload its columns
        self.sole = None  # the frame pending, while it is the only one (its text is shared)
        self.newest_at = None  # commit time of the newest pending change
        self.wake = asyncio.Event()
        self.held = False
        self.lagging = False  # the last frame showed a lag: the board is owed an all-clear
        self.closed = False
        self.task = None

    # Filled by the hub (and the board's own catch-up) ----------------------------------------

    def note_seq(self, seq):
        self.seq = max(self.seq, seq or 0)

    def offer(self, frame):
        """Merge ``frame`` into what this board has pending; wake its sender."""
        if self.closed:
            return
        self.note_seq(frame["seq"])
        at = frame.get("at")
        if at is not None and (self.newest_at is None or at > self.newest_at):
            self.newest_at = at
        if frame["kind"] == "refresh":
            self._become_refresh(frame["reason"], frame["count"])
        elif self.refresh is None:
            # (A pending refresh covers any change: the board reloads after receiving it.)
            empty = not self.cards and not self.counts
            self.sole = frame if empty and self.sole is None else False
            self._merge(frame)
            if len(self.cards) > self.limit:
                self._become_refresh("behind", len(self.cards))
        self.wake.set()

    def _become_refresh(self, reason, count):
        self.refresh = (reason, count)
        self.cards.clear()
        self.counts.clear()

    def _merge(self, frame):
        stamp = frame["stamp"]
        for card in frame["cards"].values():
            self._put(card)
        for task_id in frame["gone"]:
            self._put({"id": task_id, "gone": True, "stamp": stamp})
        counts = (
            frame["counts"] if self.counts_key is None else frame["narrowed"].get(self.counts_key)
        )
        for pod, html in (counts or {}).items():
            old = self.counts.get(pod)
            if old is None or old[0] <= stamp:
                self.counts[pod] = (stamp, html)

    def _put(self, card):
        task_id = card["id"]
        old = self.cards.pop(task_id, None)
        if old is not None and _newer(old, card):
            card, old = old, card  # a newer rendering is already pending: it wins
        if old is not None and old.get("flash") and not card.get("flash") and not card.get("gone"):
            # A handoff lit it up; the next state still flashes, with the same caption.
            card = {**card, "flash": True, "caption": old.get("caption", "")}
        self.cards[task_id] = card

    # Sending --------------------------------------------------------------------------------

    def start(self):
        self.task = asyncio.ensure_future(self._run())

    def stop(self):
        self.closed = True
        if self.task is not None:
            self.task.cancel()

    def hold(self):
        """Send nothing until ``release`` (the board's catch-up is not in yet)."""
        self.held = True

    def release(self):
        self.held = False
        self.wake.set()

    def take(self):
        """Return ``(text, lag seconds or None)`` for everything pending, or ``(None, None)``."""
        if self.refresh is None and not self.cards and not self.counts:
            return None, None
        age = None if self.newest_at is None else max(0.0, time.time() - self.newest_at)
        lag_ms = None if age is None else age * 1000
        if self.refresh is None and self.sole:
            # What every board that kept up has pending is one and the same frame: build its
            # fragments once per distinct filter, not once per board.
            texts = self.sole.setdefault("texts", {})
            if self.filters not in texts:
                texts[self.filters] = body_text(self.filters, *self._pending())
            text = meta_fragment(self.seq, lag_ms=lag_ms) + texts[self.filters]
        else:
            text = frame_text(
                seq=self.seq,
                filters=self.filters,
                lag_ms=lag_ms,
                refresh=self.refresh,
                cards=self._pending()[0],
                counts=self._pending()[1],
            )
        self.cards, self.counts, self.refresh, self.newest_at = {}, {}, None, None
        self.sole = None
        return text, age

    def _pending(self):
        return (
            list(self.cards.values()),
            {pod: html for pod, (_stamp, html) in self.counts.items()},
        )

    async def _run(self):
        try:
            while True:
                if self.lagging and not self.wake.is_set():
                    try:
                        await asyncio.wait_for(self.wake.wait(), ALL_CLEAR_SECONDS)
                    except TimeoutError:
                        # Quiet after a late frame: the board is up to date again.
                        self.lagging = False
                        lag.observe(0.0)
                        await self.board.send(
                            text_data=frame_text(seq=self.seq, filters=self.filters, lag_ms=0)
                        )
                        continue
                else:
                    await self.wake.wait()
                self.wake.clear()
                if self.held:
                    continue
                text, age = self.take()
                if text is None:
                    continue
                await self.board.send(text_data=text)
                lag.observe(age)
                self.lagging = age is not None and age > lag.NOTE_SECONDS
        except asyncio.CancelledError:
            raise
        except Exception:
            # The socket is gone (the server's ClientDisconnected is an OSError): the board's
            # disconnect takes it off the hub; until then offers are dropped.
            self.closed = True
            log.debug("board socket closed while sending", exc_info=True)
