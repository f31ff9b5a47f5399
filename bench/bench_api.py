"""Benchmark the Pod API against its framework floor, on one ASGI server.

Start uvicorn (2 workers, a free port in 8100-8199) on a fresh database, seed ready DevPod
tasks, then let 8 concurrent clients (threads with keep-alive httpx clients) run, one phase
at a time:

- ``floor``: ``POST /api/_floor``, the least an authenticated write costs on this server (the
  bearer-token lookup and one atomic UPDATE; mounted only with PODBOARD_BENCH_FLOOR=1);
- ``next``: pull a task (each call as a fresh instance, so each one claims);
- ``next+complete``: the pod loop, pull then complete;
- ``floor`` again, to show drift on a busy machine.

Print a markdown table: requests/s, median and p95 latency, throughput relative to the floor.

    .venv/bin/python bench/bench_api.py                     # PostgreSQL (DATABASE_URL or benchpb)
    .venv/bin/python bench/bench_api.py --sqlite            # SQLite file under var/
    .venv/bin/python bench/bench_api.py --seconds 15 --clients 8 --tasks 30000
"""

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import httpx

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/benchpb"
PORTS = range(8100, 8200)


def free_port():
    ports = list(PORTS)
    random.shuffle(ports)
    for port in ports:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit("no free port in 8100-8199")


# The database ----------------------------------------------------------------------------------


def fresh_postgres(url):
    """Drop and recreate the database named in ``url``."""
    import psycopg

    parts = urlparse(url)
    name = parts.path.lstrip("/")
    admin = urlunparse(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def seed(tasks, clients):
    """Create the pods, ``tasks`` ready DevPod tasks; print one DevPod token per client."""
    import django

    sys.path.insert(0, str(ROOT))
    django.setup()
    from tasks_app.models import Pod, PodToken, Task

    names = ["ProductPod", "DevPod", "QAPod"]
    pods = {name: Pod.objects.create(name=name, order=i) for i, name in enumerate(names)}
    Task.objects.bulk_create(
        [
            Task(
                id=f"DEV-{i:06d}",
                title=f"Bench task {i}",
                pod_owner=pods["DevPod"],
                priority=i % 5,
                prompt="Do the thing.",
                inputs={"n": i},
            )
            for i in range(tasks)
        ],
        batch_size=2000,
    )
    raws = [PodToken.issue(pod=pods["DevPod"], label=f"bench {c}")[1] for c in range(clients)]
    print(json.dumps(raws))


def prepare(database_url, tasks, clients):
    """Migrate, then seed pods, ``tasks`` ready DevPod tasks and a DevPod token per client."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "podboard.settings",
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    out = subprocess.run(
        [sys.executable, __file__, "--seed-only", str(tasks), str(clients)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# The server ------------------------------------------------------------------------------------


def start_server(database_url, port, workers):
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PODBOARD_BENCH_FLOOR": "1",
        "DJANGO_SETTINGS_MODULE": "podboard.settings",
        "LOG_LEVEL": "ERROR",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "podboard.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--lifespan",
            "off",
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/openapi.json", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise SystemExit("the server exited before it answered")
        time.sleep(0.2)
    process.terminate()
    raise SystemExit("the server did not answer within 60 s")


# Load ------------------------------------------------------------------------------------------


class Phase:
    """Run ``step(client, index, n)`` from every client for ``seconds``; collect latencies."""

    def __init__(self, name, seconds):
        self.name, self.seconds = name, seconds
        self.latencies = {}  # label → [seconds]
        self.done = 0
        self.errors = []
        self.empty = False
        self.lock = threading.Lock()

    def record(self, label, started):
        elapsed = time.perf_counter() - started
        with self.lock:
            self.latencies.setdefault(label, []).append(elapsed)

    def run(self, base, tokens, step):
        stop = time.monotonic() + self.seconds
        threads = [
            threading.Thread(target=self._client, args=(base, token, index, step, stop))
            for index, token in enumerate(tokens)
        ]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.elapsed = time.perf_counter() - began
        return self

    def _client(self, base, token, index, step, stop):
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            n = 0
            while time.monotonic() < stop and not self.empty:
                try:
                    if step(self, client, index, n) is False:
                        self.empty = True
                        return
                except Exception as exc:  # keep going; report at the end
                    with self.lock:
                        self.errors.append(repr(exc))
                    if len(self.errors) > 50:
                        return
                n += 1
                with self.lock:
                    self.done += 1


def _post(phase, client, label, path, body=None):
    started = time.perf_counter()
    response = client.post(path, json=body) if body is not None else client.post(path)
    phase.record(label, started)
    if response.status_code >= 400:
        raise RuntimeError(f"{label}: {response.status_code} {response.text[:200]}")
    return response


def floor_step(phase, client, index, n):
    _post(phase, client, "floor", "/api/_floor")


def next_step(phase, client, index, n):
    body = {"pod_owner": "DevPod", "instance": f"DevPod#{index}-{n}"}
    return _post(phase, client, "next", "/api/tasks/next", body).status_code != 204


def loop_step(phase, client, index, n):
    instance = f"DevPod#loop{index}"
    response = _post(
        phase, client, "next", "/api/tasks/next", {"pod_owner": "DevPod", "instance": instance}
    )
    if response.status_code == 204:
        return False
    task_id = response.json()["task"]["id"]
    _post(
        phase,
        client,
        "complete",
        f"/api/tasks/{task_id}/complete",
        {"instance": instance, "handoff_note": "done", "token_count": 100},
    )


def ms(values, q):
    values = sorted(values)
    if not values:
        return float("nan")
    if q == 50:
        return statistics.median(values) * 1000
    return values[min(len(values) - 1, int(len(values) * q / 100))] * 1000


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--seed-only":
        seed(int(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sqlite", action="store_true", help="use a SQLite file under var/")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL") or DEFAULT_PG)
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    args = parser.parse_args()

    if args.sqlite:
        path = ROOT / "var" / "bench-api.sqlite3"
        path.parent.mkdir(exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        database_url = f"sqlite:///{path}"
    else:
        database_url = args.database_url
        fresh_postgres(database_url)
    tokens = prepare(database_url, args.tasks, args.clients)
    port = free_port()
    server = start_server(database_url, port, args.workers)
    base = f"http://127.0.0.1:{port}"
    try:
        probe = httpx.post(
            f"{base}/api/_floor", headers={"Authorization": f"Bearer {tokens[0]}"}, timeout=10
        )
        if probe.status_code != 200:
            raise SystemExit(
                f"the seeded token does not work on the server ({probe.status_code} "
                f"{probe.text[:120]}): is another run using the same database?"
            )
        # Warm every worker's connections and imports.
        Phase("warm-up", 1.5).run(base, tokens, floor_step)
        phases = [
            Phase("floor", args.seconds).run(base, tokens, floor_step),
            Phase("next", args.seconds).run(base, tokens, next_step),
            Phase("next+complete", args.seconds).run(base, tokens, loop_step),
            Phase("floor (again)", args.seconds).run(base, tokens, floor_step),
        ]
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()

    floors = [p for p in phases if p.name.startswith("floor")]
    floor_rate = statistics.mean(p.done / p.elapsed for p in floors)
    engine = "SQLite" if args.sqlite else "PostgreSQL"
    print(
        f"\n### Pod API on {engine}: {args.clients} clients, {args.workers} uvicorn workers, "
        f"{args.seconds:g} s per phase, {os.cpu_count()} CPUs\n"
    )
    print("| phase | requests | req/s | claims/s | op | median ms | p95 ms | vs floor req/s |")
    print("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
    for phase in phases:
        requests = sum(len(v) for v in phase.latencies.values())
        claims = len(phase.latencies.get("next", ())) / phase.elapsed
        claims_text = f"{claims:.0f}" if "next" in phase.latencies else ""
        for label, values in phase.latencies.items():
            print(
                f"| {phase.name} | {requests} | {requests / phase.elapsed:.0f} | {claims_text} "
                f"| {label} | {ms(values, 50):.2f} | {ms(values, 95):.2f} "
                f"| {requests / phase.elapsed / floor_rate:.0%} |"
            )
        if phase.empty:
            print(f"| {phase.name} | queue ran empty: seed more with --tasks | | | | | | |")
        if phase.errors:
            print(f"| {phase.name} | {len(phase.errors)} errors, first: {phase.errors[0][:80]} |")
    print(f"\nfloor = {floor_rate:.0f} req/s (mean of the two floor phases)")


if __name__ == "__main__":
    main()
