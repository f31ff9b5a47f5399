"""The insight pages in headless Chromium: the flow-metrics charts, a delivery chain, and the
board's activity drawer, on a board with 30 days of history (``generate_tasks --history``).

Takes the README's screenshots, docs/metrics.png and docs/chain.png (1440×900). The chain's
layout time for 200 tasks is measured by bench/bench_chain.py, not here.
"""

import json

import httpx
import pytest
from playwright.sync_api import expect

from tests.support.servers import ROOT, AsgiServer, run_django

from .conftest import fresh_database

pytestmark = pytest.mark.browser

USERNAME, PASSWORD = "lead", "lead-password-1"
SHOT = {"width": 1440, "height": 900}
PODS = ["ProductPod", "DevPod", "QAPod"]

SEED = """
import json
from django.conf import settings
from django.contrib.auth import get_user_model
from tasks_app import yamlio
from tasks_app.history import fill
from tasks_app.models import Pod, PodToken

# As the demo starts (history, then the examples with their chain QA-103), over 30 days.
written = fill(count=500, days=30, seed=7, review={"DevPod": "QAPod"})
yamlio.import_directory(settings.BASE_DIR / "examples" / "tasks", actor="lead")
get_user_model().objects.create_user("lead", password="lead-password-1", is_staff=True)
dev = Pod.objects.get(name="DevPod")
print(json.dumps({**written, "dev": PodToken.issue(pod=dev, label="browser")[1]}))
"""


@pytest.fixture(scope="module")
def insight_server(tmp_path_factory):
    """A server on its own seeded SQLite file; yields ``(url, seed summary)``."""
    env = fresh_database("browser-insight.sqlite3")
    seeded = json.loads(run_django(SEED, env=env).strip().splitlines()[-1])
    log_path = tmp_path_factory.mktemp("insight-daphne") / "daphne.log"
    with AsgiServer(env=env, server="daphne", log_path=log_path) as server:
        yield server.url, seeded


@pytest.fixture
def signed_in(browser, insight_server):
    """A function that opens ``path`` signed in at 1440×900; no script or CSP errors."""
    url, _seeded = insight_server
    context = browser.new_context(viewport=SHOT)
    errors = []

    def open_page(path):
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on(
            "console",
            lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None,
        )
        page.goto(url + "/login/?next=" + path)
        page.fill("#id_username", USERNAME)
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(url + path)
        return page

    yield open_page
    context.close()
    assert errors == []


# How many pixels of a canvas are painted (not transparent).
PAINTED = """(canvas) => {
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
  return n;
}"""


def test_metrics_page_draws_every_chart_and_its_table(signed_in):
    page = signed_in("/metrics/")
    canvases = page.locator("canvas")
    expect(canvases).to_have_count(2 + len(PODS))  # throughput, times, one CFD per pod
    for i in range(canvases.count()):
        canvas = canvases.nth(i)
        assert canvas.evaluate("c => Chart.getChart(c) !== undefined") is True
        box = canvas.bounding_box()
        assert box["width"] > 200 and box["height"] > 100
        assert canvas.evaluate(PAINTED) > 500, canvas.get_attribute("id")
    summary = page.locator("section[aria-labelledby=h-summary] table tbody tr")
    expect(summary).to_have_count(len(PODS))
    assert summary.locator("th").all_inner_texts() == PODS
    done = [int(t) for t in summary.locator("td:nth-of-type(1)").all_inner_texts()]
    assert all(n > 0 for n in done), done
    # The throughput table: one row per day of the 30-day window, a cell per pod.
    rows = page.locator("section[aria-labelledby=h-throughput] table tbody tr")
    expect(rows).to_have_count(30)
    expect(rows.first.locator("td")).to_have_count(len(PODS))
    page.screenshot(path=str(ROOT / "docs" / "metrics.png"))


def test_chain_page_draws_its_nodes_and_edges(signed_in):
    page = signed_in("/chains/QA-103/")
    nodes = page.locator("svg.chain-svg .node")
    expect(nodes).to_have_count(8)
    for i in range(nodes.count()):
        box = nodes.nth(i).bounding_box()
        assert box["width"] > 100 and box["height"] > 40
    assert page.locator("svg.chain-svg .edge").count() >= 7
    assert page.locator("svg.chain-svg .node.critical").count() >= 2
    expect(page.locator("svg.chain-svg .node.focus .node-id")).to_have_text("QA-103")
    page.screenshot(path=str(ROOT / "docs" / "chain.png"))


def test_a_history_chain_shows_its_continuation_or_rework(signed_in, insight_server):
    url, _seeded = insight_server
    page = signed_in("/activity/?kind=sent_back")
    first = page.locator("li.feed-row .feed-task").first
    task_id = first.inner_text()
    page.goto(f"{url}/chains/{task_id}/")
    expect(page.locator("svg.chain-svg .edge-rework").first).to_be_attached()
    assert page.locator("svg.chain-svg .node").count() >= 4


def test_activity_drawer_opens_fills_goes_live_and_closes_with_escape(signed_in, insight_server):
    url, seeded = insight_server
    page = signed_in("/")
    toggle = page.locator("#activity-toggle")
    drawer = page.locator("#activity-drawer")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(drawer).to_be_hidden()
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(drawer).to_be_visible()
    assert page.evaluate("document.activeElement.id") == "activity-drawer"
    rows = drawer.locator("li.feed-row")
    expect(rows).to_have_count(30)
    # A pod claims a task through the API: its row appears on top without a reload.
    answer = httpx.post(
        f"{url}/api/tasks/next",
        headers={"Authorization": f"Bearer {seeded['dev']}"},
        json={"pod_owner": "DevPod", "instance": "DevPod#9"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    claimed = answer.json()["task"]["id"]
    expect(rows.first.locator(".feed-caption")).to_have_text("claimed by DevPod#9", timeout=10_000)
    expect(rows.first.locator(".feed-task")).to_have_text(claimed)
    expect(rows.first.locator("time")).to_have_text("just now")
    # The filters reload the list.
    drawer.locator("select[name=kind]").select_option("claimed")
    expect(rows.first.locator(".feed-kind")).to_have_text("claimed")
    assert set(rows.locator(".feed-kind").all_inner_texts()) == {"claimed"}
    page.keyboard.press("Escape")
    expect(drawer).to_be_hidden()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    assert page.evaluate("document.activeElement.id") == "activity-toggle"


def test_activity_drawer_fills_a_phone_screen(signed_in):
    page = signed_in("/")
    page.set_viewport_size({"width": 390, "height": 800})
    page.locator("#activity-toggle").click()
    box = page.locator("#activity-drawer").bounding_box()
    assert (box["x"], box["width"]) == (0, 390)
    expect(page.locator("#activity-drawer li.feed-row").first).to_be_visible()
    page.locator("#activity-drawer [data-drawer-close]").click()
    expect(page.locator("#activity-drawer")).to_be_hidden()
