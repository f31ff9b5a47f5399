"""Time the flow metrics at 100,000 tasks and 1,000,000 Events on PostgreSQL.

    .venv/bin/python bench/bench_metrics.py [--tasks 100000] [--events-per-task 10]
        [--history-days 180] [--runs 7] [--database-url postgres://…/metricsbench] [--keep]

Works in its own database (created afresh, dropped afterwards unless ``--keep``): migrates it,
files the tasks in bulk, then writes the Events with one ``INSERT … SELECT generate_series``:
per task a creation, a baton (sync or async), a claim, traces, one stall and re-claim in
twenty, a completion (a scale-out in ten), spread evenly over ``--history-days``. Times, as
server time through Django's test client (no network, no browser), with the query count:
``GET /api/metrics/flow?days=30`` (a pod token), ``?days=30&pod=…``, ``?days=365``, and the
``/metrics/`` page. Prints a markdown table.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "podboard.settings")

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/metricsbench"
PODS = ["ProductPod", "DevPod", "QAPod", "DocsPod"]

# Event k (0…per_task-1) of task i: what it is. Ten kinds of step; more Events per task repeat
# the traces.
EVENTS_SQL = """
INSERT INTO {event} (task_id, task_key, kind, actor, from_status, to_status, from_pod, to_pod,
                     payload, created_at)
SELECT t.id, t.id, s.kind, 'bench', s.from_status, s.to_status, p.name, p.name,
       s.payload::jsonb, t.created_at + s.offset_s * interval '1 second'
FROM (SELECT id, pod_owner_id, created_at, substr(id, 3)::integer AS n FROM {task}) t
JOIN {pod} p ON p.id = t.pod_owner_id
CROSS JOIN LATERAL (
    SELECT k,
        CASE
            WHEN k = 0 THEN 'created'
            WHEN k = 1 THEN 'handoff'
            WHEN k = 2 THEN 'claimed'
            WHEN k = %(last)s THEN CASE WHEN t.n %% 10 = 0 THEN 'scaled_out' ELSE 'completed' END
            WHEN k = 6 AND t.n %% 20 = 0 THEN 'lease_expired'
            WHEN k = 7 AND t.n %% 20 = 0 THEN 'claimed'
            ELSE 'traced'
        END AS kind,
        CASE
            WHEN k = 0 THEN ''
            WHEN k = 1 OR k = 2 THEN 'ready'
            WHEN k = 7 AND t.n %% 20 = 0 THEN 'ready'
            ELSE 'active'
        END AS from_status,
        CASE
            WHEN k = 0 THEN 'ready'
            WHEN k = 1 THEN CASE WHEN t.n %% 2 = 0 THEN 'active' ELSE 'ready' END
            WHEN k = %(last)s THEN 'done'
            WHEN k = 6 AND t.n %% 20 = 0 THEN 'ready'
            ELSE 'active'
        END AS to_status,
        CASE
            WHEN k = 1 THEN json_build_object(
                'mode', CASE WHEN t.n %% 2 = 0 THEN 'sync' ELSE 'async' END,
                'blocked', false, 'handoff_from', 'T-' || (t.n - 1))::text
            WHEN k = %(last)s AND t.n %% 10 = 0 THEN json_build_object(
                'continuation', t.id || '.2', 'reason', 'capacity_reached')::text
            ELSE '{{}}'
        END AS payload,
        CASE
            WHEN k = 0 THEN 0
            WHEN k = 1 THEN 600 + (t.n %% 7) * 300
            WHEN k = 2 THEN 600 + (t.n %% 7) * 300 + 30 + (t.n %% 2) * (t.n %% 13) * 120
            ELSE 3000 + k * (240 + (t.n %% 11) * 60)
        END AS offset_s
    FROM generate_series(0, %(last)s) AS k
) s
"""


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
                event=Event._meta.db_table, task=Task._meta.db_table, pod=Pod._meta.db_table
            ),
            {"last": per_task - 1},
        )
        cursor.execute("VACUUM ANALYZE")
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
    args = parser.parse_args()
    if args.events_per_task < 10:
        parser.error("--events-per-task is at least 10 (one of each step)")

    from tests.support.databases import drop_database, recreate_database

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

    from tasks_app.models import Event, PodToken

    settings.ALLOWED_HOSTS = ["testserver"]
    setup_test_environment()
    try:
        call_command("migrate", verbosity=0, interactive=False)
        pods = seed(args.tasks, args.events_per_task, args.history_days)
        events = Event.objects.count()
        token = PodToken.issue(pod=pods[1], label="bench")[1]
        user = get_user_model().objects.create_user("bench", password="bench-password-1")
        api = Client()
        page = Client()
        page.force_login(user)
        bearer = {"Authorization": f"Bearer {token}"}
        print(
            f"Flow metrics — PostgreSQL {connection.pg_version // 10000}, {args.tasks:,} tasks, "
            f"{events:,} Events over {args.history_days} days; median of {args.runs} runs "
            "(server time, Django test client)\n"
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
        if not args.keep:
            drop_database(args.database_url)


if __name__ == "__main__":
    main()
