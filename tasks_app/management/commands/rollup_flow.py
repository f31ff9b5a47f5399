"""``manage.py rollup_flow [--days 365] [--rebuild]``: roll up the flow metrics of closed days.

The metrics roll a closed day up the first time a window asks for it, so this is never needed
for correct figures: run it after a deploy to spare the first request that work, or with
``--rebuild`` after Events were written into past days by anything but the rules
(``tasks_app.insight.rollup``).
"""

import time
from datetime import timedelta

from django.core.management.base import BaseCommand
from django.db import transaction

from tasks_app.insight import rollup
from tasks_app.insight.flow import MAX_DAYS


class Command(BaseCommand):
    help = "Roll up the flow metrics of the last DAYS closed days (from the Events)."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=MAX_DAYS)
        parser.add_argument(
            "--rebuild", action="store_true", help="drop those days' rollups and roll them again"
        )

    def handle(self, *args, days, rebuild, **options):
        started = time.perf_counter()
        if rebuild:
            count = rollup.rebuild(days)
        else:
            live = rollup.live_day()
            with transaction.atomic():
                rollup.ensure(live - timedelta(days=days))
            count = days
        if options["verbosity"]:
            seconds = time.perf_counter() - started
            self.stdout.write(f"{count} closed days rolled up ({seconds:.1f} s).")
