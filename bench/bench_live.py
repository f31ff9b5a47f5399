"""Measure how fast a change made through the API reaches open boards.

Per channel layer (in-memory on SQLite, Redis on PostgreSQL) it starts one uvicorn server and:

1. connects 1, 10 and 100 boards by websocket in this process, makes API calls
   (``POST /api/tasks/{id}/activate``) one after another, and records for every board the
   delay from the API response to the push naming that task (negative: the push came first);
   after each, a pod's ``next`` and ``complete`` on that task, timed, so what open boards cost
   the pod API shows beside the run with no board (issue: ≤ 1.5×);
2. at light load, keeps ``--observer-boards`` boards open (this process only drains them) and
   lets ``bench/observer.py`` measure in a process of its own, so a busy load generator does
   not pass for a slow server: its probe's delay (API answer → frame) and the server's own lag
   figure (``data-lag``);
3. runs the same observer against a *bare* channel-layer app with as many sockets (raw ASGI:
   each socket joins a group, ``POST /send`` does one ``group_send``), the floor the live board
   is held to (issue: p95 ≤ 3× the bare p95 in the same run).

Prints markdown tables.

    .venv/bin/python bench/bench_live.py [--boards 1,10,100] [--calls 40] [--layers memory,redis]
        [--observe-seconds 10] [--observer-boards 100] [--no-observer]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs

import httpx
from websockets.asyncio.client import connect as ws_connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import percentile  # noqa: E402

PG_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/livepb_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
OBSERVER_POD = "ObserverPod"

SETUP = """
import json, sys
from django.contrib.auth import get_user_model
from tasks_app.models import Pod, PodToken, Task
from tests.support.sessions import session_cookie_for

boards, tasks = int(sys.argv[1]), int(sys.argv[2])
user = get_user_model().objects.create_user("bench", password="bench-password-1")
sessions = [session_cookie_for(user) for _ in range(boards + 1)]
pod = Pod.objects.create(name="DevPod")
observer = Pod.objects.create(name=sys.argv[3], order=1000)
Task.objects.bulk_create(
    [Task(id=f"B-{n}", title=f"Bench {n}", pod_owner=pod) for n in range(tasks)]
)
print(json.dumps({
    "sessions": sessions,
    "token": PodToken.issue(pod=pod)[1],
    "observer_token": PodToken.issue(pod=observer, label="observer")[1],
}))
"""


# The bare channel-layer app ------------------------------------------------------------------


class BareApp:
    """The least a channel layer can do for N sockets: each joins one group; ``POST /send``
    makes one ``group_send`` whose text every socket receives. Raw ASGI, no Django.

    The layer is Redis when ``BENCH_BARE_REDIS_URL`` is set, else in-memory.
    """

    GROUP = "bare"

    def __init__(self):
        self.layer = None

    def get_layer(self):
        if self.layer is None:
            url = os.environ.get("BENCH_BARE_REDIS_URL")
            if url:
                from channels_redis.core import RedisChannelLayer

                self.layer = RedisChannelLayer(hosts=[url], capacity=1000, expiry=30)
            else:
                from channels.layers import InMemoryChannelLayer

                self.layer = InMemoryChannelLayer(capacity=1000)
        return self.layer

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self.websocket(receive, send)

    async def http(self, scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        if scope["method"] == "POST" and scope["path"] == "/send":
            text = parse_qs(scope["query_string"].decode()).get("id", [""])[0]
            await self.get_layer().group_send(self.GROUP, {"type": "bare.message", "text": text})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def websocket(self, receive, send):
        await receive()  # websocket.connect
        layer = self.get_layer()
        channel = await layer.new_channel()
        await layer.group_add(self.GROUP, channel)
        await send({"type": "websocket.accept"})

        async def pump():
            while True:
                message = await layer.receive(channel)
                await send({"type": "websocket.send", "text": message["text"]})

        pumping = asyncio.ensure_future(pump())
        try:
            while (await receive())["type"] != "websocket.disconnect":
                pass
        finally:
            pumping.cancel()
            await layer.group_discard(self.GROUP, channel)


bare_app = BareApp()


# Running servers -----------------------------------------------------------------------------


def prepare_database(layer, workdir):
    """Return the environment of a server with an empty, migrated database for ``layer``."""
    from tests.support.databases import recreate_database
    from tests.support.servers import django_env, manage

    if layer == "redis":
        recreate_database(PG_URL)
        env = django_env(database_url=PG_URL, redis_url=REDIS_URL)
    else:
        env = django_env(
            database_url="", redis_url="", PODBOARD_SQLITE_PATH=Path(workdir) / "bench.sqlite3"
        )
    env.update(DEBUG="false", PODBOARD_LEASE_SWEEP_SECONDS="3600", LOG_LEVEL="WARNING")
    manage("migrate", "--noinput", "-v", "0", env=env)
    return env


def server(env, workdir, name, app=None):
    from tests.support.servers import ASGI_APP, AsgiServer

    return AsgiServer(
        env=env,
        app=app or ASGI_APP,
        log_path=Path(workdir) / f"{name}.log",
        options=["--ws-max-queue", "1024", *os.environ.get("BENCH_LIVE_UVICORN", "").split()],
    )


# Measuring -----------------------------------------------------------------------------------


def _loop_figures(loop_ms):
    """``(next p50, next p95, complete p50, complete p95)`` in ms."""
    return tuple(
        figure
        for op in ("next", "complete")
        for figure in (statistics.median(loop_ms[op]), percentile(loop_ms[op], 95))
    )


async def open_boards(ws_url, sessions, origin, path="/ws/board/?since=999999999"):
    boards = []
    for session in sessions:
        headers = {"Origin": origin}
        if session:
            headers["Cookie"] = f"sessionid={session}"
        boards.append(await ws_connect(ws_url + path, additional_headers=headers, max_queue=4096))
    return boards


async def listen(board, arrivals, task_ids):
    """Record when this board first hears about each task."""
    async for message in board:
        now = time.perf_counter()
        for task_id in task_ids:
            if task_id not in arrivals and f'"live-put-task-{task_id}"' in message:
                arrivals[task_id] = now


async def measure(url, ws_url, sessions, token, first_task, calls):
    """Boards in this process: delay from each API answer to the push, at every board."""
    task_ids = [f"B-{n}" for n in range(first_task, first_task + calls)]
    boards = await open_boards(ws_url, sessions, url)
    arrivals = [{} for _ in boards]
    listeners = [
        asyncio.create_task(listen(b, a, task_ids)) for b, a in zip(boards, arrivals, strict=True)
    ]
    await asyncio.sleep(0.5)
    delays, api_ms, loop_ms = [], [], {"next": [], "complete": []}
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}) as api:
        for task_id in task_ids:
            sent = time.perf_counter()
            answer = await api.post(f"/api/tasks/{task_id}/activate")
            answered = time.perf_counter()
            answer.raise_for_status()
            api_ms.append((answered - sent) * 1000)
            deadline = answered + 5
            while any(task_id not in a for a in arrivals) and time.perf_counter() < deadline:
                await asyncio.sleep(0.0005)
            missing = sum(task_id not in a for a in arrivals)
            if missing:
                print(f"  {missing} board(s) never heard about {task_id}", file=sys.stderr)
            delays += [(a[task_id] - answered) * 1000 for a in arrivals if task_id in a]
            # The pod loop on the same task, timed too: ``next`` takes it (the only active
            # task nobody holds), ``complete`` finishes it; every open board hears both.
            sent = time.perf_counter()
            pulled = await api.post(
                "/api/tasks/next", json={"pod_owner": "DevPod", "instance": f"bench-{task_id}"}
            )
            loop_ms["next"].append((time.perf_counter() - sent) * 1000)
            pulled.raise_for_status()
            sent = time.perf_counter()
            done = await api.post(
                f"/api/tasks/{pulled.json()['task']['id']}/complete",
                json={"instance": f"bench-{task_id}", "handoff_note": "done"},
            )
            loop_ms["complete"].append((time.perf_counter() - sent) * 1000)
            done.raise_for_status()
            await asyncio.sleep(0.02)
    for listener in listeners:
        listener.cancel()
    for board in boards:
        await board.close()
    return delays, api_ms, loop_ms


async def drain(board, prefix, arrivals):
    """Read everything ``board`` receives; note when it first names each probe."""
    names = re.compile(r"(?:live-put-task-)?(" + re.escape(prefix) + r'[^"<\s]*)')
    async for message in board:
        now = time.time()
        for probe_id in names.findall(message):
            arrivals.setdefault(probe_id, now)


async def observe(url, ws_url, sessions, observer_args, path):
    """Keep ``sessions`` boards open while bench/observer.py measures from its own process.

    Return the observer's report plus ``boards_p50_ms``/``boards_p95_ms``: the delay from each
    probe's API answer to its arrival at every one of these boards (wall clock, one machine).
    """
    prefix = f"OBS-{uuid.uuid4().hex[:6]}-"
    boards = await open_boards(ws_url, sessions, url, path)
    arrivals = [{} for _ in boards]
    drains = [
        asyncio.create_task(drain(b, prefix, a)) for b, a in zip(boards, arrivals, strict=True)
    ]
    try:
        await asyncio.sleep(0.5)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "bench" / "observer.py"),
            "--url",
            url,
            "--prefix",
            prefix,
            "--exact-prefix",
            *observer_args,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        out, _ = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"observer failed ({process.returncode})")
        report = json.loads(out.decode().strip().splitlines()[-1])
    finally:
        for task in drains:
            task.cancel()
        for board in boards:
            await board.close()
    delays, missing = [], 0
    for probe_id, answered in report.pop("answered").items():
        for seen in arrivals:
            if probe_id in seen:
                delays.append((seen[probe_id] - answered) * 1000)
            else:
                missing += 1
    report["boards_p50_ms"] = statistics.median(delays) if delays else None
    report["boards_p95_ms"] = percentile(delays, 95) if delays else None
    report["boards_missing"] = missing
    return report


def run_layer(layer, board_counts, calls, args):
    rows, observed = [], []
    with tempfile.TemporaryDirectory() as workdir:
        env = prepare_database(layer, workdir)
        total = calls * (len(board_counts) + 2)  # a row per board count, and two with none
        boards_needed = max([*board_counts, args.observer_boards])
        made = subprocess.run(
            [sys.executable, "-c", "import django; django.setup()\n" + SETUP]
            + [str(boards_needed), str(total), OBSERVER_POD],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        secrets = json.loads(made.strip().splitlines()[-1])
        sessions = secrets["sessions"]
        with server(env, workdir, "podboard") as podboard:
            _, idle_ms, idle_loop = asyncio.run(
                measure(podboard.url, podboard.ws_url, [], secrets["token"], 0, calls)
            )
            rows.append(
                (layer, 0, None, None, statistics.median(idle_ms), percentile(idle_ms, 95))
                + _loop_figures(idle_loop)
            )
            for n, count in enumerate(board_counts, start=1):
                delays, api_ms, loop_ms = asyncio.run(
                    measure(
                        podboard.url,
                        podboard.ws_url,
                        sessions[:count],
                        secrets["token"],
                        n * calls,
                        calls,
                    )
                )
                rows.append(
                    (
                        layer,
                        count,
                        statistics.median(delays),
                        percentile(delays, 95),
                        statistics.median(api_ms),
                        percentile(api_ms, 95),
                    )
                    + _loop_figures(loop_ms)
                )
            # No board again, after the others: the first rows run on a younger server (fewer
            # rows, less heap), so the baseline is the mean of the first and the last.
            _, idle_ms, idle_loop = asyncio.run(
                measure(
                    podboard.url,
                    podboard.ws_url,
                    [],
                    secrets["token"],
                    (len(board_counts) + 1) * calls,
                    calls,
                )
            )
            rows.append(
                (layer, 0, None, None, statistics.median(idle_ms), percentile(idle_ms, 95))
                + _loop_figures(idle_loop)
            )
            if args.observer:
                print(f"  {layer}: observer with {args.observer_boards} boards", file=sys.stderr)
                result = asyncio.run(
                    observe(
                        podboard.url,
                        podboard.ws_url,
                        sessions[1 : args.observer_boards + 1],
                        [
                            "--session",
                            sessions[0],
                            "--token",
                            secrets["observer_token"],
                            "--pod",
                            OBSERVER_POD,
                            "--seconds",
                            str(args.observe_seconds),
                        ],
                        "/ws/board/?since=999999999",
                    )
                )
                observed.append((layer, "PodBoard", result))
        if args.observer:
            bare_env = {k: v for k, v in env.items() if k != "BENCH_BARE_REDIS_URL"}
            if layer == "redis":
                bare_env["BENCH_BARE_REDIS_URL"] = REDIS_URL
            with server(bare_env, workdir, "bare", app="bench.bench_live:bare_app") as bare:
                print(f"  {layer}: bare layer with {args.observer_boards} sockets", file=sys.stderr)
                result = asyncio.run(
                    observe(
                        bare.url,
                        bare.ws_url,
                        [None] * args.observer_boards,
                        ["--mode", "bare", "--seconds", str(args.observe_seconds)],
                        "/ws/bare/",
                    )
                )
                observed.append((layer, "bare channel layer", result))
    return rows, observed


NAMES = {"memory": "in-memory (SQLite)", "redis": "Redis (PostgreSQL)"}


def fmt(value):
    return "—" if value is None else f"{value:.1f}"


def print_tables(rows, observed, args):
    print(f"\nLive push delay: API response → websocket message, {args.calls} calls per row\n")
    print(
        "| layer | boards | push delay median (ms) | push delay p95 (ms) "
        "| API call median (ms) | API call p95 (ms) | `next` median / p95 (ms) "
        "| `complete` median / p95 (ms) | `next`+`complete` p95 vs no board (mean of both) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    # next p95 + complete p95 with no board open, per layer: the mean of its two runs
    idle = {}
    for row in rows:
        if row[1] == 0:
            idle.setdefault(row[0], []).append(row[7] + row[9])
    idle = {layer: statistics.mean(figures) for layer, figures in idle.items()}
    for layer, count, median, p95, api_median, api_p95, n50, n95, c50, c95 in rows:
        print(
            f"| {NAMES.get(layer, layer)} | {count} | {fmt(median)} | {fmt(p95)} "
            f"| {api_median:.1f} | {api_p95:.1f} | {n50:.1f} / {n95:.1f} | {c50:.1f} / {c95:.1f} "
            f"| {(n95 + c95) / idle[layer]:.2f}× |"
        )
    if not observed:
        return
    print(
        f"\nLight load, measured by bench/observer.py in its own process: one probe every 0.5 s "
        f"for {args.observe_seconds:g} s with {args.observer_boards} other boards open; "
        "delays from the probe's API answer to the frame naming it, at the observer's socket "
        "and at every open board (negative: the frame came first); server lag = `data-lag` of "
        "the frames the observer got\n"
    )
    print(
        "| layer | target | probes | observer p50 (ms) | observer p95 (ms) "
        f"| all {args.observer_boards} boards p50 (ms) | all boards p95 (ms) | missing "
        "| server lag p95 (ms) | boards p95 / bare p95 |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    bare = {layer: r["boards_p95_ms"] for layer, target, r in observed if target != "PodBoard"}
    for layer, target, r in observed:
        ratio = "—"
        if target == "PodBoard" and bare.get(layer) and r["boards_p95_ms"] is not None:
            # (a floor of 1 ms: a bare p95 near zero would make any ratio meaningless)
            ratio = f"{r['boards_p95_ms'] / max(bare[layer], 1.0):.1f}×"
        lag = fmt(r["server_lag_p95_ms"]) if target == "PodBoard" else "—"
        print(
            f"| {NAMES.get(layer, layer)} | {target} | {r['probes']} | {fmt(r['p50_ms'])} "
            f"| {fmt(r['p95_ms'])} | {fmt(r['boards_p50_ms'])} | {fmt(r['boards_p95_ms'])} "
            f"| {r['missing'] + r['boards_missing']} | {lag} | {ratio} |"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boards", default="1,10,100")
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--layers", default="memory,redis")
    parser.add_argument("--observe-seconds", type=float, default=10.0)
    parser.add_argument("--observer-boards", type=int, default=100)
    parser.add_argument("--no-observer", dest="observer", action="store_false")
    args = parser.parse_args()
    board_counts = [int(n) for n in args.boards.split(",")]
    rows, observed = [], []
    for layer in args.layers.split(","):
        layer_rows, layer_observed = run_layer(layer, board_counts, args.calls, args)
        rows += layer_rows
        observed += layer_observed
    print_tables(rows, observed, args)


if __name__ == "__main__":
    main()
