"""Measure the board as a person sees it in Chromium: paint, load, drags and search at 50,000 tasks.

    .venv/bin/python bench/bench_browser.py [--tasks 50000] [--runs 7] [--reuse]

One uvicorn process on a SQLite file (var/bench-browser.sqlite3), seeded like
bench/bench_board.py (four pods; 75 % done, 20 % ready, 5 % active, a tenth blocked), driven by
headless Chromium (/usr/bin/chromium) through Playwright. After two warm-up visits it measures,
``--runs`` times each, median and worst:

- the board's first contentful paint and load event (the Navigation Timing of a fresh visit);
- a drag of a Ready card to another pod's Ready column, from the mouse release until the card
  sits in its new column with the server's answer swapped in; and the server's share (the
  request's time to first byte);
- a drag within Ready (third card to the top of its column), the same way;
- a search typed key by key: from the last key until the filtered board is on the page (the
  board waits 150 ms after the last key before it asks).

``--reuse`` keeps a database already seeded with the same number of tasks. Prints a markdown
table on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import markdown_table  # noqa: E402
from tests.support.databases import remove_sqlite  # noqa: E402
from tests.support.servers import AsgiServer, django_env, manage, run_django  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
USERNAME, PASSWORD = "bench", "bench-password-1"
PODS = ["ProductPod", "DevPod", "QAPod", "DocsPod"]
TARGETS = {"fcp": 1000, "load": 1500, "drag": 300, "reorder": 300, "search": 500}

SEED = """
from django.contrib.auth import get_user_model
from bench.bench_board import seed
from tasks_app.models import Pod, Task
if Task.objects.count() != {n}:
    pods = [Pod.objects.get_or_create(name=name, defaults={{"order": i, "wip_limit": 5}})[0]
            for i, name in enumerate({pods!r})]
    seed({n}, pods)
if not get_user_model().objects.filter(username={user!r}).exists():
    get_user_model().objects.create_superuser({user!r}, "", {password!r})
print(Task.objects.count())
"""


def log(line):
    print(line, file=sys.stderr, flush=True)


def prepare(env, n, reuse):
    db = Path(env["PODBOARD_SQLITE_PATH"])
    if not reuse:
        remove_sqlite(db)
    manage("migrate", "--noinput", "-v", "0", env=env)
    start = time.perf_counter()
    code = SEED.format(n=n, pods=PODS, user=USERNAME, password=PASSWORD)
    count = int(run_django(code, env=env, timeout=1800).split()[-1])
    log(f"database ready: {count:,} tasks ({time.perf_counter() - start:.1f} s)")


# In the page --------------------------------------------------------------------------------


def paint_and_load(page, url):
    page.goto(url + "/", wait_until="load")
    # The paint entry can be recorded a moment after the load event: wait for it (buffered).
    return page.evaluate(
        """() => new Promise((resolve, reject) => {
          const nav = performance.getEntriesByType("navigation")[0];
          const done = (fcp) => resolve({fcp: fcp.startTime, load: nav.loadEventEnd,
                                         ttfb: nav.responseStart - nav.requestStart,
                                         bytes: nav.transferSize});
          new PerformanceObserver((list, observer) => {
            const fcp = list.getEntriesByName("first-contentful-paint")[0];
            if (fcp) { observer.disconnect(); done(fcp); }
          }).observe({type: "paint", buffered: true});
          setTimeout(() => reject(new Error("no first-contentful-paint in 10 s")), 10000);
        })"""
    )


def drag_to(page, card_id, list_id, *, index=0):
    """Drag ``card_id`` by its title onto card ``index`` of ``list_id`` (its top edge); return
    the time just before the mouse is released (``time.perf_counter``)."""
    source = page.locator(f'[id="task-{card_id}"] .card-title').bounding_box()
    target = page.locator(f"#{list_id} .card").nth(index).bounding_box()
    x, y = target["x"] + target["width"] / 2, target["y"] + 6
    sx, sy = source["x"] + source["width"] / 2, source["y"] + source["height"] / 2
    page.mouse.move(sx, sy)
    page.mouse.down()
    page.mouse.move(sx + 8, sy + 8, steps=4)
    page.mouse.move(x, y, steps=20)
    page.mouse.move(x, y + 2, steps=2)
    released = time.perf_counter(), time.time()
    page.mouse.up()
    return released


def timed_move(page, card_id, list_id, *, index=0):
    """Drag and wait until the card is in ``list_id`` with no save pending; return
    ``(total ms, server ms, ms from the release until the request left)``."""
    with page.expect_response(re.compile(r"/board/move/$")) as answer:
        released, released_at = drag_to(page, card_id, list_id, index=index)
    settled = f'#{list_id} [id="task-{card_id}"]:not(.is-saving)'
    page.locator(settled).wait_for(state="attached", timeout=15_000)
    total = (time.perf_counter() - released) * 1000
    response = answer.value
    if response.status != 200:
        raise RuntimeError(f"move of {card_id} answered {response.status}")
    timing = response.request.timing
    sent = timing["startTime"] - released_at * 1000
    return total, timing["responseStart"] - timing["requestStart"], sent


def timed_search(page, text):
    """Type ``text`` into the search box key by key; return ms from the last key until the
    filtered board shows ``text``'s card, and the server's share."""
    page.locator("#filter-q").click()
    with page.expect_response(lambda r: "q=" in r.url and r.request.method == "GET") as answer:
        page.keyboard.type(text[:-1], delay=60)
        last = time.perf_counter()
        page.keyboard.type(text[-1])
    page.locator(f'#board-body [id="task-{text}"]').wait_for(state="attached", timeout=15_000)
    total = (time.perf_counter() - last) * 1000
    timing = answer.value.request.timing
    return total, timing["responseStart"] - timing["requestStart"]


def ready_cards(page, pod):
    return page.locator(f"#lane-{pod}-ready .card").evaluate_all(
        "cards => cards.map(c => c.dataset.taskId)"
    )


# The run ------------------------------------------------------------------------------------


def measure(url, runs):
    from playwright.sync_api import sync_playwright

    results = {key: [] for key in ("fcp", "load", "drag", "reorder", "search")}
    servers = {key: [] for key in ("board", "drag", "reorder", "search")}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"]
        )
        context = browser.new_context(viewport={"width": 1440, "height": 2000})
        page = context.new_page()
        page.goto(url + "/login/")
        page.fill("#id_username", USERNAME)
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.locator("#board-body").wait_for()
        for _ in range(2):  # warm: templates, caches, the browser's static files
            paint_and_load(page, url)
        for run in range(runs):
            timing = paint_and_load(page, url)
            results["fcp"].append(timing["fcp"])
            results["load"].append(timing["load"])
            servers["board"].append(timing["ttfb"])
            # A drag to another pod: DevPod's first Ready card onto the top of QAPod's Ready.
            card = ready_cards(page, "DevPod")[0]
            total, server, sent = timed_move(page, card, "lane-QAPod-ready")
            results["drag"].append(total)
            servers["drag"].append(server)
            log(f"  drag: request left {sent:.0f} ms after the release, server {server:.0f} ms")
            # A reorder within Ready: ProductPod's third card to the top of its column.
            card = ready_cards(page, "ProductPod")[2]
            total, server, sent = timed_move(page, card, "lane-ProductPod-ready")
            results["reorder"].append(total)
            servers["reorder"].append(server)
            log(f"  reorder: request left {sent:.0f} ms after the release, server {server:.0f} ms")
            # Search while typing: an id, key by key.
            total, server = timed_search(page, f"T-{1234 + run * 1111:06}")
            results["search"].append(total)
            servers["search"].append(server)
            log(
                f"run {run + 1}: fcp {timing['fcp']:.0f} load {timing['load']:.0f} "
                f"drag {results['drag'][-1]:.0f} reorder {results['reorder'][-1]:.0f} "
                f"search {results['search'][-1]:.0f} ms ({timing['bytes'] / 1024:.0f} KiB)"
            )
        browser.close()
    return results, servers


def table(n, runs, results, servers):
    rows = []
    labels = {
        "fcp": ("board first contentful paint", "board"),
        "load": ("board load event", None),
        "drag": ("drag to another pod, settled", "drag"),
        "reorder": ("reorder within Ready, settled", "reorder"),
        "search": ("search: last key → filtered board", "search"),
    }
    for key, (label, server_key) in labels.items():
        values = results[key]
        server = f"{statistics.median(servers[server_key]):.0f}" if server_key else ""
        median = statistics.median(values)
        rows.append(
            [
                label,
                f"{median:.0f}",
                f"{max(values):.0f}",
                server,
                f"< {TARGETS[key]:,}",
                "yes" if median < TARGETS[key] else "**no**",
            ]
        )
    headers = ["what", "median ms", "worst ms", "server ms (median)", "target ms", "met"]
    return (
        f"Chromium, {n:,} tasks, one uvicorn process, SQLite, warm server; {runs} runs\n\n"
        + markdown_table(headers, rows)
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--reuse", action="store_true", help="keep an already seeded database")
    parser.add_argument("--db", default=str(ROOT / "var" / "bench-browser.sqlite3"))
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} is missing (apt-get install chromium)")
    Path(args.db).parent.mkdir(parents=True, exist_ok=True)
    env = django_env(database_url="", redis_url="", PODBOARD_SQLITE_PATH=args.db, DEBUG="false")
    prepare(env, args.tasks, args.reuse)
    log_path = ROOT / "var" / "bench" / "browser-server.log"
    with AsgiServer(env=env, log_path=log_path) as server:
        results, servers = measure(server.url, args.runs)
    print(table(args.tasks, args.runs, results, servers))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
