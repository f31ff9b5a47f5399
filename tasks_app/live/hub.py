"""The hub: one subscription per server process, one render per change, fanned out in memory.

The first board that connects in an event loop starts that loop's hub; the last one to leave
stops it. The hub joins the board group of the channel layer with one channel of its own
(not one per board), so an announcement crosses the layer once per process whatever the
number of open boards. Three tasks run on the loop:

``listen``
    receives announcements and only marks what they touched as dirty (never waits on the
    database or a socket, so nothing queues for this process on the layer). It re-joins
    the group every few minutes, for a layer that forgets members after a group expiry (the
    in-memory one does after a day).
``render``
    turns the dirty tasks into one frame (``changes``) on the render thread, a thread of its
    own so renders neither wait behind requests nor make them wait: at once when it has been
    idle, at most every ``frame_seconds()`` when busy (longer when renders are slow, up to
    ``MAX_GAP_SECONDS``), so a burst becomes one frame. More dirty cards than
    ``REFRESH_OVER_CARDS`` become a refresh instead. Each frame is offered to every board's
    outbox (``fanout``), which never blocks.
``poll``
    every ``poll_seconds()`` asks the database once for the newest Event id and brings the
    boards that stayed behind it for a whole poll up to date: changes made by a process
    without a shared layer (a CLI import on the in-memory layer) or announcements lost on
    the way.
"""

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections

from . import changes
from .announce import BOARD_GROUP
from .fanout import Outbox

log = logging.getLogger(__name__)

# How long a connecting board waits for its hub to join the group before it goes on anyway
# (the poll then covers what the board might miss).
READY_TIMEOUT = 5.0
# However slow renders get, a busy hub starts one at least this often (boards promise to be
# at most ~1 s behind: this wait, plus the render, plus the send).
MAX_GAP_SECONDS = 0.5


def frame_seconds():
    """Return the shortest time between two renders of a busy hub."""
    return float(getattr(settings, "PODBOARD_LIVE_FRAME_SECONDS", 0.1))


def poll_seconds():
    """Return how often the hub checks for events it was not told about."""
    return float(getattr(settings, "PODBOARD_LIVE_POLL_SECONDS", 5))


def group_refresh_seconds():
    return float(getattr(settings, "PODBOARD_LIVE_GROUP_REFRESH_SECONDS", 240))


_render_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="podboard-live")


def _call(fn, args, kwargs):
    close_old_connections()
    try:
        return fn(*args, **kwargs)
    finally:
        close_old_connections()


async def in_render_thread(fn, *args, **kwargs):
    """Run ``fn`` on the live path's own thread (database work of renders and polls)."""
    call = sync_to_async(_call, thread_sensitive=False, executor=_render_thread)
    return await call(fn, args, kwargs)


class Pending:
    """What the hub has heard since its last render."""

    def __init__(self):
        self.tasks = {}  # task id -> None, in the order heard
        self.flash = {}  # task id -> caption
        self.pods = set()
        self.seq = 0
        self.at = None  # commit time of the newest change heard
        self.refresh = None  # (reason, count)

    def __bool__(self):
        return bool(self.seq or self.tasks or self.refresh)

    def add(self, message):
        self.seq = max(self.seq, message.get("seq") or 0)
        at = message.get("at")
        if at is not None and (self.at is None or at > self.at):
            self.at = at
        if message.get("refresh"):
            count = int(message.get("count") or 0) + (self.refresh[1] if self.refresh else 0)
            self.refresh = (self.refresh[0] if self.refresh else message["refresh"], count)
            return
        ids, flash, pods = changes.touched(message.get("events") or ())
        self.tasks.update(dict.fromkeys(ids))
        self.flash |= flash
        self.pods |= pods


class Hub:
    """The open boards of one event loop (one server process) and the tasks they share."""

    def __init__(self, loop):
        self.loop = loop
        self.outboxes = {}  # board -> Outbox
        self.pending = Pending()
        self.wake = asyncio.Event()
        self.ready = asyncio.Event()
        self.tasks = []
        self.channel = None
        self.joined_at = float("-inf")
        self.last_render = float("-inf")
        self.gap = frame_seconds()  # between the starts of two renders while busy
        self.gap_mark = None
        self.renders = 0

    # Boards -----------------------------------------------------------------------------------

    def join(self, board):
        """Register ``board`` (``filters``, ``send``); return its started ``Outbox``."""
        outbox = Outbox(board)
        self.outboxes[board] = outbox
        outbox.start()
        if not self.tasks:
            self.tasks = [
                asyncio.ensure_future(self._listen()),
                asyncio.ensure_future(self._render_loop()),
                asyncio.ensure_future(self._poll()),
            ]
        return outbox

    async def leave(self, board):
        outbox = self.outboxes.pop(board, None)
        if outbox is not None:
            outbox.stop()
        if not self.outboxes and self.tasks:
            await self._stop()

    async def wait_ready(self, timeout=READY_TIMEOUT):
        """Wait until the hub hears announcements, so a board reading the sequence after this
        misses nothing in between."""
        try:
            await asyncio.wait_for(self.ready.wait(), timeout)
        except TimeoutError:
            log.warning("board subscription not ready after %.0f s; relying on the poll", timeout)

    async def _stop(self):
        tasks, self.tasks = self.tasks, []
        channel, self.channel = self.channel, None
        self.ready.clear()
        self.pending, self.gap_mark = Pending(), None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        layer = get_channel_layer()
        if channel is not None and layer is not None:
            try:
                await layer.group_discard(BOARD_GROUP, channel)
            except Exception:
                log.debug("could not leave the board group", exc_info=True)

    def offer(self, frame):
        for outbox in list(self.outboxes.values()):
            outbox.offer(frame)

    def narrowing(self):
        """Return one ``Filters`` per distinct way the open boards narrow their counts."""
        found = {}
        for outbox in self.outboxes.values():
            if outbox.counts_key is not None:
                found.setdefault(outbox.counts_key, outbox.filters)
        return list(found.values())

    # Listening --------------------------------------------------------------------------------

    def note(self, message):
        """Take one announcement (or a batch of them): remember what it touched; the render
        loop does the rest."""
        for one in message.get("batch") or (message,):
            self.pending.add(one)
        self.wake.set()

    async def _listen(self):
        layer = get_channel_layer()
        if layer is None:
            self.ready.set()  # publish hands announcements to the hubs directly
            return
        pause = 1.0
        while True:
            try:
                if self.channel is None:
                    self.channel = await layer.new_channel()
                await layer.group_add(BOARD_GROUP, self.channel)
                self.joined_at = time.monotonic()
                self.ready.set()
                pause = 1.0
                while True:
                    self.note(await layer.receive(self.channel))
            except asyncio.CancelledError:
                raise
            except Exception:
                # (Redis down: the poll still brings boards up to date from the database.)
                log.warning(
                    "board subscription failed; joining again in %.0f s", pause, exc_info=True
                )
                self.channel = None
                await asyncio.sleep(pause)
                pause = min(30.0, pause * 2)

    async def _keep_membership(self):
        layer = get_channel_layer()
        if self.channel is None or layer is None:
            return
        if time.monotonic() - self.joined_at >= group_refresh_seconds():
            await layer.group_add(BOARD_GROUP, self.channel)
            self.joined_at = time.monotonic()

    # Rendering --------------------------------------------------------------------------------

    async def _render_loop(self):
        while True:
            await self.wake.wait()
            delay = self.last_render + self.gap - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # busy: let the burst gather into one frame
            self.wake.clear()
            pending, self.pending = self.pending, Pending()
            if not pending:
                continue
            self.last_render = time.monotonic()
            try:
                frame = await self._frame_for(pending)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not render a board change")
                continue
            # Renders take at most about half of the time (of the process's one GIL) until
            # MAX_GAP_SECONDS, so under load they leave room for the requests; a bigger, rarer
            # frame also costs less per change.
            took = time.monotonic() - self.last_render
            self.gap = min(max(frame_seconds(), 2 * took), MAX_GAP_SECONDS)
            self.renders += 1
            self.offer(frame)

    async def _frame_for(self, pending):
        if pending.refresh:
            reason, count = pending.refresh
            return changes.refresh_frame(pending.seq, reason=reason, count=count, at=pending.at)
        ids = list(pending.tasks)
        if not ids:
            return _empty(pending)  # nothing to draw; the boards' sequence still advances
        if len(ids) > changes.REFRESH_OVER_CARDS:
            return changes.refresh_frame(pending.seq, reason="batch", count=len(ids), at=pending.at)
        return await in_render_thread(
            changes.render_frame,
            ids,
            seq=pending.seq,
            at=pending.at,
            flash=pending.flash,
            pods=pending.pods,
            narrowing=self.narrowing(),
        )

    # Catching up ------------------------------------------------------------------------------

    async def _poll(self):
        while True:
            await asyncio.sleep(poll_seconds())
            try:
                await self._keep_membership()
                if self.outboxes:
                    await self._check_gap()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("board catch-up failed")

    async def _check_gap(self):
        latest = await in_render_thread(changes.latest_seq_now)
        behind = [o for o in self.outboxes.values() if o.seq < latest]
        if not behind:
            self.gap_mark = None
            return
        mark, self.gap_mark = self.gap_mark, latest
        if mark is None:
            return  # maybe an announcement still on its way: look again next poll
        stuck = [o for o in behind if o.seq < mark]
        if not stuck:
            return
        # One catch-up from the furthest behind serves them all: cards are rendered as they
        # are now, so a board that already had some of them only gets them again.
        frame = await in_render_thread(
            changes.catch_up_frame,
            min(o.seq for o in stuck),
            narrowing=self.narrowing(),
            timed=True,
        )
        self.gap_mark = None
        if frame is not None:
            for outbox in stuck:
                outbox.offer(frame)


def _empty(pending):
    return {
        "kind": "change",
        "seq": pending.seq,
        "at": pending.at,
        "stamp": 0,
        "cards": {},
        "gone": [],
        "counts": {},
        "narrowed": {},
    }


_hubs = {}  # event loop -> Hub


def current_hub():
    """Return the hub of the running event loop (one per server process)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        for other in [other for other in _hubs if other.is_closed()]:
            del _hubs[other]
        hub = _hubs[loop] = Hub(loop)
    return hub


def deliver_locally(message):
    """Hand ``message`` to this process's hubs directly (no channel layer configured)."""
    for hub in list(_hubs.values()):
        if not hub.loop.is_closed():
            hub.loop.call_soon_threadsafe(hub.note, message)
