"""Long-poll ``next``: ``POST /api/tasks/next`` with ``"wait": 0…30`` holds until work comes.

The wait happens *between* requests to Django, at the ASGI level, so while a pod waits no
Django request is in flight: no thread (Django's ASGI handler gives each request one) and no
database connection (closed when each request ends) are held. ``LongPollMiddleware``:

1. reads the body; without a positive ``wait`` (or with a body it cannot read) it passes the
   request through unchanged: the API answers as always, validation errors included;
2. joins the channel-layer groups that announce work for the pod (``wakeup``), *then* lets
   Django answer the request (the normal ``next``: auth, checks, claim);
3. a 204 (nothing to claim) before the deadline is not sent: it waits for a wake-up (or
   ``long_poll_recheck_seconds``, for changes a wake-up cannot reach) and asks Django again;
   any other answer (a claimed task, an error) or the deadline's 204 goes to the client.

Woken waiters race for the work with a normal claim; the losers get 204 from Django and keep
waiting until their own deadline. A client that disconnects stops the wait before any claim.
The MCP server's ``next_task`` waits the same way (``Waiter``).
"""

import asyncio
import json
import re
import time

from channels.layers import get_channel_layer

from .config import long_poll_max_seconds, long_poll_recheck_seconds
from .wakeup import ALL_PODS_GROUP, pod_group

NEXT_PATH = "/api/tasks/next"
POD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}\Z")


def wait_seconds(body):
    """Return ``(wait, pod)`` from a ``next`` body, or ``(0, None)`` when it asks no wait.

    Only a well-formed positive wait counts; anything else is left for the API to judge.
    """
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return 0, None
    if not isinstance(data, dict):
        return 0, None
    wait, pod = data.get("wait"), data.get("pod_owner")
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not isinstance(pod, str):
        return 0, None
    if not 0 < wait <= long_poll_max_seconds() or not POD_NAME.match(pod):
        return 0, None
    return float(wait), pod


class Waiter:
    """Membership in a pod's wake-up groups, with one pending receive at a time.

    ``Waiter.waiting`` counts the waits in progress in this process (between two requests to
    Django, holding nothing but this object).
    """

    waiting = 0

    def __init__(self, pod):
        self.pod = pod
        self.layer = get_channel_layer()
        self.channel = None
        self._receive = None

    async def __aenter__(self):
        if self.layer is not None:
            self.channel = await self.layer.new_channel("longpoll.")
            for group in (pod_group(self.pod), ALL_PODS_GROUP):
                await self.layer.group_add(group, self.channel)
        return self

    async def __aexit__(self, *exc):
        if self._receive is not None:
            self._receive.cancel()
        if self.channel is not None:
            for group in (pod_group(self.pod), ALL_PODS_GROUP):
                await self.layer.group_discard(group, self.channel)

    async def wait(self, timeout, *, also=None):
        """Wait up to ``timeout`` seconds for a wake-up (True), or for ``also`` (an awaitable
        future, e.g. a disconnect) to finish first (None); False when the time ran out."""
        Waiter.waiting += 1
        try:
            return await self._wait(timeout, also)
        finally:
            Waiter.waiting -= 1

    async def _wait(self, timeout, also):
        if self.channel is None:  # no channel layer: look again after the timeout
            if also is None:
                await asyncio.sleep(timeout)
                return False
            done, _ = await asyncio.wait([also], timeout=timeout)
            return None if done else False
        if self._receive is None:
            self._receive = asyncio.ensure_future(self.layer.receive(self.channel))
        waiting = [self._receive] + ([also] if also is not None else [])
        done, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if self._receive in done:
            self._receive = None
            return True
        return None if done else False


async def poll(attempt, pod, wait, *, gone=None):
    """Call ``attempt()`` until it answers something other than "nothing yet" or ``wait``
    seconds passed; return its last answer.

    ``attempt`` is an async callable returning ``(nothing_yet, answer)``. ``gone``: a future
    that finishes when the caller went away (then the last answer is returned at once).
    """
    deadline = time.monotonic() + wait
    async with Waiter(pod) as waiter:
        while True:
            nothing_yet, answer = await attempt()
            left = deadline - time.monotonic()
            if not nothing_yet or left <= 0:
                return answer
            woke = await waiter.wait(min(left, long_poll_recheck_seconds()), also=gone)
            if woke is None:
                return answer


class LongPollMiddleware:
    """ASGI middleware for ``next`` with ``wait`` (see the module docstring)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or scope.get("path", "").rstrip("/") != NEXT_PATH
        ):
            return await self.app(scope, receive, send)
        body, tail = await _read_body(receive)
        wait, pod = (0, None) if tail is not None else wait_seconds(body)
        if not wait:
            return await self.app(scope, _replay(body, tail, receive), send)
        gone = asyncio.get_running_loop().create_future()
        watcher = asyncio.ensure_future(_watch_disconnect(receive, gone))

        async def attempt():
            messages = []

            async def capture(message):
                messages.append(message)

            await self.app(scope, _replay(body, None, _until(gone)), capture)
            start = next((m for m in messages if m["type"] == "http.response.start"), None)
            return start is not None and start["status"] == 204, messages

        try:
            messages = await poll(attempt, pod, wait, gone=gone)
            if not gone.done():
                for message in messages:
                    await send(message)
        finally:
            watcher.cancel()


async def _read_body(receive):
    """Return ``(body, None)``, or ``(body so far, message)`` when something else came first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), None


def _replay(body, tail, receive):
    """Return a ``receive`` that gives ``body`` (then ``tail``, if any) and then defers."""
    sent = False

    async def replay():
        nonlocal sent, tail
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if tail is not None:
            message, tail = tail, None
            return message
        return await receive()

    return replay


def _until(gone):
    async def receive():
        await asyncio.shield(gone)
        return {"type": "http.disconnect"}

    return receive


async def _watch_disconnect(receive, gone):
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            if not gone.done():
                gone.set_result(True)
            return
