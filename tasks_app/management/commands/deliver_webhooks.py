"""Run the webhook delivery worker (several may run at once, on any machine of the board)."""

import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from tasks_app.push.worker import Worker


class Command(BaseCommand):
    help = (
        "Send due webhook deliveries from the outbox, retrying failures with backoff, until "
        "stopped (SIGINT/SIGTERM). --once sends what is due and exits. Safe to run several."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Send what is due, then exit.")
        parser.add_argument(
            "--concurrency",
            type=int,
            default=8,
            help="Deliveries sent at once by this worker (default %(default)s).",
        )

    def handle(self, *args, once=False, concurrency=8, **options):
        if concurrency < 1:
            raise CommandError("--concurrency must be at least 1.")
        stop = threading.Event()
        if not once and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
        worker = Worker(concurrency=concurrency, stop=stop)
        if not once:
            self.stderr.write(f"Delivering webhooks ({concurrency} at once); Ctrl-C stops.")
        sent = worker.run(once=once)
        self.stdout.write(
            f"Webhooks: {sent['delivered']} delivered, {sent['pending']} to retry, "
            f"{sent['failed']} given up."
        )
