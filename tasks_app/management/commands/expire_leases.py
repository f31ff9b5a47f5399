"""Return active tasks whose lease ran out to Ready (rule 9), once or in a loop."""

import asyncio
import logging
import time

from asgiref.sync import sync_to_async
from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections, connection

from tasks_app import workflow

log = logging.getLogger(__name__)


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


class Command(BaseCommand):
    help = (
        "Return active tasks whose lease ran out to Ready with a 'stalled' note. Runs once, or "
        "every SECONDS with --loop (run it as its own process next to the servers)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--loop",
            type=float,
            metavar="SECONDS",
            default=None,
            help="Sweep every SECONDS until interrupted.",
        )

    def handle(self, *args, **options):
        interval = options["loop"]
        if interval is None:
            count = sweep_once()
            self.stdout.write(f"Returned {count} task(s) with an expired lease to Ready.")
            return
        if interval <= 0:
            raise CommandError("--loop takes a number of seconds above 0.")
        self.stdout.write(f"Expiring leases every {interval:g} s (Ctrl-C stops).")
        try:
            while True:
                try:
                    count = sweep_once()
                except Exception as exc:  # the database may be down for a moment; retry
                    self.stderr.write(f"Lease sweep failed: {exc}")
                else:
                    if count:
                        self.stdout.write(f"Returned {count} task(s) to Ready.")
                time.sleep(interval)
        except KeyboardInterrupt:
            self.stdout.write("Stopped.")
