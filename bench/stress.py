#!/usr/bin/env python
"""Stress PodBoard end to end: simulated pods work a task graph through the HTTP API while
boards watch over websockets; then prove from the database that nothing went wrong.

    python bench/stress.py            # short form: the same checks on small numbers (< 2 min)
    python bench/stress.py --full     # 16 pods, 20,000 tasks, 20 boards, 3 server workers
    python bench/stress.py --embedded # either form on the embedded default (SQLite, 1 process)

What runs: a dedicated PostgreSQL database (dropped and created), migrated; a task graph of
ProductPod → DevPod → QAPod chains with cross-chain dependencies and sync/async/auto modes;
uvicorn with several workers sharing the Redis channel layer (a dedicated Redis db); pods as
asyncio HTTP clients doing ``next`` → (``trace``) → ``complete``, a deterministic share of them
scaling out (``handoff_to_same_pod``); boards as logged-in websocket clients; and a board
observer in a process of its own (``bench/observer.py``: its own board socket, a probe task
filed every 0.5 s in a pod of its own, each timed from the API's answer to the frame naming
it), so the live delay reported is the server's, not the load generator's own starvation.

Afterwards, from the database: every task done exactly once, no double claim (events and the
claimers' own answers), no lost task, every successor started after all its dependencies,
every scale-out's successors waited for the continuation, the event log replays to the final
state, zero 5xx. Prints a markdown table of figures (and ``--json PATH``). Exit status 1 when a
check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import sys
import time
import zlib
from collections import Counter
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import machine_info, machine_table, markdown_table, percentile  # noqa: E402
from bench.floor import bare_sql_claim_floor  # noqa: E402
from tests.support.consistency import check_consistency  # noqa: E402
from tests.support.databases import drop_database, recreate_database, remove_sqlite  # noqa: E402
from tests.support.servers import AsgiServer, django_env  # noqa: E402
from tests.support.sessions import session_cookie_for  # noqa: E402

DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/stresspb"
DEFAULT_REDIS = "redis://127.0.0.1:6379/5"
POD_TYPES = ("ProductPod", "DevPod", "QAPod")
OBSERVER_POD = "ObserverPod"
SEQ_RE = re.compile(r'data-seq="(\d+)"')
# The server's own lag figure on a frame (ms): what the board's outbox reported when it sent.
LAG_RE = re.compile(r'<div id="live-meta"[^>]*?data-lag="(\d+)"')

SHORT = {"tasks": 600, "pods": 6, "boards": 4, "workers": 2, "floor_rows": 1500}
FULL = {"tasks": 20_000, "pods": 16, "boards": 20, "workers": 3, "floor_rows": 6000}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="the full run (20,000 tasks)")
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="the embedded default instead: a SQLite file under var/, one server process, the "
        "in-memory channel layer (no floor)",
    )
    parser.add_argument("--tasks", type=int, help="how many tasks to generate")
    parser.add_argument("--pods", type=int, help="concurrent pod instances (of 3 types)")
    parser.add_argument("--boards", type=int, help="websocket boards connected")
    parser.add_argument("--workers", type=int, help="uvicorn worker processes")
    parser.add_argument("--database-url", default=os.environ.get("STRESS_DATABASE_URL", DEFAULT_PG))
    parser.add_argument("--redis-url", default=os.environ.get("STRESS_REDIS_URL", DEFAULT_REDIS))
    parser.add_argument("--port", type=int, help="server port (default: a free one in 8500-8599)")
    parser.add_argument("--scale-percent", type=int, default=6, help="tasks that scale out")
    parser.add_argument("--trace-percent", type=int, default=25, help="tasks that send a trace")
    parser.add_argument("--timeout", type=float, help="give up after this many seconds of work")
    parser.add_argument("--stall-seconds", type=float, default=45.0, help="no progress → stop")
    parser.add_argument("--pool-max", type=int, default=8, help="DB pool size per worker")
    parser.add_argument("--no-floor", action="store_true", help="skip the bare-SQL claim floor")
    parser.add_argument("--keep-db", action="store_true", help="keep the database afterwards")
    parser.add_argument("--json", help="also write the figures and checks to this file")
    parser.add_argument("--log", help="server log file (default var/stress-server.log)")
    args = parser.parse_args(argv)
    sizes = FULL if args.full else SHORT
    if args.embedded:
        sizes = {**sizes, "workers": 1}
        args.database_url = f"sqlite:///{ROOT / 'var' / f'stress-{os.getpid()}.sqlite3'}"
        args.redis_url, args.no_floor = "", True
    for key in ("tasks", "pods", "boards", "workers"):
        if getattr(args, key) is None:
            setattr(args, key, sizes[key])
    args.floor_rows = sizes["floor_rows"]
    if args.timeout is None:
        args.timeout = 3600.0 if args.full else 150.0
    if args.pods < 3:
        parser.error("--pods must be at least 3 (one per pod type)")
    if not args.embedded and not args.database_url.startswith("postgres"):
        parser.error("the stress run needs PostgreSQL (--database-url postgres://…) or --embedded")
    if args.embedded and args.workers != 1:
        parser.error("the embedded default serves from one process (--workers 1)")
    return args


def setup_django(database_url, redis_url):
    os.environ["DJANGO_SETTINGS_MODULE"] = "podboard.settings"
    os.environ["DATABASE_URL"] = database_url
    os.environ["REDIS_URL"] = redis_url
    import django

    django.setup()


# The task graph ------------------------------------------------------------------------------


def chain_ids(c):
    return f"PROD-{c:05d}", f"DEV-{c:05d}", f"QA-{c:05d}"


def seed(n_tasks):
    """Write the pods, an auto-mode rule and ``n_tasks`` tasks in chains; return task ids.

    Chain ``c`` is PROD → DEV → QA (dependency and baton). Every 5th DEV also waits for the
    previous chain's PROD, every 7th QA for the DEV two chains back (fan-in). Modes rotate
    sync/async/auto; DevPod has a WIP limit so ``auto`` resolves both ways; a rule makes ``qa``
    successors of ``auto`` tasks start async. Each task gets its ``created`` event.
    """
    from django.db import transaction
    from django.utils import timezone

    from tasks_app.models import AutoModeRule, Event, Pod, Task

    modes = ("sync", "async", "auto")
    types = ("spec", "build", "qa")
    now = timezone.now() - timedelta(hours=1)
    with transaction.atomic():
        pods = [
            Pod.objects.create(name="ProductPod", order=0),
            Pod.objects.create(name="DevPod", order=1, wip_limit=4),
            Pod.objects.create(name="QAPod", order=2),
        ]
        AutoModeRule.objects.create(task_type="qa", mode="async", note="QA batches its work")
        chains = (n_tasks + 2) // 3
        tasks, deps = [], []
        for c in range(chains):
            ids = chain_ids(c)
            for level, task_id in enumerate(ids):
                if len(tasks) >= n_tasks:
                    break
                tasks.append(
                    Task(
                        id=task_id,
                        title=f"{types[level]} for feature {c}",
                        pod_owner=pods[level],
                        task_type=types[level],
                        priority=(c % 4),
                        handoff_mode=modes[(c + level) % 3],
                        handoff_from_id=ids[level - 1] if level else None,
                        prompt=f"Work on feature {c}, step {types[level]}.",
                        inputs={"feature": c},
                        created_at=now + timedelta(milliseconds=c),
                    )
                )
                if level:
                    deps.append((task_id, ids[level - 1]))
            if c and c % 5 == 0 and len(tasks) > 3 * c + 1:
                deps.append((ids[1], chain_ids(c - 1)[0]))
            if c > 1 and c % 7 == 0 and len(tasks) > 3 * c + 2:
                deps.append((ids[2], chain_ids(c - 2)[1]))
        Task.objects.bulk_create(tasks, batch_size=2000)
        Through = Task.depends_on.through
        Through.objects.bulk_create(
            [Through(from_task_id=a, to_task_id=b) for a, b in deps], batch_size=5000
        )
        Event.objects.bulk_create(
            [
                Event(
                    task_id=t.id,
                    task_key=t.id,
                    kind="created",
                    actor="stress",
                    to_status="ready",
                    to_pod=t.pod_owner.name,
                    created_at=now,
                )
                for t in tasks
            ],
            batch_size=5000,
        )
    return [t.id for t in tasks], len(deps)


def issue_tokens():
    from tasks_app.models import Pod, PodToken

    return {pod.name: PodToken.issue(pod=pod, label="stress")[1] for pod in Pod.objects.all()}


def board_sessions(n):
    """Return ``n`` session keys of logged-in board users."""
    from django.contrib.auth import get_user_model

    User = get_user_model()
    keys = []
    for i in range(n):
        user = User.objects.create_user(f"lead{i}", password="stress-password-1")
        keys.append(session_cookie_for(user))
    return keys


def pod_instances(n):
    """Spread ``n`` instances over the three pod types: DevPod gets the remainder first."""
    base, extra = divmod(n, 3)
    counts = {"ProductPod": base, "DevPod": base + (extra > 0), "QAPod": base + (extra > 1)}
    return [(pod, f"{pod}#{i + 1}") for pod, k in counts.items() for i in range(k)]


def should_scale(task_id, percent):
    """Decide, the same way every run, whether ``task_id`` scales out (at most twice a root)."""
    return task_id.count(".") < 2 and zlib.crc32(task_id.encode()) % 100 < percent


def should_trace(task_id, percent):
    return zlib.crc32(b"trace:" + task_id.encode()) % 100 < percent


# The run -------------------------------------------------------------------------------------


class Run:
    """Everything the pods and boards observe while the run goes."""

    def __init__(self, args):
        self.args = args
        self.stop = asyncio.Event()
        self.statuses = Counter()
        self.latency = {"next": [], "trace": [], "complete": []}
        self.server_errors = []
        self.transport_errors = []
        self.claims = []  # (task id, instance) from each 200 answer of next
        self.completed = Counter()
        self.completion_problems = []
        self.modes = Counter()
        self.scale_outs = 0
        self.board_messages = Counter()
        self.board_last_seq = {}
        self.board_disconnects = 0
        self.board_connected = set()
        self.receipts = []  # (seq, wall time)
        self.board_lags = []  # data-lag of every frame any of the boards received (ms)
        self.observer = None  # bench/observer.py's report
        self.progress_at = time.monotonic()


async def call(run, client, kind, path, body):
    began = time.perf_counter()
    try:
        response = await client.post(path, json=body)
    except Exception as exc:  # noqa: BLE001 - every transport failure is a finding
        run.transport_errors.append(f"{kind} {path}: {exc!r}")
        await asyncio.sleep(0.2)
        return None
    run.latency[kind].append(time.perf_counter() - began)
    run.statuses[(kind, response.status_code)] += 1
    if response.status_code >= 500:
        run.server_errors.append(f"{kind} {path}: {response.status_code} {response.text[:300]}")
    return response


async def pod_loop(run, base_url, token, pod, instance):
    import httpx

    idle = 0.02
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as client:
        while not run.stop.is_set():
            r = await call(
                run, client, "next", "/api/tasks/next", {"pod_owner": pod, "instance": instance}
            )
            if r is None or r.status_code >= 500:
                continue
            if r.status_code == 204:
                await asyncio.sleep(idle)
                idle = min(idle * 2, 0.3)
                continue
            if r.status_code != 200:
                run.completion_problems.append(
                    f"next for {instance}: {r.status_code} {r.text[:200]}"
                )
                await asyncio.sleep(0.2)
                continue
            idle = 0.02
            task_id = r.json()["task"]["id"]
            run.claims.append((task_id, instance))
            if should_trace(task_id, run.args.trace_percent):
                await call(
                    run,
                    client,
                    "trace",
                    f"/api/tasks/{task_id}/trace",
                    {
                        "instance": instance,
                        "steps": [{"action": "read the start context", "rationale": "stress"}],
                        "token_count": 500,
                    },
                )
            scale = should_scale(task_id, run.args.scale_percent)
            body = {
                "instance": instance,
                "outputs": [{"name": "result", "uri": f"mem://{task_id}", "summary": "done"}],
                "handoff_note": f"{task_id} finished by {instance}.",
                "reasoning_trace": {
                    "summary": f"{instance} did {task_id}.",
                    "steps": [{"action": "work", "rationale": "stress run", "tokens": 100}],
                },
                "token_count": 15_000 if scale else 1_000,
                "handoff_to_same_pod": scale,
                "reason": "capacity_reached" if scale else "",
            }
            r = await call(run, client, "complete", f"/api/tasks/{task_id}/complete", body)
            if r is None or r.status_code != 200:
                if r is not None and r.status_code < 500:
                    run.completion_problems.append(
                        f"complete {task_id} by {instance}: {r.status_code} {r.text[:200]}"
                    )
                continue  # next gives the held task back, so the completion is retried
            answer = r.json()
            run.completed[task_id] += 1
            run.progress_at = time.monotonic()
            if scale:
                run.scale_outs += 1
                if not answer.get("continuation"):
                    run.completion_problems.append(f"{task_id}: scale-out without continuation")
            for successor in answer.get("successors", []):
                run.modes[successor.get("mode")] += 1


async def board_loop(run, ws_url, origin, session_key, cookie_name, index):
    """Stay connected as a logged-in board; reconnect with ``since`` as the board page does."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    attempts = 0
    while not run.stop.is_set() and attempts < 20:
        since = run.board_last_seq.get(index)
        url = ws_url + "/ws/board/" + (f"?since={since}" if since else "")
        try:
            async with connect(
                url,
                origin=origin,
                additional_headers={"Cookie": f"{cookie_name}={session_key}"},
                max_size=None,
                open_timeout=30,
                ping_interval=None,
            ) as ws:
                run.board_connected.add(index)
                async for message in ws:
                    now = time.time()
                    run.board_messages[index] += 1
                    text = message if isinstance(message, str) else message.decode(errors="replace")
                    run.board_lags.extend(int(ms) for ms in LAG_RE.findall(text))
                    seqs = SEQ_RE.findall(text)
                    if seqs:
                        seq = max(int(s) for s in seqs)
                        run.board_last_seq[index] = max(seq, run.board_last_seq.get(index, 0))
                        if index == 0:
                            run.receipts.append((seq, now))
        except (ConnectionClosed, InvalidStatus, OSError, TimeoutError) as exc:
            if run.stop.is_set():
                return
            attempts += 1
            run.board_disconnects += 1
            run.transport_errors.append(f"board {index}: {exc!r}")
            await asyncio.sleep(0.5)


def remaining_tasks():
    from django.db import close_old_connections

    from tasks_app.models import Task

    close_old_connections()
    # The observer's probes wait in its own pod until it completes them at the end.
    return Task.objects.exclude(status="done").exclude(pod_owner__name=OBSERVER_POD).count()


def latest_event():
    from tasks_app.models import Event

    return Event.objects.order_by("-id").values_list("id", flat=True).first() or 0


async def monitor(run, started, board_count):
    """Stop the pods when every task is done, nothing moved for a while, or time is up."""
    last_print = 0.0
    while True:
        await asyncio.sleep(1.0)
        left = await asyncio.to_thread(remaining_tasks)
        elapsed = time.monotonic() - started
        if elapsed - last_print >= 10:
            last_print = elapsed
            done = sum(run.completed.values())
            print(
                f"  {elapsed:6.0f}s  completed {done}  left {left}  "
                f"boards {len(run.board_connected)}/{board_count}  5xx {len(run.server_errors)}",
                file=sys.stderr,
                flush=True,
            )
        if left == 0:
            return "done"
        if time.monotonic() - run.progress_at > run.args.stall_seconds:
            return "stalled"
        if elapsed > run.args.timeout:
            return "timeout"


async def start_observer(server, identity):
    """Start ``bench/observer.py`` against ``server``; it probes until it gets SIGTERM."""
    session, token = identity
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bench" / "observer.py"),
        "--url", server.url,
        "--session", session,
        "--token", token,
        "--pod", OBSERVER_POD,
        "--seconds", "0",
        "--settle", "10",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def observer_report(process):
    """Stop the observer's probes; return its report (None if it failed)."""
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout=120)
        return json.loads(out.decode().strip().splitlines()[-1])
    except (TimeoutError, ValueError, IndexError):
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        return None


def observer_identity():
    """A board user's session and a token of the observer's own pod."""
    from django.contrib.auth import get_user_model

    from tasks_app.models import Pod, PodToken

    user = get_user_model().objects.create_user("observer", password="stress-password-1")
    pod = Pod.objects.create(name=OBSERVER_POD, order=99)
    return session_cookie_for(user), PodToken.issue(pod=pod, label="board observer")[1]


async def drive(args, server, tokens, sessions, observer):
    from django.conf import settings

    run = Run(args)
    origin = server.url
    boards = [
        asyncio.create_task(
            board_loop(run, server.ws_url, origin, key, settings.SESSION_COOKIE_NAME, i)
        )
        for i, key in enumerate(sessions)
    ]
    # Give every board time to join before the work starts.
    for _ in range(200):
        if len(run.board_connected) == len(sessions):
            break
        await asyncio.sleep(0.05)
    watcher = await start_observer(server, observer)
    started = time.monotonic()
    run.progress_at = started
    pods = [
        asyncio.create_task(pod_loop(run, server.url, tokens[pod], pod, instance))
        for pod, instance in pod_instances(args.pods)
    ]
    outcome = await monitor(run, started, len(sessions))
    duration = time.monotonic() - started
    run.stop.set()
    await asyncio.wait(pods, timeout=90)
    for task in pods:
        task.cancel()
    # Let the boards drain: each should reach the newest event.
    final_seq = await asyncio.to_thread(latest_event)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if all(run.board_last_seq.get(i, 0) >= final_seq for i in range(len(sessions))):
            break
        await asyncio.sleep(0.2)
    run.observer = await observer_report(watcher)
    for task in boards:
        task.cancel()
    await asyncio.gather(*boards, *pods, return_exceptions=True)
    return run, outcome, duration, final_seq


# Verdict -------------------------------------------------------------------------------------


def live_delays(receipts):
    """Return the delays (s) from each announced Event's creation to board 0 receiving it."""
    from tasks_app.models import Event

    if not receipts:
        return []
    created = dict(
        Event.objects.filter(id__in=[seq for seq, _ in receipts]).values_list("id", "created_at")
    )
    return [at - created[seq].timestamp() for seq, at in receipts if seq in created]


def verdict(args, run, outcome, duration, final_seq, task_ids, n_deps):
    from tasks_app.models import Event, HandoffNote, Task

    problems = check_consistency(expect_all_done=True)
    by_instance = {}
    for task_id, instance in run.claims:
        by_instance.setdefault(task_id, set()).add(instance)
    problems["double_claims_seen_by_pods"] = sorted(
        f"{t}: {sorted(i)}" for t, i in by_instance.items() if len(i) > 1
    )
    problems["completed_twice_by_pods"] = sorted(t for t, n in run.completed.items() if n > 1)
    known = set(Task.objects.values_list("id", flat=True))
    problems["lost_tasks"] = sorted(set(task_ids) - known)
    problems["server_errors"] = run.server_errors[:50]
    problems["api_refusals"] = run.completion_problems[:50]
    problems["boards_not_connected"] = [
        i for i in range(args.boards) if i not in run.board_connected
    ]
    problems["boards_behind"] = [
        f"board {i} at {run.board_last_seq.get(i, 0)} < {final_seq}"
        for i in range(args.boards)
        if run.board_last_seq.get(i, 0) < final_seq
    ]
    if outcome != "done":
        problems["run"] = [f"stopped: {outcome}"]
    total_tasks = Task.objects.count()
    continuations = Task.objects.exclude(scale_root="").count()
    claims = Event.objects.filter(kind="claimed").count()
    note_modes = Counter(
        HandoffNote.objects.exclude(handoff_type="scale").values_list("mode", flat=True)
    )
    delays = live_delays(run.receipts)
    statuses = Counter()
    for (_, status), n in run.statuses.items():
        statuses[status] += n
    figures = {
        "tasks generated": len(task_ids),
        "dependencies": n_deps,
        "tasks at end (incl. continuations)": total_tasks,
        "scale-outs (continuations)": continuations,
        "pods (instances)": args.pods,
        "server workers": args.workers,
        "boards": args.boards,
        "duration (s)": round(duration, 1),
        "claims": claims,
        "claims/s": round(claims / duration, 1) if duration else 0,
        "requests": sum(statuses.values()),
        "requests/s": round(sum(statuses.values()) / duration, 1) if duration else 0,
        "next p50/p95 (ms)": _ms(run.latency["next"]),
        "complete p50/p95 (ms)": _ms(run.latency["complete"]),
        "trace p50/p95 (ms)": _ms(run.latency["trace"]),
        "HTTP statuses": dict(sorted(statuses.items())),
        "5xx": len(run.server_errors),
        "transport errors": len(run.transport_errors),
        "double claims": len(problems["double_claims"])
        + len(problems["double_claims_seen_by_pods"]),
        "lost tasks": len(problems["lost_tasks"]) + len(problems["not_done"]),
        "handoff notes by mode": dict(note_modes),
        "ws messages received": sum(run.board_messages.values()),
        "ws messages per board (min/max)": (
            f"{min(run.board_messages.values(), default=0)}/"
            f"{max(run.board_messages.values(), default=0)}"
        ),
        "board reconnects": run.board_disconnects,
        "live delay p50/p95 (ms), observer in its own process": _observed(run.observer),
        "server-side lag p50/p95 (ms), on the observer's frames": _observed(
            run.observer, "server_lag_"
        ),
        "observer probes (missing)": _observed_count(run.observer),
        "observer frames (refreshes, past the 2 s note)": _observed_frames(run.observer),
        "live delay p50/p95 (ms), the load generator's boards": _ms(delays),
        "server-side lag p50/p95 (ms), every board's frames": _ms(
            [ms / 1000 for ms in run.board_lags]
        ),
        "events": Event.objects.count(),
    }
    return figures, problems


def _observed(report, prefix=""):
    if not report or report.get(f"{prefix}p50_ms") is None:
        return "–"
    return f"{report[f'{prefix}p50_ms']:.1f}/{report[f'{prefix}p95_ms']:.1f}"


def _observed_count(report):
    return "observer failed" if not report else f"{report['probes']} ({report['missing']})"


def _observed_frames(report):
    if not report:
        return "–"
    return f"{report['frames']} ({report['refreshes']}, {report['lag_notes']})"


def _ms(values):
    if not values:
        return "–"
    return f"{percentile(values, 50) * 1000:.1f}/{percentile(values, 95) * 1000:.1f}"


def report(args, figures, problems, floor, machine):
    failed = {name: items for name, items in problems.items() if items}
    lines = [
        f"### Stress run ({'full' if args.full else 'short'} form"
        f"{', embedded default: SQLite, one process' if args.embedded else ''})",
        "",
        markdown_table(["figure", "value"], list(figures.items())),
        "",
        markdown_table(
            ["check", "result"],
            [
                (name, "ok" if not items else f"FAILED ({len(items)})")
                for name, items in problems.items()
            ],
        ),
    ]
    if floor:
        lines += [
            "",
            "#### Bare-SQL claim floor (PostgreSQL `FOR UPDATE SKIP LOCKED`, no framework)",
            "",
            markdown_table(
                ["rows", "threads", "claims/s", "p50 ms", "p95 ms", "double claims"],
                [
                    (
                        floor["rows"],
                        floor["threads"],
                        floor["claims_per_s"],
                        floor["p50_ms"],
                        floor["p95_ms"],
                        floor["double_claims"],
                    )
                ],
            ),
        ]
    lines += ["", machine_table(machine)]
    if failed:
        lines += ["", "Failures (first few of each):"]
        for name, items in failed.items():
            lines.append(f"- {name}: " + "; ".join(str(i) for i in items[:5]))
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    setup_django(args.database_url, args.redis_url)
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    print(
        f"stress: {args.tasks} tasks, {args.pods} pods, {args.boards} boards, "
        f"{args.workers} workers on {args.database_url} / {args.redis_url}",
        file=sys.stderr,
        flush=True,
    )
    if args.embedded:
        remove_sqlite(args.database_url)
    else:
        recreate_database(args.database_url)
    call_command("migrate", verbosity=0)
    began = time.monotonic()
    task_ids, n_deps = seed(args.tasks)
    tokens = issue_tokens()
    sessions = board_sessions(args.boards)
    observer = observer_identity()
    print(f"  seeded in {time.monotonic() - began:.1f}s", file=sys.stderr, flush=True)
    connections.close_all()
    log_path = args.log or str(ROOT / "var" / "stress-server.log")
    env = django_env(
        database_url=args.database_url,
        redis_url=args.redis_url,
        PODBOARD_LEASE_SECONDS=900,
        # The PostgreSQL server may be shared: keep each worker's pool small.
        PODBOARD_DB_POOL_MAX=args.pool_max,
        ALLOWED_HOSTS="127.0.0.1,localhost",
    )
    server = AsgiServer(env=env, workers=args.workers, port=args.port, log_path=log_path)
    server.start()
    try:
        run, outcome, duration, final_seq = asyncio.run(
            drive(args, server, tokens, sessions, observer)
        )
    finally:
        server.stop()
    figures, problems = verdict(args, run, outcome, duration, final_seq, task_ids, n_deps)
    floor = None
    if not args.no_floor:
        floor = bare_sql_claim_floor(args.database_url, rows=args.floor_rows, threads=4)
        figures["bare-SQL floor claims/s"] = floor["claims_per_s"]
    machine = machine_info(database_url=args.database_url, redis_url=args.redis_url)
    text = report(args, figures, problems, floor, machine)
    print(text)
    # The last run of each form is kept for bench/run_all.py's report.
    form = ("embedded-" if args.embedded else "") + ("full" if args.full else "short")
    keep = ROOT / "var" / "bench" / f"stress-{form}.json"
    keep.parent.mkdir(parents=True, exist_ok=True)
    for path in filter(None, {args.json, str(keep)}):
        Path(path).write_text(
            json.dumps(
                {
                    "form": form,
                    "figures": figures,
                    "problems": problems,
                    "floor": floor,
                    "machine": machine,
                    "markdown": text,
                    "transport_errors": run.transport_errors[:50],
                    "settings": {"database": settings.DATABASES["default"]["NAME"]},
                },
                indent=2,
                default=str,
            )
        )
    connections.close_all()
    if not args.keep_db:
        with contextlib.suppress(Exception):
            if args.embedded:
                remove_sqlite(args.database_url)
            else:
                drop_database(args.database_url)
    return 0 if not any(problems.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
