"""The webhook delivery worker: drains the outbox table, outside any request.

Why an outbox table and not a task queue: the delivery row is written by the rule runner in the
transaction of the change (``outbox``), so it exists exactly when the change does; draining that
same table needs no second store, works on SQLite and PostgreSQL alike and leaves each attempt
where the admin and the task page read it (docs/operations.md).

- **Claim**: due rows (``pending``, ``next_attempt_at`` passed) are taken with
  ``select_for_update(skip_locked=True)`` and pushed ``claim_seconds`` into the future in one
  short transaction, so several workers never take the same row; on SQLite, whose writers
  serialise, the guarded UPDATE does the same. A worker killed mid-send (even SIGKILL) leaves
  the row pending: when its claim runs out the row is due again and is sent again (same
  ``webhook-id``, so a receiver can tell a repeat).
- **Send**: a signed POST (``signing``) with a timeout (10 s), no redirects followed, on a pool
  of threads so one hanging receiver does not hold up the others.
- **Record**: each attempt is a ``DeliveryAttempt`` (status, time, error, duration); a 2xx
  delivers; anything else retries with exponential backoff and jitter (5 s, 10 s, 20 s … at most
  an hour apart) until the retry window (24 h) has passed, then the row is ``failed``.
"""

import json
import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
from django.core.exceptions import ValidationError
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from ..models import DeliveryAttempt, WebhookDelivery
from . import config, signing, wakeup
from .urls import check_url

log = logging.getLogger(__name__)

USER_AGENT = "PodBoard-Webhooks/1"
PENDING, DELIVERED, FAILED = (
    WebhookDelivery.State.PENDING,
    WebhookDelivery.State.DELIVERED,
    WebhookDelivery.State.FAILED,
)


def backoff(attempts, rng=random):
    """Return the seconds to wait after ``attempts`` failed tries (≥ 1): doubling from the
    base, at most an hour, with jitter (between half and all of it) so receivers that failed
    together are not retried together."""
    delay = min(config.BACKOFF_CAP_SECONDS, config.backoff_base_seconds() * 2 ** (attempts - 1))
    return delay / 2 + rng.uniform(0, delay / 2)


def claim_due(limit, *, now=None):
    """Take up to ``limit`` due deliveries for this worker; return their ids."""
    now = now or timezone.now()
    until = now + timedelta(seconds=config.claim_seconds())
    with transaction.atomic():
        due = list(
            WebhookDelivery.objects.select_for_update(skip_locked=True)
            .filter(state=PENDING, next_attempt_at__lte=now)
            .order_by("next_attempt_at", "id")
            .values_list("pk", flat=True)[:limit]
        )
        if not due:
            return []
        WebhookDelivery.objects.filter(pk__in=due, state=PENDING, next_attempt_at__lte=now).update(
            next_attempt_at=until
        )
    return due


def _client():
    return httpx.Client(
        timeout=httpx.Timeout(config.webhook_timeout()),
        follow_redirects=False,
        trust_env=False,
        headers={"user-agent": USER_AGENT},
    )


def send(delivery, client):
    """POST ``delivery`` to its pod's receiver; return ``(status code or None, error text)``."""
    pod = delivery.pod
    url = pod.webhook_url
    if not url:
        return None, "The pod no longer has a webhook URL."
    if not pod.webhook_secret:
        return None, "The pod has no webhook secret; set its webhook again to generate one."
    try:
        check_url(url, resolve=True)
    except ValidationError as exc:
        return None, f"Refused: {' '.join(exc.messages)}"
    delivery.url = url
    body = json.dumps(delivery.payload, separators=(",", ":"))
    headers = {
        "content-type": "application/json",
        **signing.headers_for(pod.webhook_secret, delivery.webhook_id, body),
    }
    try:
        response = client.post(url, content=body.encode(), headers=headers)
    except httpx.TimeoutException:
        return None, f"No answer within {config.webhook_timeout():g} s."
    except httpx.HTTPError as exc:
        return None, f"{exc.__class__.__name__}: {exc}"[:500]
    if 200 <= response.status_code < 300:
        return response.status_code, ""
    text = response.text[:200].strip()
    return response.status_code, f"HTTP {response.status_code}" + (f": {text}" if text else "")


def record(delivery, status, error, duration_ms, *, now=None):
    """Log the attempt and move the delivery on: delivered, retried later, or failed."""
    now = now or timezone.now()
    with transaction.atomic():
        DeliveryAttempt.objects.create(
            delivery=delivery, at=now, status_code=status, error=error, duration_ms=duration_ms
        )
        attempts = delivery.attempts + 1
        if not error:
            WebhookDelivery.objects.filter(pk=delivery.pk).update(
                state=DELIVERED,
                attempts=attempts,
                delivered_at=now,
                last_error="",
                url=delivery.url,
            )
            return DELIVERED
        age = (now - delivery.created_at).total_seconds()
        if age >= config.retry_window_seconds():
            state, next_at = FAILED, now
        else:
            state, next_at = PENDING, now + timedelta(seconds=backoff(attempts))
        WebhookDelivery.objects.filter(pk=delivery.pk, state=PENDING).update(
            state=state, attempts=attempts, next_attempt_at=next_at, last_error=error,
            url=delivery.url,
        )  # fmt: skip
        return state


def _drop_stale_connection():
    # A thread of the pool must not keep a dead or expired connection; one inside a
    # transaction (a caller's atomic block, a test's) is not ours to close.
    if not connection.in_atomic_block:
        close_old_connections()


def deliver(pk, client):
    """Send one claimed delivery and record the attempt; return its new state (or None)."""
    _drop_stale_connection()
    try:
        delivery = WebhookDelivery.objects.select_related("pod").filter(pk=pk).first()
        if delivery is None or delivery.state != PENDING:
            return None
        started = time.monotonic()
        status, error = send(delivery, client)
        duration_ms = int((time.monotonic() - started) * 1000)
        state = record(delivery, status, error, duration_ms)
        if error:
            log.info("webhook %s to %s failed: %s", delivery.webhook_id, delivery.url, error)
        return state
    finally:
        _drop_stale_connection()


def resend(queryset):
    """Make deliveries due now again (the admin's "send again"); return how many."""
    return queryset.update(state=PENDING, next_attempt_at=timezone.now())


class Worker:
    """Send due deliveries with ``concurrency`` threads until ``stop`` is set.

    ``once``: send what is due now (and what becomes due while doing so), then return.
    """

    def __init__(self, *, concurrency=8, stop=None, report=None):
        self.concurrency = max(1, concurrency)
        self.stop = stop or threading.Event()
        self.report = report or (lambda line: None)
        self.wake = wakeup.deliveries_written
        self.sent = {DELIVERED: 0, PENDING: 0, FAILED: 0}

    def _done(self, future):
        state = None if future.cancelled() or future.exception() else future.result()
        if future.exception() is not None:
            log.error("webhook delivery crashed", exc_info=future.exception())
        if state in self.sent:
            self.sent[state] += 1
        self.wake.set()

    def run(self, *, once=False):
        in_flight = set()
        listener = RedisWake(self.wake) if not once else None
        if listener:
            listener.start()
        with _client() as client, ThreadPoolExecutor(self.concurrency, "webhook") as pool:
            try:
                while not self.stop.is_set():
                    self.wake.clear()
                    in_flight = {f for f in in_flight if not f.done()}
                    taken = []
                    free = self.concurrency - len(in_flight)
                    if free > 0:
                        try:
                            taken = claim_due(free)
                        except Exception:  # a locked or unreachable database: try again
                            log.exception("could not claim webhook deliveries")
                        finally:
                            _drop_stale_connection()
                    for pk in taken:
                        future = pool.submit(deliver, pk, client)
                        future.add_done_callback(self._done)
                        in_flight.add(future)
                    if once and not taken and not in_flight:
                        break
                    if taken and len(in_flight) < self.concurrency:
                        continue  # more may be due at once
                    self.wake.wait(config.poll_seconds())
            finally:
                if listener:
                    listener.stop()
                for future in in_flight:
                    future.result()
        return self.sent


class RedisWake:
    """Wake a worker through the channel layer when another process wrote deliveries.

    Only with the Redis layer: the in-memory one cannot reach another process, and a worker in
    the server's own process is woken by ``wakeup.deliveries_written`` directly.
    """

    def __init__(self, wake):
        self.wake = wake
        self._thread = None
        self._stopping = threading.Event()

    def start(self):
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        if layer is None or "redis" not in type(layer).__module__:
            return
        self._thread = threading.Thread(
            target=self._run, args=(layer,), name="webhook-wake", daemon=True
        )
        self._thread.start()

    def stop(self):
        self._stopping.set()

    def _run(self, layer):
        import asyncio

        async def listen():
            channel = await layer.new_channel()
            await layer.group_add(wakeup.WORKER_GROUP, channel)
            try:
                while not self._stopping.is_set():
                    try:
                        await asyncio.wait_for(layer.receive(channel), timeout=1.0)
                        self.wake.set()
                    except TimeoutError:
                        continue
            finally:
                await layer.group_discard(wakeup.WORKER_GROUP, channel)

        try:
            asyncio.run(listen())
        except Exception:  # the worker still polls
            log.exception("webhook wake-up listener stopped")
