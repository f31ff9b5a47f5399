"""Time the flow metrics at 100,000 tasks and 1,000,000 Events, on PostgreSQL or SQLite.

    .venv/bin/python bench/bench_metrics.py [--tasks 100000] [--events-per-task 10]
        [--history-days 180] [--runs 7] [--database-url postgres://…/metricsbench] [--keep]
        [--reuse]
    .venv/bin/python bench/bench_metrics.py --database-url sqlite:////tmp/metricsbench.sqlite3

Works in its own database (created afresh, dropped afterwards unless ``--keep``; ``--reuse``
keeps one seeded before): migrates it, files the tasks in bulk, then writes the Events with one
``INSERT … SELECT`` over a recursive CTE: per task a creation, a baton (sync or async), a
claim, traces, one stall and re-claim in twenty, a completion (a scale-out in ten), spread
evenly over ``--history-days``. Rolls the closed days up (``manage.py rollup_flow``, timed),
then times, as server time through Django's test client (no network, no browser), with the
query count: ``GET /api/metrics/flow?days=30`` (a pod token), ``?days=30&pod=…``,
``?days=365``, and the ``/metrics/`` page. Prints a markdown table.
"""

import argparse
import os
import sqlite3
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "podboard.settings")

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/metricsbench"
PODS = ["ProductPod", "DevPod", "QAPod", "DocsPod"]

# Event k (0…per_task-1) of task n: what it is. Ten kinds of step; more Events per task repeat
# the traces. One statement on both engines (a recursive CTE counts the steps); {json},
# {false}, {payload} and {at} are the engine's JSON object, JSON false, JSON column value and
# "created_at + offset_s seconds".
EVENTS_SQL = """
WITH RECURSIVE ks(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM ks WHERE k < %(last)s),
tasks AS (
    SELECT t.id, p.name AS pod, t.created_at, CAST(substr(t.id, 3) AS INTEGER) AS n
    FROM {task} t JOIN {pod} p ON p.id = t.pod_owner_id
),
steps AS (
    SELECT tasks.id, tasks.pod, tasks.created_at,
        CASE
            WHEN k = 0 THEN 'created'
            WHEN k = 1 THEN 'handoff'
            WHEN k = 2 THEN 'claimed'
            WHEN k = %(last)s THEN CASE WHEN n %% 10 = 0 THEN 'scaled_out' ELSE 'completed' END
            WHEN k = 6 AND n %% 20 = 0 THEN 'lease_expired'
            WHEN k = 7 AND n %% 20 = 0 THEN 'claimed'
            ELSE 'traced'
        END AS kind,
        CASE
            WHEN k = 0 THEN ''
            WHEN k = 1 OR k = 2 THEN 'ready'
            WHEN k = 7 AND n %% 20 = 0 THEN 'ready'
            ELSE 'active'
        END AS from_status,
        CASE
            WHEN k = 0 THEN 'ready'
            WHEN k = 1 THEN CASE WHEN n %% 2 = 0 THEN 'active' ELSE 'ready' END
            WHEN k = %(last)s THEN 'done'
            WHEN k = 6 AND n %% 20 = 0 THEN 'ready'
            ELSE 'active'
        END AS to_status,
        CASE
            WHEN k = 1 THEN {json}(
                'mode', CASE WHEN n %% 2 = 0 THEN 'sync' ELSE 'async' END,
                'blocked', {false}, 'handoff_from', 'T-' || (n - 1))
            WHEN k = %(last)s AND n %% 10 = 0 THEN {json}(
                'continuation', tasks.id || '.2', 'reason', 'capacity_reached')
            ELSE '{{}}'
        END AS payload,
        CASE
            WHEN k = 0 THEN 0
            WHEN k = 1 THEN 600 + (n %% 7) * 300
            WHEN k = 2 THEN 600 + (n %% 7) * 300 + 30 + (n %% 2) * (n %% 13) * 120
            ELSE 3000 + k * (240 + (n %% 11) * 60)
        END AS offset_s
    FROM tasks CROSS JOIN ks
)
INSERT INTO {event} (task_id, task_key, kind, actor, from_status, to_status, from_pod, to_pod,
                     payload, created_at)
SELECT id, id, kind, 'bench', from_status, to_status, pod, pod, {payload}, {at}
FROM steps
"""
ENGINE_SQL = {
    "postgresql": {
        "json": "json_build_object",
        "false": "false",
        "payload": "payload::text::jsonb",
        "at": "created_at + offset_s * interval '1 second'",
    },
    # SQLite keeps timestamps as UTC text, which strftime shifts.
    "sqlite": {
        "json": "json_object",
        "false": "json('false')",
        "payload": "payload",
        "at": "strftime('%%Y-%%m-%%d %%H:%%M:%%f', created_at, '+' || offset_s || ' seconds')",
    },
}


def seed(tasks, per_task, history_days):
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from tasks_app.models import Event, Pod, Task

    pods = [Pod.objects.create(name=name, order=i) for i, name in enumerate(PODS)]
    now = timezone.now()
    span = timedelta(days=history_days).total_seconds()
    started = time.perf_counter()
    batch = []
    for i in range(tasks):
        created = now - timedelta(seconds=span * (tasks - i) / tasks) - timedelta(hours=3)
        recent = i >= tasks - tasks // 200
        status = ("ready" if i % 2 else "active") if recent else "done"
        batch.append(
            Task(
                id=f"T-{i}",
                title=f"Synthetic task {i} for the metrics benchmark",
                pod_owner=pods[i % len(pods)],
                status=status,
                task_type=["spec", "build", "qa", "docs"][i % 4],
                token_count=(i * 37) % 16000,
                created_at=created,
                completed_at=None if recent else created + timedelta(hours=2),
            )
        )
        if len(batch) == 5000:
            Task.objects.bulk_create(batch)
            batch = []
    Task.objects.bulk_create(batch)
    with connection.cursor() as cursor:
        cursor.execute(
            EVENTS_SQL.format(
                event=Event._meta.db_table,
                task=Task._meta.db_table,
                pod=Pod._meta.db_table,
                **ENGINE_SQL[connection.vendor],
            ),
            {"last": per_task - 1},
        )
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
    print(
        f"seeded {tasks:,} tasks and {Event.objects.count():,} events "
        f"in {time.perf_counter() - started:.0f} s",
        file=sys.stderr,
    )
    return pods


def measure(client, url, runs, headers):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    response = client.get(url, headers=headers)  # warm-up: templates, plans, caches
    assert response.status_code == 200, (url, response.status_code, response.content[:300])
    times = []
    for _ in range(runs):
        with CaptureQueriesContext(connection) as queries:
            start = time.perf_counter()
            response = client.get(url, headers=headers)
            times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.status_code
    return statistics.median(times), min(times), max(times), len(queries)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--events-per-task", type=int, default=10)
    parser.add_argument("--history-days", type=int, default=180)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_METRICS_DATABASE_URL", DEFAULT_URL)
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--reuse", action="store_true", help="use a database seeded by an earlier --keep run"
    )
    args = parser.parse_args()
    if args.events_per_task < 10:
        parser.error("--events-per-task is at least 10 (one of each step)")

    from tests.support.databases import drop_database, recreate_database

    sqlite_path = args.database_url.removeprefix("sqlite:///")
    sqlite = sqlite_path != args.database_url
    if sqlite:
        if not args.reuse:
            Path(sqlite_path).unlink(missing_ok=True)
    elif not args.reuse:
        recreate_database(args.database_url)
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment

    from tasks_app.models import Event, Pod, PodToken, Task

    settings.ALLOWED_HOSTS = ["testserver"]
    setup_test_environment()
    try:
        call_command("migrate", verbosity=0, interactive=False)
        if args.reuse and Pod.objects.exists():
            pods = list(Pod.objects.order_by("order"))
        else:
            pods = seed(args.tasks, args.events_per_task, args.history_days)
        events = Event.objects.count()
        started = time.perf_counter()
        call_command("rollup_flow", "--rebuild", verbosity=0)
        rolled = time.perf_counter() - started
        token = PodToken.issue(pod=pods[1], label="bench")[1]
        user = get_user_model().objects.get_or_create(username="bench")[0]
        api = Client()
        page = Client()
        page.force_login(user)
        bearer = {"Authorization": f"Bearer {token}"}
        engine = (
            f"SQLite {sqlite3.sqlite_version}"
            if sqlite
            else f"PostgreSQL {connection.pg_version // 10000}"
        )
        tasks = Task.objects.count()
        load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
        print(
            f"Flow metrics — {engine}, {tasks:,} tasks, {events:,} Events over "
            f"{args.history_days} days; median of {args.runs} runs (server time, Django test "
            f"client); closed days rolled up in {rolled:.1f} s beforehand (`rollup_flow`); "
            f"load average before the runs {load}\n"
        )
        print("| request | median ms | best ms | worst ms | queries |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for label, client, url, headers in [
            ("GET /api/metrics/flow?days=30", api, "/api/metrics/flow?days=30", bearer),
            (
                "GET /api/metrics/flow?days=30&pod=DevPod",
                api,
                "/api/metrics/flow?days=30&pod=DevPod",
                bearer,
            ),
            ("GET /api/metrics/flow?days=365", api, "/api/metrics/flow?days=365", bearer),
            ("GET /metrics/ (page, 30 days)", page, "/metrics/", {}),
        ]:
            median, best, worst, queries = measure(client, url, args.runs, headers)
            print(f"| `{label}` | {median:.0f} | {best:.0f} | {worst:.0f} | {queries} |")
    finally:
        connection.close()
        if args.keep:
            pass
        elif sqlite:
            Path(sqlite_path).unlink(missing_ok=True)
        else:
            drop_database(args.database_url)


if __name__ == "__main__":
    main()
