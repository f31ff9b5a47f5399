"""Measure the board page's server time at 100, 1,000 and 10,000 tasks.

    .venv/bin/python bench/bench_board.py [--sizes 100 1000 10000] [--runs 7]

Uses its own test database (SQLite file var/bench-board.sqlite3, or DATABASE_URL's server with a
``test_`` prefix), seeds tasks in bulk (most done, some ready, a few active, a tenth blocked),
and times GET / through Django's test client (server time: no network, no browser). Prints a
markdown table: median and best time over the runs, the query count and the page size.
"""

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "podboard.settings")
os.environ.setdefault("PODBOARD_SQLITE_TEST_PATH", str(ROOT / "var" / "bench-board.sqlite3"))


def seed(n, pods):
    from django.utils import timezone

    from tasks_app.models import Status, Task

    Task.objects.all().delete()
    now = timezone.now()
    tasks = []
    for i in range(n):
        share = i % 20
        status = Status.DONE if share < 15 else Status.READY if share < 19 else Status.ACTIVE
        tasks.append(
            Task(
                id=f"T-{i:06}",
                title=f"Synthetic task {i} for the board benchmark",
                pod_owner=pods[i % len(pods)],
                status=status,
                task_type=["spec", "build", "qa", "docs"][i % 4],
                priority=i % 4,
                token_count=(i * 37) % 16000,
                handoff_mode=["sync", "async", "auto"][i % 3],
                claimed_by=f"Pod#{i % 3}" if status == Status.ACTIVE else "",
                lease_expires_at=now + timedelta(minutes=10) if status == Status.ACTIVE else None,
                created_at=now - timedelta(minutes=n - i),
                completed_at=now - timedelta(seconds=n - i) if status == Status.DONE else None,
            )
        )
    Task.objects.bulk_create(tasks, batch_size=2000)
    through = Task.depends_on.through
    links = [
        through(from_task_id=t.id, to_task_id=tasks[j - 1].id)
        for j, t in enumerate(tasks)
        if j % 10 == 5
    ]
    through.objects.bulk_create(links, batch_size=2000)


def measure(client, url, runs):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url)  # warm-up: template and session caches
    times = []
    for _ in range(runs):
        with CaptureQueriesContext(connection) as queries:
            start = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.status_code
    return statistics.median(times), min(times), len(queries), len(response.content)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.test import Client
    from django.test.runner import DiscoverRunner
    from django.test.utils import setup_test_environment, teardown_test_environment

    from tasks_app.models import Pod

    settings.ALLOWED_HOSTS = ["testserver"]
    setup_test_environment()
    runner = DiscoverRunner(verbosity=0, interactive=False)
    old = runner.setup_databases()
    try:
        from django.contrib.auth import get_user_model
        from django.db import connection

        user = get_user_model().objects.create_user("bench", password="bench-password-1")
        pods = [
            Pod.objects.create(name=name, order=i, wip_limit=5)
            for i, name in enumerate(["ProductPod", "DevPod", "QAPod", "DocsPod"])
        ]
        client = Client()
        client.force_login(user)
        print(
            f"Board GET / — {connection.vendor}, median of {args.runs} runs (Django test client)\n"
        )
        print("| tasks | page | median ms | best ms | queries | html KiB |")
        print("| ---: | --- | ---: | ---: | ---: | ---: |")
        for n in args.sizes:
            seed(n, pods)
            for label, url in [
                ("board", "/"),
                ("board ?q=task 1&type=build", "/?q=task+1&type=build"),
                ("show more (Done)", "/board/DevPod/done/more/?offset=20"),
            ]:
                median, best, queries, size = measure(client, url, args.runs)
                row = [
                    f"{n:,}",
                    label,
                    f"{median:.1f}",
                    f"{best:.1f}",
                    str(queries),
                    f"{size / 1024:.0f}",
                ]
                print("| " + " | ".join(row) + " |")
    finally:
        runner.teardown_databases(old)
        teardown_test_environment()


if __name__ == "__main__":
    main()
