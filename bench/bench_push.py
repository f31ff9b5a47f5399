"""Benchmark push to pods: how soon a pod holds its start context after a sync handoff, and
what idle pods cost the server, with and without long-poll.

One uvicorn server and one webhook worker (``manage.py deliver_webhooks``) on a fresh database;
the pods are threads of this process (httpx clients) and a webhook receiver on this machine.

1. **Handoff to start context.** ProductPod completes a sync task; the successor's pod holds
   the successor's start context by one of three ways, one phase each:
   - ``webhook + start``: the receiver gets ``task.reserved`` and calls ``start``;
   - ``long-poll``: the pod waits in ``next`` with ``wait: 30``;
   - ``1 s polling``: the pod calls ``next`` every second.
   Latency = when the pod has the context − the task's ``completed_at`` (the commit), p50/p95.
2. **Idle pods.** 16 pods with nothing to do for ``--idle-seconds``: polling ``next`` every
   second vs waiting in ``next`` with ``wait: 30``. Requests per second the pods send and the
   server's CPU time per minute.

    .venv/bin/python bench/bench_push.py                     # SQLite, in-memory layer
    .venv/bin/python bench/bench_push.py --postgres          # DATABASE_URL (or benchpush) + Redis
    .venv/bin/python bench/bench_push.py --rounds 10 --idle-seconds 10   # a short run
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import markdown_table, percentile  # noqa: E402
from tests.support.databases import recreate_database, remove_sqlite, with_database  # noqa: E402
from tests.support.receiver import Receiver  # noqa: E402
from tests.support.servers import (  # noqa: E402
    PYTHON,
    AsgiServer,
    django_env,
    manage,
    run_django,
    stop_process,
)

DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/benchpush"
IDLE_PODS = 16
SEED = """
import json
from tasks_app.models import Pod, PodToken
names = ["ProductPod", "HookPod", "WaitPod", "PollPod"] + [f"IdlePod{n:02d}" for n in range(%d)]
tokens = {}
for order, name in enumerate(names):
    pod = Pod.objects.create(name=name, order=order)
    tokens[name] = PodToken.issue(pod=pod, label="bench")[1]
print(json.dumps(tokens))
"""


def log(message):
    print(message, file=sys.stderr, flush=True)


def parse_time(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Bench:
    def __init__(self, url, tokens):
        self.url, self.tokens = url, tokens
        self.held = {}  # task id -> time.time() the pod held its start context
        self.cond = threading.Condition()

    def client(self, pod):
        return httpx.Client(
            base_url=self.url, timeout=60, headers={"Authorization": f"Bearer {self.tokens[pod]}"}
        )

    def holds(self, task_id):
        with self.cond:
            self.held.setdefault(task_id, time.time())
            self.cond.notify_all()

    def wait_held(self, task_id, timeout=30):
        deadline = time.monotonic() + timeout
        with self.cond:
            while task_id not in self.held:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SystemExit(f"{task_id} was never picked up")
                self.cond.wait(left)
            return self.held[task_id]

    def handoff_rounds(self, pod, rounds, prefix):
        """Complete ``rounds`` sync ProductPod tasks whose successor belongs to ``pod``;
        return the latencies (s) from each commit to the pod holding the context."""
        latencies = []
        with self.client("ProductPod") as product:
            for n in range(rounds):
                spec, work = f"{prefix}-P{n}", f"{prefix}-S{n}"
                first = {"id": spec, "title": "Spec", "pod_owner": "ProductPod"}
                product.post("/api/tasks", json={**first, "handoff_mode": "sync"})
                second = {"id": work, "title": "Work", "pod_owner": pod, "handoff_from": spec}
                product.post("/api/tasks", json={**second, "depends_on": [spec]})
                product.post(
                    f"/api/tasks/{spec}/start", json={"instance": "P#1"}
                ).raise_for_status()
                time.sleep(random.uniform(0.2, 1.2))  # any moment of a poller's second
                done = product.post(f"/api/tasks/{spec}/complete", json={"instance": "P#1"})
                done.raise_for_status()
                committed = parse_time(done.json()["task"]["completed_at"])
                latencies.append(self.wait_held(work) - committed)
        return latencies


def consumer_long_poll(bench, pod, stop):
    with bench.client(pod) as http:
        while not stop.is_set():
            answer = http.post("/api/tasks/next", json={"pod_owner": pod, "instance": f"{pod}#1",
                                                        "wait": 30})  # fmt: skip
            if answer.status_code == 200:
                bench.holds(answer.json()["task"]["id"])
                http.post(f"/api/tasks/{answer.json()['task']['id']}/complete",
                          json={"instance": f"{pod}#1"})  # fmt: skip


def consumer_poll(bench, pod, stop):
    with bench.client(pod) as http:
        while not stop.is_set():
            answer = http.post("/api/tasks/next", json={"pod_owner": pod, "instance": f"{pod}#1"})
            if answer.status_code == 200:
                bench.holds(answer.json()["task"]["id"])
                http.post(f"/api/tasks/{answer.json()['task']['id']}/complete",
                          json={"instance": f"{pod}#1"})  # fmt: skip
            else:
                stop.wait(1.0)


def cpu_seconds(pid):
    """User + system CPU seconds of process ``pid`` and its children so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(f) for f in fields[11:15]) / ticks


def idle_phase(bench, server_pid, seconds, wait):
    """16 idle pods for ``seconds``: return (requests/s sent, server CPU s per minute)."""
    stop = threading.Event()
    sent = [0]
    lock = threading.Lock()

    def pod_loop(pod):
        with bench.client(pod) as http:
            while not stop.is_set():
                body = {"pod_owner": pod, "instance": f"{pod}#1"}
                if wait:
                    body["wait"] = wait
                with lock:
                    sent[0] += 1  # counted when sent: a long-poll may outlast the phase
                try:
                    http.post("/api/tasks/next", json=body)
                except httpx.HTTPError:
                    return
                if not wait:
                    stop.wait(1.0)

    threads = [threading.Thread(target=pod_loop, args=(f"IdlePod{n:02d}",), daemon=True)
               for n in range(IDLE_PODS)]  # fmt: skip
    cpu0, t0 = cpu_seconds(server_pid), time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    cpu1, t1 = cpu_seconds(server_pid), time.monotonic()
    stop.set()
    return sent[0] / (t1 - t0), (cpu1 - cpu0) / (t1 - t0) * 60


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL + Redis.")
    parser.add_argument("--rounds", type=int, default=30, help="Handoffs per way (default 30).")
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    args = parser.parse_args()

    workdir = ROOT / "var" / "bench"
    workdir.mkdir(parents=True, exist_ok=True)
    if args.postgres:
        database_url = os.environ.get("DATABASE_URL") or DEFAULT_PG
        database_url = with_database(database_url, "benchpush")
        recreate_database(database_url)
        redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/14"
        env = django_env(database_url=database_url, redis_url=redis_url)
        engine = "PostgreSQL + Redis"
    else:
        path = workdir / "push.sqlite3"
        remove_sqlite(path)
        env = django_env(database_url="", redis_url="", PODBOARD_SQLITE_PATH=str(path))
        engine = "SQLite + in-memory layer"
    env["PODBOARD_PUBLIC_URL"] = "http://127.0.0.1:1"  # the receiver's port is never "us"
    manage("migrate", "--noinput", "-v", "0", env=env)
    import json

    tokens = json.loads(run_django(SEED % IDLE_PODS, env=env).strip().splitlines()[-1])
    server = AsgiServer(env=env, log_path=workdir / "push-server.log").start()
    worker_log = open(workdir / "push-worker.log", "ab")  # noqa: SIM115
    worker = subprocess.Popen(
        [PYTHON, "manage.py", "deliver_webhooks"],
        cwd=ROOT,
        env=env,
        stdout=worker_log,
        stderr=worker_log,
        start_new_session=True,
    )
    bench = Bench(server.url, tokens)
    rows, idle_rows = [], []
    try:
        with Receiver(answers=[204]) as receiver:
            run_django(
                "from tasks_app.models import Pod\n"
                "from tasks_app.push.pods import set_webhook\n"
                f"print(set_webhook(Pod.objects.get(name='HookPod'), {receiver.url!r}))",
                env=env,
            )
            starter = bench.client("HookPod")

            def on_notice():
                seen = 0
                while True:
                    requests = receiver.wait_for(seen + 1, timeout=3600)
                    for _at, _headers, body in requests[seen:]:
                        notice = json.loads(body)
                        if notice.get("type") == "task.reserved":
                            task_id = notice["task_id"]
                            answer = starter.post(f"/api/tasks/{task_id}/start",
                                                  json={"instance": "HookPod#1"})  # fmt: skip
                            if answer.status_code == 200:
                                bench.holds(task_id)
                    seen = len(requests)

            threading.Thread(target=on_notice, daemon=True).start()
            time.sleep(1.0)  # the worker process is up
            phases = [
                ("webhook + start", "HookPod", None),
                ("long-poll (`wait: 30`)", "WaitPod", consumer_long_poll),
                ("1 s polling", "PollPod", consumer_poll),
            ]
            for label, pod, consumer in phases:
                log(f"{label}: {args.rounds} handoffs")
                stop = threading.Event()
                if consumer:
                    threading.Thread(target=consumer, args=(bench, pod, stop), daemon=True).start()
                    time.sleep(0.5)
                latencies = bench.handoff_rounds(pod, args.rounds, pod[:4].upper())
                stop.set()
                ms = [x * 1000 for x in latencies]
                p50, p95 = percentile(ms, 50), percentile(ms, 95)
                rows.append((label, len(ms), f"{p50:.0f}", f"{p95:.0f}", f"{max(ms):.0f}"))
            for label, wait in (("1 s polling", 0), ("long-poll (`wait: 30`)", 30)):
                log(f"idle pods, {label}: {args.idle_seconds:g} s")
                rate, cpu = idle_phase(bench, server.process.pid, args.idle_seconds, wait)
                idle_rows.append((label, IDLE_PODS, f"{rate:.2f}", f"{cpu:.2f}"))
    finally:
        stop_process(worker)
        server.stop()
    print(f"### Sync handoff → the successor's pod holds its start context ({engine})\n")
    print(
        f"One uvicorn worker, one `deliver_webhooks` worker (poll "
        f"{env.get('PODBOARD_WEBHOOK_POLL_SECONDS', '0.25')} s"
        f"{', woken through Redis' if args.postgres else ''}), pods on this machine.\n"
    )
    print(markdown_table(["way", "handoffs", "p50 ms", "p95 ms", "max ms"], rows))
    print(f"\n### What {IDLE_PODS} idle pods cost the server ({args.idle_seconds:g} s each)\n")
    print(markdown_table(["idle pods wait by", "pods", "requests/s sent", "server CPU s/min"],
                         idle_rows))  # fmt: skip


if __name__ == "__main__":
    main()
