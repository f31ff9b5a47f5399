"""Sending to channel-layer groups from any thread, without making a request wait.

Both live board announcements and pod wake-ups are sent after a commit, usually on a request's
thread. Under ASGI that thread was started by the server's event loop: the send is handed to
that loop and the request returns at once. On the loop's own thread the send is scheduled;
anywhere else (a command, a thread of its own) it is sent and waited for. A failed send is
logged, never raised: the change it reports is committed whatever happens to the message.
"""

import asyncio
import logging
import os

from asgiref.sync import SyncToAsync, async_to_sync

log = logging.getLogger(__name__)

_pending = set()  # keeps fire-and-forget sends alive until they finish


def event_loop():
    """Return the event loop a send from this thread goes through: the running one, or the
    server's loop that started this thread; None outside a server."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return _server_loop()


def send(layer, messages, *, what):
    """Send ``[(group, message)]`` on ``layer``.

    ``what`` completes "could not …" in the log line of a failed send.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:
        _start(layer, messages, what)
        return
    server_loop = _server_loop()
    if server_loop is not None:
        server_loop.call_soon_threadsafe(_start, layer, messages, what)
        return
    async_to_sync(_send)(layer, messages)


async def _send(layer, messages):
    for group, message in messages:
        await layer.group_send(group, message)


def _server_loop():
    """Return the running event loop whose ``sync_to_async`` started this thread, or None."""
    local = SyncToAsync.threadlocal
    if getattr(local, "main_event_loop_pid", None) != os.getpid():
        return None
    loop = getattr(local, "main_event_loop", None)
    if loop is None or loop.is_closed() or not loop.is_running():
        return None
    return loop


def _start(layer, messages, what):
    task = asyncio.get_running_loop().create_task(_send(layer, messages))
    _pending.add(task)

    def sent(task):
        _pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("could not %s", what, exc_info=task.exception())

    task.add_done_callback(sent)
