"""Measure how fast a change made through the API reaches open boards.

Starts one uvicorn server, connects 1, 10 and 100 boards by websocket, makes API calls
(``POST /api/tasks/{id}/activate``) one after another, and records for every board the delay
from the API response to the arrival of the push naming that task. Negative delays mean the
push arrived before the response (the server announces after commit, before it answers).
Runs with the in-memory layer (SQLite) and with Redis (PostgreSQL), and prints a markdown
table.

    .venv/bin/python bench/bench_live.py [--boards 1,10,100] [--calls 40] [--layers memory,redis]
"""

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
from websockets.asyncio.client import connect as ws_connect

ROOT = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/livepb_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")

SETUP = """
import json, sys
import django
django.setup()
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from tasks_app.models import Pod, PodToken, Task

boards, tasks = int(sys.argv[1]), int(sys.argv[2])
user = get_user_model().objects.create_user("bench", password="bench-password-1")
sessions = []
for _ in range(boards):
    s = SessionStore()
    s[SESSION_KEY] = str(user.pk)
    s[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    s[HASH_SESSION_KEY] = user.get_session_auth_hash()
    s.create()
    sessions.append(s.session_key)
pod = Pod.objects.create(name="DevPod")
Task.objects.bulk_create(
    [Task(id=f"B-{n}", title=f"Bench {n}", pod_owner=pod) for n in range(tasks)]
)
print(json.dumps({"sessions": sessions, "token": PodToken.issue(pod=pod)[1]}))
"""


def free_port(low=8300, high=8400):
    for port in range(low, high):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def prepare_database(layer, workdir):
    """Return the environment of a server with an empty, migrated database for ``layer``."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="podboard.settings",
        PYTHONPATH=str(ROOT),
        DEBUG="false",
        PODBOARD_LEASE_SWEEP_SECONDS="3600",
        LOG_LEVEL="ERROR",
    )
    if layer == "redis":
        import psycopg

        url = urlparse(PG_URL)
        with psycopg.connect(url._replace(path="/postgres").geturl(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{url.path[1:]}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{url.path[1:]}"')
        env.update(DATABASE_URL=PG_URL, REDIS_URL=REDIS_URL)
    else:
        env["PODBOARD_SQLITE_PATH"] = str(Path(workdir) / "bench.sqlite3")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    return env


def start_server(env, port, log):
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "podboard.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--lifespan",
            "off",
            "--log-level",
            "warning",
            "--ws-max-queue",
            "1024",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/login/", timeout=2)
            return server
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("server did not start")


async def listen(board, arrivals, task_ids):
    """Record when this board first hears about each task."""
    async for message in board:
        now = time.perf_counter()
        for task_id in task_ids:
            if task_id not in arrivals and f'"live-put-task-{task_id}"' in message:
                arrivals[task_id] = now


async def measure(port, sessions, token, first_task, calls):
    origin = f"http://127.0.0.1:{port}"
    task_ids = [f"B-{n}" for n in range(first_task, first_task + calls)]
    boards = []
    for session in sessions:
        boards.append(
            await ws_connect(
                f"ws://127.0.0.1:{port}/ws/board/?since=999999999",
                additional_headers={"Cookie": f"sessionid={session}", "Origin": origin},
                max_queue=4096,
            )
        )
    arrivals = [{} for _ in boards]
    listeners = [
        asyncio.create_task(listen(b, a, task_ids)) for b, a in zip(boards, arrivals, strict=True)
    ]
    await asyncio.sleep(0.5)
    delays, api_ms = [], []
    async with httpx.AsyncClient(
        base_url=origin, headers={"Authorization": f"Bearer {token}"}
    ) as api:
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
            await asyncio.sleep(0.02)
    for listener in listeners:
        listener.cancel()
    for board in boards:
        await board.close()
    return delays, api_ms


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def run_layer(layer, board_counts, calls):
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        env = prepare_database(layer, workdir)
        total = calls * (len(board_counts) + 1)
        made = subprocess.run(
            [sys.executable, "-c", SETUP, str(max(board_counts)), str(total)],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        secrets = json.loads(made.stdout.strip().splitlines()[-1])
        port = free_port()
        with open(Path(workdir) / "server.log", "w") as log:
            server = start_server(env, port, log)
            try:
                # A run with no board: what the API costs without anyone listening.
                _, idle_ms = asyncio.run(measure(port, [], secrets["token"], 0, calls))
                rows.append((layer, 0, None, None, statistics.median(idle_ms), pct(idle_ms, 95)))
                for n, count in enumerate(board_counts, start=1):
                    delays, api_ms = asyncio.run(
                        measure(
                            port, secrets["sessions"][:count], secrets["token"], n * calls, calls
                        )
                    )
                    rows.append(
                        (
                            layer,
                            count,
                            statistics.median(delays),
                            pct(delays, 95),
                            statistics.median(api_ms),
                            pct(api_ms, 95),
                        )
                    )
            finally:
                server.terminate()
                server.wait(timeout=10)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boards", default="1,10,100")
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--layers", default="memory,redis")
    args = parser.parse_args()
    board_counts = [int(n) for n in args.boards.split(",")]
    rows = []
    for layer in args.layers.split(","):
        rows += run_layer(layer, board_counts, args.calls)
    print(f"\nLive push delay: API response → websocket message, {args.calls} calls per row\n")
    print(
        "| layer | boards | push delay median (ms) | push delay p95 (ms) "
        "| API call median (ms) | API call p95 (ms) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    names = {"memory": "in-memory (SQLite)", "redis": "Redis (PostgreSQL)"}
    for layer, count, median, p95, api_median, api_p95 in rows:
        push = ("—", "—") if median is None else (f"{median:.1f}", f"{p95:.1f}")
        print(
            f"| {names.get(layer, layer)} | {count} | {push[0]} | {push[1]} "
            f"| {api_median:.1f} | {api_p95:.1f} |"
        )


if __name__ == "__main__":
    main()
