"""Return active tasks whose lease ran out to Ready (rule 9), once or in a loop."""

import time

from django.core.management.base import BaseCommand, CommandError

from tasks_app.cli import sweep_once


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
