"""Play ProductPod, DevPod and QAPod instances against a running PodBoard through its API."""

import threading

import httpx
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from tasks_app.cli import (
    SimulatedWebhooks,
    add_simulator_options,
    check_simulator_options,
    issue_tokens,
    simulator_for,
    wait_for_server,
)
from tasks_app.models import PodToken

DEFAULT_PODS = "ProductPod,DevPod,QAPod"


class Command(BaseCommand):
    help = (
        "Simulate pod instances (pull, trace, complete, scale out, stall, hand off) through the "
        "pod API of a running PodBoard. Deterministic with --seed."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--url",
            default="http://127.0.0.1:8000",
            help="PodBoard's base URL (default %(default)s).",
        )
        parser.add_argument(
            "--pods",
            default=DEFAULT_PODS,
            help="Pods in chain order, comma-separated (default %(default)s).",
        )
        add_simulator_options(parser)
        parser.add_argument(
            "--max-actions",
            type=int,
            default=None,
            help="Stop after this many actions (all instances together).",
        )
        parser.add_argument(
            "--duration", type=float, default=None, help="Stop after this many seconds."
        )
        parser.add_argument(
            "--token",
            action="append",
            default=[],
            metavar="POD=TOKEN",
            help="Use this token for POD instead of issuing one (repeatable; "
            "needed when the server uses another database).",
        )
        parser.add_argument(
            "--wait",
            type=float,
            default=30,
            help="Seconds to wait for the server to answer (default %(default)s).",
        )

    def handle(self, *args, **options):
        pods = [name.strip() for name in options["pods"].split(",") if name.strip()]
        if not pods:
            raise CommandError("--pods names no pod.")
        check_simulator_options(options)
        given = {}
        for item in options["token"]:
            name, sep, raw = item.partition("=")
            if not sep or not raw:
                raise CommandError(f"--token takes POD=TOKEN, not {item!r}.")
            given[name.strip()] = raw.strip()
        missing = [name for name in pods if name not in given]
        issued, rows = issue_tokens(missing) if missing else ({}, [])
        tokens = {**issued, **given}

        stop = threading.Event()
        with httpx.Client(base_url=options["url"], timeout=15) as http:
            wait_for_server(http, timeout=options["wait"])
            simulator = simulator_for(
                http, tokens, pods=pods, options=options, stop=stop, log=self.stdout.write
            )
            self.stdout.write(
                f"Simulating {', '.join(pods)} × {options['instances']} against {options['url']}"
                " (Ctrl-C stops)."
            )
            try:
                with SimulatedWebhooks(simulator):
                    stats = simulator.run(
                        max_actions=options["max_actions"], duration=options["duration"]
                    )
            except KeyboardInterrupt:
                stop.set()
                stats = simulator.stats
            finally:
                # Tokens issued for this run die with it.
                PodToken.objects.filter(pk__in=[t.pk for t in rows]).update(
                    revoked_at=timezone.now()
                )
        self.stdout.write(f"Simulator stopped: {stats.line()}.")
