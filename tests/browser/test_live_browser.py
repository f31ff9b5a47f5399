"""Two open boards in headless Chromium follow a pod's API calls without reloading."""

import json
import subprocess
import sys

import httpx
import pytest
from playwright.sync_api import expect

from .conftest import ROOT, _server_env
from .seeding import PASSWORD, USERNAME

pytestmark = pytest.mark.browser

SETUP = """
import json
import django
django.setup()
from tasks_app.models import Pod, PodToken, Task

dev, qa = Pod.objects.get(name="DevPod"), Pod.objects.get(name="QAPod")
Task.objects.create(id="LIVE-1", title="Live: build it", pod_owner=dev, status="active",
                    handoff_mode="sync", priority=5, task_type="build")
Task.objects.create(id="LIVE-2", title="Live: test it", pod_owner=qa, priority=5,
                    task_type="qa").depends_on.add("LIVE-1")
print(json.dumps({"token": PodToken.issue(pod=dev, label="live browser test")[1]}))
"""


@pytest.fixture
def live_tasks(live_server_url):
    """Add LIVE-1 (active, sync) → LIVE-2 to the server's database; return a DevPod token."""
    env = _server_env(ROOT / "var" / "browser-board.sqlite3")
    made = subprocess.run(
        [sys.executable, "-c", SETUP], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return json.loads(made.stdout.strip().splitlines()[-1])["token"]


def open_board(browser, live_server_url, errors):
    page = browser.new_context(viewport={"width": 1280, "height": 1400}).new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(live_server_url + "/login/?next=/")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("#board-body")).to_be_visible()
    expect(page.locator("#live-status")).to_have_attribute("data-state", "connected")
    return page


def test_sync_completion_through_the_api_shows_on_both_boards(browser, live_server_url, live_tasks):
    errors = []
    boards = [open_board(browser, live_server_url, errors) for _ in range(2)]
    for page in boards:
        expect(page.locator('#lane-DevPod-active [id="task-LIVE-1"]')).to_be_visible()
        expect(page.locator('#lane-QAPod-ready [id="task-LIVE-2"]')).to_be_visible()
        page.evaluate("window.__notReloaded = true")

    answer = httpx.post(
        f"{live_server_url}/api/tasks/LIVE-1/complete",
        headers={"Authorization": f"Bearer {live_tasks}"},
        json={"instance": "DevPod#9", "handoff_note": "Built; over to QA."},
    )
    assert answer.status_code == 200, answer.text
    assert [c["task"]["id"] for c in answer.json()["next"]] == ["LIVE-2"]

    for page in boards:
        done = page.locator('#lane-DevPod-done [id="task-LIVE-1"]')
        successor = page.locator('#lane-QAPod-active [id="task-LIVE-2"]')
        expect(done).to_be_visible(timeout=3000)
        expect(successor).to_be_visible(timeout=3000)
        expect(done).to_have_attribute("data-status", "done")
        expect(successor).to_have_attribute("data-status", "active")
        # Moved, not copied: each card is on the page once.
        assert page.locator('[id="task-LIVE-1"]').count() == 1
        assert page.locator('[id="task-LIVE-2"]').count() == 1
        assert page.evaluate("window.__notReloaded") is True
        assert page.evaluate("window.podboardLive.lastSeq()") > 0
        # The push said how old its change was; on time, so no lag note.
        assert int(page.locator("#live-meta").get_attribute("data-lag")) < 2000
        expect(page.locator("#live-lag")).to_be_hidden()
    assert errors == []


def test_a_late_push_shows_how_far_behind_the_board_is_until_one_arrives_on_time(
    browser, live_server_url
):
    errors = []
    page = open_board(browser, live_server_url, errors)
    note = page.locator("#live-lag")
    expect(note).to_be_hidden()
    seq = page.evaluate("window.podboardLive.lastSeq()") or 0

    def push(lag_ms):
        page.evaluate(
            "([seq, lag]) => window.podboardLive.apply("
            '`<div id="live-meta" hx-swap-oob="true" hidden data-seq="${seq}" '
            'data-lag="${lag}"></div>`)',
            [seq, lag_ms],
        )

    push(3400)
    expect(note).to_be_visible()
    expect(note).to_have_text("behind by 3 s")
    push(1900)  # under the 2 s threshold: on time again
    expect(note).to_be_hidden()
    push(12600)
    expect(note).to_have_text("behind by 13 s")
    push(0)  # the server's all-clear once it has caught up
    expect(note).to_be_hidden()
    assert errors == []
