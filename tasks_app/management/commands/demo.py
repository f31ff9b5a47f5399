"""Run the living demo: migrate, load the examples, create a login, serve, simulate pods.

One server process (uvicorn, in this process) serves the board, the API, MCP and the
websockets, so the in-memory channel layer reaches every open board and every long-poll. The
lease sweeper runs on the server's event loop; the webhook delivery worker and the pod simulator
run in threads (the simulator as an HTTP client of that same server, with DevPod waiting by
long-poll and QAPod by webhook).
"""

import asyncio
import os
import threading
from pathlib import Path

import httpx
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from tasks_app import yamlio
from tasks_app.cli import (
    SimulatedWebhooks,
    add_simulator_options,
    check_simulator_options,
    describe_import,
    issue_tokens,
    simulator_for,
    sweep_forever,
    wait_for_server,
)
from tasks_app.history import fill as fill_history
from tasks_app.models import Pod, PodToken, Task
from tasks_app.push.worker import Worker

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "podboard-demo"
DEMO_LEASE_SECONDS = 20
DEMO_HISTORY_DAYS, DEMO_HISTORY_TASKS = 14, 600
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


class Command(BaseCommand):
    help = (
        "Start the demo: migrate, load examples/tasks into an empty database, create the "
        "'demo' login, serve PodBoard and run simulated pods against it. Ctrl-C stops it all."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--examples",
            default=str(Path(settings.BASE_DIR) / "examples/tasks"),
            help="Task directory loaded when the database has no tasks.",
        )
        parser.add_argument(
            "--history",
            type=int,
            default=DEMO_HISTORY_DAYS,
            metavar="DAYS",
            help="Days of past work written before the examples into an empty database, so "
            "the flow metrics have something to show (default %(default)s; 0 for none).",
        )
        parser.add_argument(
            "--no-serve",
            action="store_true",
            help="Only prepare (migrate, load, create the login); do not serve.",
        )
        parser.add_argument(
            "--no-simulator", action="store_true", help="Serve without the simulated pods."
        )
        add_simulator_options(parser)
        parser.add_argument(
            "--lease-seconds",
            type=int,
            default=None,
            help="Lease length; default PODBOARD_LEASE_SECONDS if set, else "
            f"{DEMO_LEASE_SECONDS} so a stalled pod's lease expires while "
            "you watch.",
        )
        parser.add_argument(
            "--sweep-seconds",
            type=float,
            default=5.0,
            help="How often the server expires leases (default %(default)s).",
        )

    def handle(self, *args, **options):
        check_simulator_options(options)
        self.prepare(examples=Path(options["examples"]), history_days=options["history"])
        url = f"http://{_url_host(options['host'])}:{options['port']}"
        self.banner(url, options["host"])
        if options["no_serve"]:
            return
        lease = options["lease_seconds"]
        if lease is None:
            lease = int(os.environ.get("PODBOARD_LEASE_SECONDS") or DEMO_LEASE_SECONDS)
        if lease < 1 or options["sweep_seconds"] <= 0:
            raise CommandError("--lease-seconds and --sweep-seconds must be above 0.")
        # The server runs in this process, so the settings reach every request it answers.
        settings.PODBOARD_LEASE_SECONDS = lease
        settings.PODBOARD_PUBLIC_URL = public_url(url)
        self.stdout.write(
            f"Leases last {lease} s; the server expires them every {options['sweep_seconds']:g} s."
        )
        self.serve(url, options)

    # Setup -----------------------------------------------------------------------------------

    def prepare(self, *, examples, history_days=0):
        """Migrate, fill an empty database with past work and the example tasks, ensure the
        demo login."""
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("Database is migrated.")
        if Task.objects.exists():
            self.stdout.write(f"Keeping the {Task.objects.count()} task(s) already loaded.")
        else:
            with transaction.atomic():  # examples that do not load leave no history behind
                if history_days > 0:
                    self.write_history(history_days)
                self.load_examples(examples)
        users = get_user_model()
        user = users.objects.filter(username=DEMO_USERNAME).first()
        if user is None:
            users.objects.create_superuser(DEMO_USERNAME, "", DEMO_PASSWORD)
            self.password_note = f"password {DEMO_PASSWORD}"
        else:
            self.password_note = f"password unchanged (created as {DEMO_PASSWORD})"

    def write_history(self, days):
        """Fill the empty database with ``days`` of past work, before the examples so the
        Event sequence runs in time order (DevPod's work went through QAPod's review)."""
        written = fill_history(count=DEMO_HISTORY_TASKS, days=days, review={"DevPod": "QAPod"})
        self.stdout.write(
            f"Wrote {days} days of past work for the flow metrics: {written['tasks']} task(s), "
            f"{written['events']} event(s)."
        )

    def load_examples(self, examples):
        if not examples.is_dir():
            self.stdout.write(
                self.style.WARNING(
                    f"No example directory at {examples}; starting with an empty board."
                )
            )
            return
        try:
            summary = yamlio.import_directory(examples, actor="demo")
        except yamlio.ImportErrors as exc:
            raise CommandError(f"The examples in {examples} do not load:\n{exc}") from exc
        self.stdout.write(f"Loaded the examples from {examples}: {describe_import(summary)}")
        self.show_review()

    def show_review(self):
        """Put DevPod's work through review, decided by QAPod (or a person on the board first),
        so the demo shows the Review column, approvals and change requests."""
        reviewer = Pod.objects.filter(name="QAPod").first()
        if reviewer is not None:
            Pod.objects.filter(name="DevPod").update(review_required=True, reviewer=reviewer)
            self.stdout.write("DevPod's completions wait in Review (QAPod reviews them).")

    def banner(self, url, host):
        line = "=" * 64
        self.stdout.write(self.style.SUCCESS(line))
        self.stdout.write(self.style.SUCCESS(f"  PodBoard demo: {url}/"))
        self.stdout.write(self.style.SUCCESS(f"  Log in: {DEMO_USERNAME}, {self.password_note}"))
        self.stdout.write(self.style.SUCCESS(f"  Admin: {url}/admin/   API docs: {url}/api/docs"))
        self.stdout.write(self.style.SUCCESS(line))
        if host not in LOCAL_HOSTS:
            self.stdout.write(
                self.style.WARNING(
                    f"Listening on {host}: the demo login has a known password. Change it in the "
                    "admin, or bind to 127.0.0.1."
                )
            )

    # Serving ---------------------------------------------------------------------------------

    def serve(self, url, options):
        import uvicorn

        from podboard.asgi import application

        server = uvicorn.Server(
            uvicorn.Config(
                application,
                host=options["host"],
                port=options["port"],
                lifespan="off",
                log_level="warning",
                ws_ping_interval=20,
            )
        )
        stop = threading.Event()
        # The webhook delivery worker (in production: manage.py deliver_webhooks).
        delivery = threading.Thread(
            target=Worker(stop=stop).run, name="webhook-worker", daemon=True
        )
        simulator_thread = None
        tokens = []
        if not options["no_simulator"]:
            pods = ["ProductPod", "DevPod", "QAPod"]
            raw, tokens = issue_tokens(pods, label="demo simulator")
            simulator_thread = threading.Thread(
                target=self.simulate,
                name="pod-simulator",
                daemon=True,
                args=(url, raw, pods, options, stop),
            )

        async def main():
            sweeper = asyncio.create_task(
                sweep_forever(
                    options["sweep_seconds"],
                    report=lambda n: self.stdout.write(
                        f"Lease sweeper: {n} stalled task(s) back in Ready."
                    ),
                )
            )
            watcher = asyncio.create_task(_stop_when_exiting(server, stop))
            try:
                await server.serve()
            finally:
                sweeper.cancel()
                watcher.cancel()

        delivery.start()
        if simulator_thread is not None:
            simulator_thread.start()
        self.stdout.write(f"Serving on {url}/ (Ctrl-C stops). MCP: {url}/mcp/")
        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            pass  # uvicorn re-raises the signal after its graceful shutdown
        finally:
            stop.set()
            if simulator_thread is not None:
                simulator_thread.join(timeout=10)
            delivery.join(timeout=15)
            PodToken.objects.filter(pk__in=[t.pk for t in tokens]).update(revoked_at=timezone.now())
        self.stdout.write("Stopped.")

    def simulate(self, url, tokens, pods, options, stop):
        with httpx.Client(base_url=url, timeout=15) as http:
            try:
                wait_for_server(http, timeout=30, stop=stop)
            except CommandError as exc:
                self.stderr.write(str(exc))
                return
            simulator = simulator_for(
                http,
                tokens,
                pods=pods,
                options=options,
                stop=stop,
                log=lambda line: self.stdout.write(f"sim {line}"),
            )
            with SimulatedWebhooks(simulator):
                simulator.run()
            self.stdout.write(f"Simulator stopped: {simulator.stats.line()}.")


async def _stop_when_exiting(server, stop):
    """Stop the simulator as soon as the server begins to shut down, not after it finished."""
    while not server.should_exit:
        await asyncio.sleep(0.2)
    stop.set()


def public_url(served_url):
    """Return the public URL the demo announces (the OpenAPI ``servers`` entry): the
    operator's ``PODBOARD_PUBLIC_URL`` when set, else the URL the demo serves on, port included."""
    configured = os.environ.get("PODBOARD_PUBLIC_URL", "").strip()
    return configured.rstrip("/") if configured else served_url


def _url_host(host):
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
