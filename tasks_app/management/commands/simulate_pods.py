"""Play ProductPod, DevPod and QAPod instances against a running PodBoard through its API."""

import threading
import time

import httpx
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from tasks_app.models import Pod, PodToken
from tasks_app.simulator import PodApi, Simulator

DEFAULT_PODS = "ProductPod,DevPod,QAPod"


def issue_tokens(pod_names, *, label="simulate_pods"):
    """Return ``(raw tokens by pod name, the PodToken rows)``, creating missing pods."""
    raw, rows = {}, []
    for order, name in enumerate(pod_names):
        pod, _ = Pod.objects.get_or_create(name=name, defaults={"order": order})
        token, raw[name] = PodToken.issue(pod=pod, label=label)
        rows.append(token)
    return raw, rows


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
        if options["instances"] < 1:
            raise CommandError("--instances must be at least 1.")
        if options["speed"] < 0:
            raise CommandError("--speed cannot be negative.")
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
            simulator = Simulator(
                PodApi(http, tokens),
                pods=pods,
                instances=options["instances"],
                speed=options["speed"],
                seed=options["seed"],
                stop=stop,
                log=lambda line: self.stdout.write(line),
            )
            self.stdout.write(
                f"Simulating {', '.join(pods)} × {options['instances']} against {options['url']}"
                " (Ctrl-C stops)."
            )
            try:
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
