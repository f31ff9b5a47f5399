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

import logging
import threading

from channels.layers import get_channel_layer

from .. import groups

log = logging.getLogger(__name__)

ALL_PODS_GROUP = "pods-all"
WORKER_GROUP = "webhook-workers"
WORK = {"type": "pod.work"}
DUE = {"type": "webhooks.due"}

# Set when this process wrote deliveries: a worker running in this process (the demo) wakes.
deliveries_written = threading.Event()


def pod_group(name):
    return f"pod-{name}"


def after_commit(pods, wake_all=(), deliveries=False):
    """Wake the waiters of ``pods`` (names), all waiters when ``"*"`` is in ``wake_all``, and
    the delivery workers when ``deliveries`` were written. Never raises."""
    try:
        names = [pod_group(p) for p in pods if p != "*"]
        names += [pod_group(p) for p in wake_all if p != "*"]
        if "*" in wake_all:
            names.append(ALL_PODS_GROUP)
        messages = [(g, WORK) for g in dict.fromkeys(names)]
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
    groups.send(layer, messages, what="send a wake-up")
