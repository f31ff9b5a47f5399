"""Wake-ups after commit, through the channel layer: waiting ``next`` calls and workers.

Groups (names as Channels allows them):

``pod-<name>``       every waiting ``next`` of that pod; ``{"type": "pod.work"}`` when a task
                     of the pod may have become claimable.
``pods-all``         every waiting ``next``: look again (an import, a pod resumed).
``webhook-workers``  delivery workers: ``{"type": "webhooks.due"}`` when deliveries were written.

A wake-up is a hint, never the data: whoever wakes reads the database. A lost one costs
latency only (waiters and workers also look again on their own, see ``longpoll`` and
``worker``). With the in-memory layer the hint reaches this process only; with Redis, every
process. Sending never blocks the request that committed the change.
"""

import asyncio
import logging
import os
import threading

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)

ALL_PODS_GROUP = "pods-all"
WORKER_GROUP = "webhook-workers"
WORK = {"type": "pod.work"}
DUE = {"type": "webhooks.due"}

# Set when this process wrote deliveries: a worker running in this process (the demo) wakes.
deliveries_written = threading.Event()
_pending = set()  # fire-and-forget sends, kept alive until they finish


def pod_group(name):
    return f"pod-{name}"


def after_commit(pods, wake_all=(), deliveries=False):
    """Wake the waiters of ``pods`` (names), all waiters when ``"*"`` is in ``wake_all``, and
    the delivery workers when ``deliveries`` were written. Never raises."""
    try:
        groups = [pod_group(p) for p in pods if p != "*"]
        groups += [pod_group(p) for p in wake_all if p != "*"]
        if "*" in wake_all:
            groups.append(ALL_PODS_GROUP)
        messages = [(g, WORK) for g in dict.fromkeys(groups)]
        if deliveries:
            deliveries_written.set()
            messages.append((WORKER_GROUP, DUE))
        if messages:
            send_all(messages)
    except Exception:  # a wake-up must never fail a committed change
        log.exception("could not send wake-ups for %s", pods)


def send_all(messages):
    """Send ``[(group, message)]`` from sync code or from an event loop's thread."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:
        _start(layer, messages)
        return
    server_loop = _server_loop()
    if server_loop is not None:
        # A request's thread under ASGI: the server's loop sends; the request returns at once.
        server_loop.call_soon_threadsafe(_start, layer, messages)
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


def _start(layer, messages):
    task = asyncio.get_running_loop().create_task(_send(layer, messages))
    _pending.add(task)
    task.add_done_callback(_sent)


def _sent(task):
    _pending.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("could not send a wake-up", exc_info=task.exception())
