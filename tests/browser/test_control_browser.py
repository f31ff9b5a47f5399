"""Human control in headless Chromium: approve, request changes, send back, answer, pause —
each done on one board and seen live on a second one, without a reload.

The tests share one server with its own database file (var/browser-control.sqlite3), so they
never touch the other browser tests' server. Before any test acts, the board is photographed
for docs/board-review.png: the Review column, a card waiting on a human, a rework loop.
"""

import json

import httpx
import pytest
from playwright.sync_api import expect

from tests.support.servers import ROOT, AsgiServer, run_django

from .conftest import fresh_database

pytestmark = pytest.mark.browser

USERNAME, PASSWORD = "lead", "lead-password-1"

SEED = """
import json
from tasks_app import workflow
from tasks_app.models import Pod, PodToken, Task
from tests.browser.seeding import seed

seed()  # the realistic board of the other browser tests (and the login)
qa = Pod.objects.get(name="QAPod")
Pod.objects.filter(name="DevPod").update(review_required=True, reviewer=qa)
dev = Pod.objects.get(name="DevPod")

def task(id, pod, **fields):
    fields.setdefault("title", "Task " + id)
    return Task.objects.create(id=id, pod_owner=pod, **fields)

for id in ("DEV-R1", "DEV-R2"):
    task(id, dev, status="active", claimed_by="DevPod#1", task_type="build")
    workflow.complete(task_id=id, instance="DevPod#1", handoff_note="Built " + id + ".")
task("QA-R1", qa, title="Test what DEV-R1 built").depends_on.add("DEV-R1")
task("DEV-S1", dev, status="done", title="Build the form")
task("QA-S1", qa, status="active", claimed_by="QAPod#1", title="Test the form",
     handoff_from_id="DEV-S1").depends_on.add("DEV-S1")
task("DEV-Q1", dev, status="active", claimed_by="DevPod#2", title="Pick an auth provider")
workflow.ask(task_id="DEV-Q1", instance="DevPod#2", question="OAuth or SAML first?")
task("DEV-L1", dev, status="done", title="Export reports as CSV", task_type="build")
task("QA-L1", qa, status="active", claimed_by="QAPod#2", title="Test the CSV export",
     handoff_from_id="DEV-L1").depends_on.add("DEV-L1")
workflow.send_back(task_id="QA-L1", instance="QAPod#2", to="DEV-L1",
                   findings="Unicode names are cut at 20 characters in the export.")
print(json.dumps({"dev": PodToken.issue(pod=dev, label="browser")[1]}))
"""


@pytest.fixture(scope="module")
def control_server(tmp_path_factory, browser):
    """A server on its own seeded SQLite file; yields ``(url, DevPod token)`` once the board
    is photographed for the docs."""
    env = fresh_database("browser-control.sqlite3")
    seeded = json.loads(run_django(SEED, env=env).strip().splitlines()[-1])
    log_path = tmp_path_factory.mktemp("control-daphne") / "daphne.log"
    with AsgiServer(env=env, server="daphne", log_path=log_path) as server:
        photograph(browser, server.url)
        yield server.url, seeded["dev"]


def photograph(browser, url):
    """Save the board as docs/board-review.png (docs/workflow.md): lanes with Review, a card
    waiting on a human, a rework loop and the header's count."""
    errors = []
    page = open_board(browser, url, errors)
    expect(page.locator('[id="task-DEV-Q1"] .waiting-human')).to_be_visible()
    expect(page.locator("#lane-DevPod-review .card")).to_have_count(2)
    page.set_viewport_size({"width": 1500, "height": 1100})
    page.screenshot(path=str(ROOT / "docs" / "board-review.png"), full_page=True)
    page.context.close()
    assert errors == []


def open_board(browser, url, errors, path="/"):
    page = browser.new_context(viewport={"width": 1400, "height": 1600}).new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    page.goto(url + "/login/?next=" + path)
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    if path == "/":
        expect(page.locator("#board-body")).to_be_visible()
        expect(page.locator("#live-status")).to_have_attribute("data-state", "connected")
        page.evaluate("window.__notReloaded = true")
    return page


@pytest.fixture
def boards(browser, control_server):
    """Two boards open on the server (the first acts, the second watches); no script errors."""
    url, _token = control_server
    errors = []
    pages = [open_board(browser, url, errors) for _ in range(2)]
    yield pages
    for page in pages:
        assert page.evaluate("window.__notReloaded") is True
    assert errors == []
    for page in pages:
        page.context.close()


def card(page, task_id):
    return page.locator(f'[id="task-{task_id}"]')


def test_approve_on_one_board_shows_done_on_both(boards):
    actor, watcher = boards
    for page in boards:
        expect(page.locator('#lane-DevPod-review [id="task-DEV-R1"]')).to_be_visible()
        expect(page.locator("#lane-QAPod-review")).to_have_count(0)  # QAPod reviews nothing
    waiting = int(watcher.locator("#count-DevPod-review").inner_text())
    card(actor, "DEV-R1").locator("button.approve").click()
    for page in boards:
        expect(page.locator('#lane-DevPod-done [id="task-DEV-R1"]')).to_be_visible(timeout=4000)
        expect(page.locator("#count-DevPod-review")).to_have_text(str(waiting - 1), timeout=4000)
    expect(watcher.locator('#lane-QAPod-ready [id="task-QA-R1"] .blocked')).to_have_count(
        0, timeout=4000
    )


def test_request_changes_sends_the_task_back_to_ready_on_both(boards, control_server):
    actor, _watcher = boards
    menu = card(actor, "DEV-R2").locator("details.changes-menu")
    menu.locator("summary").click()
    menu.locator("textarea[name=note]").fill("Add the missing test.")
    menu.locator("button[type=submit]").click()
    for page in boards:
        expect(page.locator('#lane-DevPod-ready [id="task-DEV-R2"]')).to_be_visible(timeout=4000)
    detail = actor.context.new_page()
    detail.goto(control_server[0] + "/tasks/DEV-R2/")
    expect(detail.locator(".review-history")).to_contain_text("Changes requested")
    expect(detail.locator(".review-history")).to_contain_text("Add the missing test.")
    detail.close()


def test_send_back_from_the_card_draws_the_loop_on_both(boards):
    actor, watcher = boards
    menu = card(actor, "QA-S1").locator("details.send-back-menu")
    menu.locator("summary").click()
    menu.locator("select[name=to]").select_option("DEV-S1")
    menu.locator("textarea[name=findings]").fill("The form crashes on submit.")
    menu.locator("button[type=submit]").click()
    for page in boards:
        rework = page.locator('#lane-DevPod-ready [id="task-DEV-S1.fix1"]')
        expect(rework).to_be_visible(timeout=4000)
        expect(rework.locator(".rework-loop")).to_contain_text("fix for QA-S1")
        sender = page.locator('#lane-QAPod-ready [id="task-QA-S1"]')
        expect(sender).to_be_visible(timeout=4000)
        expect(sender.locator(".rework-loop")).to_contain_text("sent back ×1")
        expect(sender.locator(".blocked")).to_contain_text("DEV-S1.fix1")
    assert watcher.locator('[id="task-QA-S1"]').count() == 1


def test_answering_a_question_clears_the_mark_on_the_other_board(boards, control_server):
    url, _token = control_server
    _actor, watcher = boards
    waiting = card(watcher, "DEV-Q1")
    expect(waiting.locator(".waiting-human")).to_contain_text("OAuth or SAML first?")
    expect(watcher.locator("#waiting-on-human b")).to_have_text("1")
    errors = []
    page = open_board(watcher.context.browser, url, errors, path="/tasks/DEV-Q1/")
    expect(page.locator("#answer")).to_contain_text("OAuth or SAML first?")
    page.locator("textarea[name=answer]").fill("OAuth first; SAML next quarter.")
    page.locator(".answer-form button[type=submit]").click()
    expect(page.locator(".comments")).to_contain_text("OAuth first; SAML next quarter.")
    expect(page.locator("#answer")).to_have_count(0)
    expect(waiting.locator(".waiting-human")).to_have_count(0, timeout=4000)
    expect(watcher.locator("#waiting-on-human b")).to_have_text("0", timeout=4000)
    assert errors == []
    page.context.close()


def test_pausing_a_lane_shows_on_both_boards_and_next_holds_back(boards, control_server):
    url, token = control_server
    actor, watcher = boards
    menu = actor.locator("#lane-DevPod details.lane-menu")
    menu.locator("summary").click()
    menu.locator("button.do-pause").click()
    for page in boards:
        expect(page.locator("#wip-DevPod")).to_contain_text("paused", timeout=4000)
    answer = httpx.post(
        f"{url}/api/tasks/next",
        headers={"Authorization": f"Bearer {token}"},
        json={"pod_owner": "DevPod", "instance": "DevPod#7"},
    )
    assert (answer.status_code, answer.headers.get("PodBoard-Paused")) == (204, "1")
    watcher_menu = watcher.locator("#lane-DevPod details.lane-menu")
    watcher_menu.locator("summary").click()
    expect(watcher_menu.locator("button.do-pause")).to_be_hidden()
    watcher_menu.locator("button.do-resume").click()
    for page in boards:
        expect(page.locator("#wip-DevPod")).not_to_contain_text("paused", timeout=4000)
