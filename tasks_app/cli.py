"""What the management commands share: the lease sweeper, pod tokens for simulated pods,
waiting for a server, import summaries, and the stream their progress goes to.

Commands import from here, never from one another, so each command module stays a thin
argument parser around library code.
"""

import asyncio
import logging
import sys
import time

import httpx
from asgiref.sync import sync_to_async
from django.core.management.base import CommandError
from django.db import close_old_connections, connection

from . import workflow
from .models import Pod, PodToken
from .simulator import PodApi, Simulator
from .yamlio import Progress

log = logging.getLogger(__name__)


# Leases --------------------------------------------------------------------------------------


def _drop_stale_connection():
    # A long-lived loop must not keep a dead or expired connection; one inside a transaction
    # (a caller's atomic block) is not ours to close.
    if not connection.in_atomic_block:
        close_old_connections()


def sweep_once():
    """Expire every ran-out lease; return how many tasks went back to Ready."""
    _drop_stale_connection()
    try:
        return workflow.expire_leases()
    finally:
        _drop_stale_connection()


async def sweep_forever(interval, *, report=None):
    """Expire leases every ``interval`` seconds inside a running event loop (the demo server).

    Running on the server's loop (not in a thread of its own) lets the in-memory channel
    layer deliver the announcements to the boards connected to this process.
    """
    sweep = sync_to_async(sweep_once, thread_sensitive=True)
    while True:
        await asyncio.sleep(interval)
        try:
            count = await sweep()
        except Exception:  # keep sweeping: one failure (a locked database) is not fatal
            log.exception("lease sweep failed")
            continue
        if count and report is not None:
            report(count)


# Simulated pods ------------------------------------------------------------------------------


def issue_tokens(pod_names, *, label="simulate_pods"):
    """Return ``(raw tokens by pod name, the PodToken rows)``, creating missing pods."""
    raw, rows = {}, []
    for order, name in enumerate(pod_names):
        pod, _ = Pod.objects.get_or_create(name=name, defaults={"order": order})
        token, raw[name] = PodToken.issue(pod=pod, label=label)
        rows.append(token)
    return raw, rows


def add_simulator_options(parser):
    """Add the simulated pods' options: ``--instances``, ``--speed``, ``--seed``."""
    parser.add_argument(
        "--instances", type=int, default=2, help="Instances per pod (default %(default)s)."
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="Pace multiplier: 1 ≈ one action every 1–3 s per instance; "
        "2 is twice as fast; 0 means no waiting at all.",
    )
    parser.add_argument("--seed", type=int, default=None, help="Seed for a repeatable run.")
    parser.add_argument(
        "--long-poll",
        default="DevPod",
        metavar="PODS",
        help="Pods (comma-separated) whose idle instances wait with next's long-poll "
        "(default %(default)s; '' for none).",
    )
    parser.add_argument(
        "--webhook",
        default="QAPod",
        metavar="PODS",
        help="Pods whose idle instances wait for a webhook, received on this machine "
        "(default %(default)s; '' for none). Sets those pods' webhook URL while running.",
    )


def check_simulator_options(options):
    """Raise CommandError for simulator options that cannot run."""
    if options["instances"] < 1:
        raise CommandError("--instances must be at least 1.")
    if options["speed"] < 0:
        raise CommandError("--speed cannot be negative.")


def _names(text):
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def simulator_for(http, tokens, *, pods, options, stop, log):
    """Return a ``Simulator`` of ``pods`` acting through ``http`` with ``tokens`` by pod."""
    return Simulator(
        PodApi(http, tokens),
        pods=pods,
        instances=options["instances"],
        speed=options["speed"],
        seed=options["seed"],
        stop=stop,
        log=log,
        long_poll=[p for p in _names(options.get("long_poll")) if p in pods],
        webhook=[p for p in _names(options.get("webhook")) if p in pods],
    )


class SimulatedWebhooks:
    """Point the simulator's webhook pods at a receiver on this machine while it runs, and
    put their previous webhook back afterwards."""

    def __init__(self, simulator):
        self.simulator = simulator
        self.inbox = None
        self.previous = {}

    def __enter__(self):
        from .push.pods import set_webhook
        from .simulator import WebhookInbox

        pods = {p.name: p for p in Pod.objects.filter(name__in=self.simulator.webhook)}
        if not pods:
            return self
        self.previous = {n: (p.webhook_url, p.webhook_secret) for n, p in pods.items()}
        self.inbox = WebhookInbox(self.simulator.notify)
        for name, pod in pods.items():
            self.inbox.add(name, set_webhook(pod, self.inbox.url_for(name)))
        return self

    def __exit__(self, *exc):
        for name, (url, secret) in self.previous.items():
            Pod.objects.filter(name=name).update(webhook_url=url, webhook_secret=secret)
        if self.inbox is not None:
            self.inbox.close()


def wait_for_server(http, *, timeout, stop=None):
    """Return once the server answers; raise CommandError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if http.get("/api/openapi.json").status_code < 500:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or (stop is not None and stop.is_set()):
            raise CommandError(f"No PodBoard answers at {http.base_url} (waited {timeout:g} s).")
        time.sleep(0.2)


# Import and export ---------------------------------------------------------------------------


def describe_import(summary, *, dry_run=False):
    """Return a one-paragraph account of an import summary."""
    created, updated, unchanged = summary["created"], summary["updated"], summary["unchanged"]
    verb = ("would create", "would update") if dry_run else ("created", "updated")
    lines = [
        f"{len(created) + len(updated) + len(unchanged)} task(s): {len(created)} {verb[0]}, "
        f"{len(updated)} {verb[1]}, {len(unchanged)} unchanged."
    ]
    if updated and len(updated) <= 20:
        lines.append(f"Updated: {', '.join(updated)}.")
    if summary["pods_created"]:
        lines.append(f"Pods {verb[0]}: {', '.join(summary['pods_created'])}.")
    if summary["pods_updated"]:
        lines.append(f"Pods {verb[1]}: {', '.join(summary['pods_updated'])}.")
    if dry_run:
        lines.append("Dry run: nothing was written.")
    return "\n".join(lines)


PROGRESS_SECONDS = 3.0


def add_progress_option(parser):
    parser.add_argument(
        "--progress",
        action="store_true",
        help="Draw the progress bar even when stderr is not a terminal "
        "(otherwise a line every few seconds).",
    )
    parser.add_argument(
        "--progress-seconds",
        type=float,
        default=PROGRESS_SECONDS,
        metavar="S",
        help="When stderr is not a terminal, write a progress line at most every S seconds "
        "(default %(default)s).",
    )


def progress_for(options, *, force=False):
    """Return a ``Progress`` on the stream behind a command's stderr.

    ``call_command(..., stderr=stream)`` hands the stream in ``options``; from a shell it is
    ``sys.stderr``. ``force`` draws the bar even when that is not a terminal.
    """
    return Progress(
        options.get("stderr") or sys.stderr,
        bar=True if force else None,
        every=options.get("progress_seconds", PROGRESS_SECONDS),
    )
