"""Time the delivery-chain view of a 200-task chain: server time, and layout time in Chromium.

    .venv/bin/python bench/bench_chain.py [--database-url postgres://…/chainbench | --sqlite]
        [--features 49] [--runs 9] [--keep]

Works in its own database (PostgreSQL, created afresh and dropped afterwards unless
``--keep``; or a SQLite file under var/ with ``--sqlite``). Seeds one delivery: a root spec,
then per feature a spec (waiting also for the spec five features back), two builds, a test
that waits for both, every seventh first build scaled out to a continuation — 1 + 4 × 49 + 7
= 204 tasks, all linked, with the batons' ``handoff`` and ``claimed`` Events the node waits
read. Then:

- **server time** of ``GET /chains/<id>/`` (and of the graph fragment the page polls for)
  through Django's test client, with the query count;
- **browser** time in headless Chromium (/usr/bin/chromium) against a real server on the
  same database: the navigation (response end → load event), and the layout of the graph
  alone — the chain's fragment put in the page again, until the browser has laid it out
  (``getBBox`` of the SVG and the page's box read back) and painted the next frame.

Prints markdown tables.
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

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/chainbench"
CHROMIUM = "/usr/bin/chromium"
USERNAME, PASSWORD = "bench", "bench-password-1"
FOCUS = "QA-25"

# In the page: put the graph's HTML in again and wait until it is laid out and painted.
RELAYOUT = """async (html) => {
  const holder = document.getElementById('chain-graph');
  const start = performance.now();
  holder.outerHTML = html;
  const svg = document.querySelector('#chain-graph svg.chain-svg');
  svg.getBBox();
  document.body.getBoundingClientRect();
  const laidOut = performance.now();
  await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
  return {layout: laidOut - start, painted: performance.now() - start,
          nodes: svg.querySelectorAll('.node').length};
}"""
NAVIGATION = """() => {
  const n = performance.getEntriesByType('navigation')[0];
  return {server: n.responseStart - n.requestStart, render: n.loadEventEnd - n.responseEnd};
}"""


def seed(features):
    """Write the chain (see the module docstring); return the number of tasks."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from tasks_app.models import Event, Pod, Task

    pods = {n: Pod.objects.create(name=n, order=i) for i, n in enumerate(CHAIN_PODS)}
    start = timezone.now() - timedelta(days=10)
    tasks, deps, events = [], [], []

    def task(id, pod, at, baton=None, after=(), scale_root=""):
        created = start + timedelta(minutes=at)
        tasks.append(
            Task(
                id=id,
                title=f"Bench {id}",
                pod_owner=pods[pod],
                status="done",
                token_count=1000 + (len(tasks) * 137) % 12000,
                created_at=created,
                started_at=created + timedelta(minutes=20),
                completed_at=created + timedelta(minutes=80),
                handoff_from_id=baton,
                scale_root=scale_root,
            )
        )
        deps.extend((id, d) for d in after)
        if baton:
            mode = "sync" if len(tasks) % 2 else "async"
            for kind, offset, payload in (
                ("handoff", 0, {"handoff_from": baton, "mode": mode, "blocked": False}),
                ("claimed", 20, {"instance": f"{pod}#1"}),
            ):
                events.append(
                    Event(
                        task_key=id,
                        kind=kind,
                        from_pod=pod,
                        to_pod=pod,
                        payload=payload,
                        created_at=created + timedelta(minutes=offset),
                    )
                )

    task("PROD-R", "ProductPod", 0)
    for f in range(1, features + 1):
        at = f * 30
        task(f"PROD-{f}", "ProductPod", at, "PROD-R", ["PROD-R"] + ([f"PROD-{f - 5}"] * (f > 5)))
        task(f"DEV-{f}", "DevPod", at + 90, f"PROD-{f}", [f"PROD-{f}"])
        task(f"DEV-{f}-b", "DevPod", at + 95, f"PROD-{f}", [f"PROD-{f}"])
        last_dev = f"DEV-{f}"
        if f % 7 == 0:
            task(f"DEV-{f}.2", "DevPod", at + 170, f"DEV-{f}", scale_root=f"DEV-{f}")
            last_dev = f"DEV-{f}.2"
        task(f"QA-{f}", "QAPod", at + 200, last_dev, [last_dev, f"DEV-{f}-b"])
    Task.objects.bulk_create(tasks, batch_size=2000)
    through = Task.depends_on.through
    through.objects.bulk_create([through(from_task_id=a, to_task_id=b) for a, b in deps])
    for event in events:
        event.task_id = event.task_key
    Event.objects.bulk_create(events, batch_size=2000)
    get_user_model().objects.create_user(USERNAME, password=PASSWORD)
    return len(tasks)


CHAIN_PODS = ("ProductPod", "DevPod", "QAPod")


def server_times(runs):
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.login(username=USERNAME, password=PASSWORD)
    rows = []
    for label, url in [
        (f"GET /chains/{FOCUS}/ (page)", f"/chains/{FOCUS}/"),
        (f"GET /chains/{FOCUS}/graph/ (the poll, changed)", f"/chains/{FOCUS}/graph/"),
    ]:
        assert client.get(url).status_code == 200  # warm-up
        times = []
        for _ in range(runs):
            with CaptureQueriesContext(connection) as queries:
                began = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, response.status_code
        rows.append((label, statistics.median(times), min(times), max(times), len(queries)))
    return rows


def browser_times(env, runs):
    from playwright.sync_api import sync_playwright

    from tests.support.servers import AsgiServer

    with AsgiServer(env=env, server="daphne") as server, sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(f"{server.url}/login/?next=/chains/{FOCUS}/")
        page.fill("#id_username", USERNAME)
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{server.url}/chains/{FOCUS}/")
        navigations = []
        for _ in range(runs):
            page.reload(wait_until="load")
            navigations.append(page.evaluate(NAVIGATION))
        html = page.evaluate("() => document.getElementById('chain-graph').outerHTML")
        layouts = [page.evaluate(RELAYOUT, html) for _ in range(runs)]
        browser.close()
    nodes = layouts[-1]["nodes"]

    def row(label, values):
        return (label, statistics.median(values), min(values), max(values))

    return nodes, [
        row("navigation: response end → load event", [n["render"] for n in navigations]),
        row("graph laid out (fragment inserted → boxes read)", [r["layout"] for r in layouts]),
        row("graph laid out and painted (→ next frame)", [r["painted"] for r in layouts]),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=49)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_CHAIN_DATABASE_URL", DEFAULT_URL)
    )
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file under var/ instead")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    from tests.support.databases import drop_database, recreate_database, remove_sqlite
    from tests.support.servers import django_env, manage

    if args.sqlite:
        path = ROOT / "var" / "bench-chain.sqlite3"
        remove_sqlite(path)
        os.environ.pop("DATABASE_URL", None)
        os.environ["PODBOARD_SQLITE_PATH"] = str(path)
        env = django_env(database_url="", redis_url="", PODBOARD_SQLITE_PATH=path)
    else:
        recreate_database(args.database_url)
        os.environ["DATABASE_URL"] = args.database_url
        env = django_env(database_url=args.database_url, redis_url="")
    os.environ.pop("REDIS_URL", None)
    manage("migrate", "--noinput", "-v", "0", env=env)
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test.utils import setup_test_environment

    settings.ALLOWED_HOSTS = ["testserver"]
    setup_test_environment()
    try:
        count = seed(args.features)
        engine = (
            f"PostgreSQL {connection.pg_version // 10000}" if connection.vendor == "postgresql"
            else "SQLite"
        )  # fmt: skip
        connection.close()
        load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
        print(
            f"Delivery chain of {FOCUS}: {count} tasks linked, {engine}; median of {args.runs}; "
            f"load average before the runs {load}\n"
        )
        print("| server (Django test client) | median ms | best ms | worst ms | queries |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for label, median, best, worst, queries in server_times(args.runs):
            print(f"| `{label}` | {median:.0f} | {best:.0f} | {worst:.0f} | {queries} |")
        connection.close()
        nodes, rows = browser_times(env, args.runs)
        print(f"\n| Chromium, {nodes} nodes drawn | median ms | best ms | worst ms |")
        print("| --- | ---: | ---: | ---: |")
        for label, median, best, worst in rows:
            print(f"| {label} | {median:.0f} | {best:.0f} | {worst:.0f} |")
    finally:
        connection.close()
        if not args.sqlite and not args.keep:
            drop_database(args.database_url)


if __name__ == "__main__":
    main()
