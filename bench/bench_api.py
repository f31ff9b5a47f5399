"""Benchmark the Pod API against a bare django-ninja floor, on the same database and machine.

Start two uvicorn servers (the same number of workers each, on free ports) on one fresh
database, seed ready DevPod tasks, then let 8 concurrent clients (threads with keep-alive httpx
clients) run, one phase at a time:

- ``bare floor``: ``POST /api/_floor`` on ``bench/floor_app.py``, a django-ninja app of its own
  with no PodBoard code or middleware: the bearer-token lookup and one atomic UPDATE. The
  ratios below are against this one;
- ``floor``: the same request on PodBoard's stack (its ``/api/_floor``, mounted only with
  PODBOARD_BENCH_FLOOR=1), to show what PodBoard's middleware and backend add or save;
- ``next``: pull a task (each call as a fresh instance, so each one claims);
- ``next+complete``: the pod loop, pull then complete;
- both floors again, to show drift on a busy machine.

Print a markdown table (requests/s, median and p95 latency, throughput relative to each floor,
the CPU the server process used per request, which a busy shared machine disturbs less than
the rates, and the CPU PostgreSQL's processes and this load generator used per request: the
three share the machine's cores) and the ratios the targets are stated in: ``next``
requests/s and ``next+complete`` requests/s (two requests a task) over the bare floor's
requests/s (the mean of its two phases), and each operation's p95/p50.

    .venv/bin/python bench/bench_api.py                     # PostgreSQL (DATABASE_URL or benchpb)
    .venv/bin/python bench/bench_api.py --sqlite --workers 1 # the embedded default
    .venv/bin/python bench/bench_api.py --seconds 15 --clients 8 --tasks 30000
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.databases import recreate_database, remove_sqlite  # noqa: E402
from tests.support.servers import AsgiServer, django_env  # noqa: E402

DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/benchpb"


# The database ----------------------------------------------------------------------------------


def seed(tasks, clients):
    """Create the pods, ``tasks`` ready DevPod tasks; print one DevPod token per client."""
    import django

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


PODBOARD_APP = "podboard.asgi:application"
FLOOR_APP = "bench.floor_app:application"


def start_server(database_url, workers, app=PODBOARD_APP, extra_env=None):
    """Start ``app`` under uvicorn on a free port; return the running ``AsgiServer``."""
    env = django_env(
        database_url=database_url, PODBOARD_BENCH_FLOOR="1", LOG_LEVEL="ERROR", **(extra_env or {})
    )
    if app == FLOOR_APP:
        env.pop("DJANGO_SETTINGS_MODULE")  # the floor configures itself
    return AsgiServer(env=env, workers=workers, app=app).start()


def cpu_seconds(pid):
    """CPU time (user + system) used so far by process ``pid`` and its live descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError, IndexError):
            continue
    return total


def database_cpu_seconds():
    """CPU time used so far by every PostgreSQL server process on this machine (0.0 when
    there is none: SQLite runs inside the server)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            name, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat.rsplit(")", 1)[1]
            if name.startswith("postgres"):
                parts = fields.split()
                total += (int(parts[11]) + int(parts[12])) / tick
        except (OSError, ValueError, IndexError):
            continue
    return total


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

    def run(self, base, tokens, step, server=None):
        """Run the phase; with ``server`` (its process), also measure the CPU it used."""
        cpu_before = cpu_seconds(server.pid) if server else None
        database_before, client_before = database_cpu_seconds(), time.process_time()
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
        self.server_cpu = cpu_seconds(server.pid) - cpu_before if server else None
        self.database_cpu = database_cpu_seconds() - database_before
        self.client_cpu = time.process_time() - client_before
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


def rate(phase):
    return sum(len(v) for v in phase.latencies.values()) / phase.elapsed


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
    parser.add_argument(
        "--floor-backend",
        choices=["django", "podboard"],
        default="django",
        help="SQLite backend of the bare floor: Django's own (default) or PodBoard's",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()

    sqlite_path = None
    if args.sqlite:
        # One file per run, so two runs on one machine never share a database.
        sqlite_path = ROOT / "var" / f"bench-api-{os.getpid()}.sqlite3"
        sqlite_path.parent.mkdir(exist_ok=True)
        database_url = f"sqlite:///{sqlite_path}"
    else:
        database_url = args.database_url
        recreate_database(database_url)
    floor_env = {}
    if args.sqlite and args.floor_backend == "podboard":
        floor_env["FLOOR_SQLITE_ENGINE"] = "podboard.sqlite_backend"
    servers = []
    try:
        tokens = prepare(database_url, args.tasks, args.clients)
        servers.append(start_server(database_url, args.workers))
        servers.append(start_server(database_url, args.workers, FLOOR_APP, floor_env))
        base, bare = servers[0].url, servers[1].url
        for url in (base, bare):
            probe = httpx.post(
                f"{url}/api/_floor", headers={"Authorization": f"Bearer {tokens[0]}"}, timeout=10
            )
            if probe.status_code != 200:
                raise SystemExit(
                    f"the seeded token does not work on {url} ({probe.status_code} "
                    f"{probe.text[:120]}): is another run using the same database?"
                )
        # Warm every worker's connections and imports.
        Phase("warm-up", 1.5).run(bare, tokens, floor_step)
        Phase("warm-up", 1.5).run(base, tokens, floor_step)
        podboard, floor_server = (server.process for server in servers)
        phases = [
            Phase("bare floor", args.seconds).run(bare, tokens, floor_step, floor_server),
            Phase("floor", args.seconds).run(base, tokens, floor_step, podboard),
            Phase("next", args.seconds).run(base, tokens, next_step, podboard),
            Phase("next+complete", args.seconds).run(base, tokens, loop_step, podboard),
            Phase("bare floor (again)", args.seconds).run(bare, tokens, floor_step, floor_server),
            Phase("floor (again)", args.seconds).run(base, tokens, floor_step, podboard),
        ]
    finally:
        for server in servers:
            server.stop()
        if sqlite_path is not None:
            remove_sqlite(sqlite_path)

    bare_rate = statistics.mean(rate(p) for p in phases if p.name.startswith("bare floor"))
    floor_rate = statistics.mean(rate(p) for p in phases if p.name.startswith("floor"))
    engine = "SQLite" if args.sqlite else "PostgreSQL"
    floor_backend = (
        f", bare floor on {'PodBoard' if args.floor_backend == 'podboard' else 'Django'}'s "
        "SQLite backend"
        if args.sqlite
        else ""
    )
    print(
        f"\n### Pod API on {engine}: {args.clients} clients, {args.workers} uvicorn "
        f"worker{'s' if args.workers != 1 else ''} per server, {args.seconds:g} s per phase, "
        f"{os.cpu_count()} CPUs{floor_backend}\n"
    )
    print(
        "| phase | requests | req/s | claims/s | op | median ms | p95 ms "
        "| vs bare floor | vs PodBoard floor | server CPU ms/req | database CPU ms/req "
        "| client CPU ms/req |"
    )
    print("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for phase in phases:
        requests = sum(len(v) for v in phase.latencies.values())
        claims = len(phase.latencies.get("next", ())) / phase.elapsed
        claims_text = f"{claims:.0f}" if "next" in phase.latencies else ""
        cpu = f"{phase.server_cpu / requests * 1000:.1f}" if requests else ""
        database = f"{phase.database_cpu / requests * 1000:.1f}" if requests else ""
        client = f"{phase.client_cpu / requests * 1000:.1f}" if requests else ""
        for label, values in phase.latencies.items():
            print(
                f"| {phase.name} | {requests} | {rate(phase):.0f} | {claims_text} "
                f"| {label} | {ms(values, 50):.2f} | {ms(values, 95):.2f} "
                f"| {rate(phase) / bare_rate:.0%} | {rate(phase) / floor_rate:.0%} | {cpu} "
                f"| {database} | {client} |"
            )
        if phase.empty:
            print(f"| {phase.name} | queue ran empty: seed more with --tasks | | | | | | | | | | |")
        if phase.errors:
            print(f"| {phase.name} | {len(phase.errors)} errors, first: {phase.errors[0][:80]} |")

    by_name = {p.name: p for p in phases}
    figures = {
        "engine": engine,
        "workers": args.workers,
        "clients": args.clients,
        "seconds": args.seconds,
        "bare_floor_rps": bare_rate,
        "podboard_floor_rps": floor_rate,
        "next_rps": rate(by_name["next"]),
        "loop_rps": rate(by_name["next+complete"]),
        "loop_tasks_per_s": len(by_name["next+complete"].latencies.get("complete", ()))
        / by_name["next+complete"].elapsed,
        "server_cpu_ms_per_request": {
            p.name: p.server_cpu / max(1, sum(len(v) for v in p.latencies.values())) * 1000
            for p in phases
        },
        "latency_ms": {
            f"{p.name} {label}": {"p50": ms(v, 50), "p95": ms(v, 95)}
            for p in phases
            for label, v in p.latencies.items()
        },
    }
    figures["next_vs_bare"] = figures["next_rps"] / bare_rate
    figures["loop_vs_bare"] = figures["loop_rps"] / bare_rate
    # The same ratios from the server's CPU per request: what they would be if the CPU were
    # the only limit, and much less disturbed by other work on a shared machine.
    cpu = figures["server_cpu_ms_per_request"]
    bare_cpu = statistics.mean(v for k, v in cpu.items() if k.startswith("bare floor"))
    if bare_cpu and cpu["next"] and cpu["next+complete"]:  # 0: /proc could not be read
        figures["next_vs_bare_by_cpu"] = bare_cpu / cpu["next"]
        figures["loop_vs_bare_by_cpu"] = bare_cpu / cpu["next+complete"]
    print(
        f"\nbare floor = {bare_rate:.0f} req/s, PodBoard floor = {floor_rate:.0f} req/s "
        "(each the mean of its two phases)"
    )
    print(
        f"next = {figures['next_rps']:.0f} claims/s = **{figures['next_vs_bare']:.2f}** of the "
        f"bare floor; next+complete = {figures['loop_rps']:.0f} req/s "
        f"({figures['loop_tasks_per_s']:.0f} tasks/s) = **{figures['loop_vs_bare']:.2f}** of the "
        "bare floor"
    )
    if "next_vs_bare_by_cpu" in figures:
        print(
            f"by server CPU per request: bare floor {bare_cpu:.1f} ms, next {cpu['next']:.1f} ms "
            f"({figures['next_vs_bare_by_cpu']:.2f}), next+complete "
            f"{cpu['next+complete']:.1f} ms ({figures['loop_vs_bare_by_cpu']:.2f})"
        )
    spreads = [
        f"{name}: p95/p50 = {v['p95'] / v['p50']:.1f}"
        for name, v in figures["latency_ms"].items()
        if name.startswith("next")
    ]
    print("; ".join(spreads))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
