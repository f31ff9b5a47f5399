"""The board as people use it (issue 16), in headless Chromium against a server of its own.

Honest conflicts with two pages, a page that stays put under 200 live changes, the phone
layout, flash captions, a side panel that follows live changes, keyboard and screen-reader
use (checked with axe-core, vendored under static/vendor/axe-core), badge contrast in both
themes, navigation inside the panel, filters, and the docs' screenshots.

The server runs on its own SQLite file (var/browser-ux.sqlite3) with the browser tests' seed
plus a LoadPod lane, so these tests never disturb the shared board of the other files.
"""

import json
import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests.support.servers import ROOT, AsgiServer, manage, run_django

from .conftest import _server_env
from .seeding import PASSWORD, USERNAME

pytestmark = pytest.mark.browser

DOCS = ROOT / "docs"
DB = ROOT / "var" / "browser-ux.sqlite3"
PAGE_SIZE = 20

SETUP = """
import json
from datetime import timedelta
from django.utils import timezone
from tests.browser.seeding import seed
from tasks_app.models import Pod, PodToken, Task

seed()
load = Pod.objects.create(name="LoadPod", order=9, description="Takes the load test's work.")
dev = Pod.objects.get(name="DevPod")
now = timezone.now()
lease = now + timedelta(minutes=10)
for i in range(3):
    Task.objects.create(id=f"UX-P{i}", title=f"Panel task {i}", pod_owner=load, status="active",
                        claimed_by="LoadPod#1", lease_expires_at=lease, started_at=now,
                        handoff_mode="async", task_type="build", priority=1)
Task.objects.create(id="UX-101", title="Exact id", pod_owner=dev, task_type="build", priority=0)
for i in range(3):
    Task.objects.create(id=f"UX-101{i}", title="Longer id", pod_owner=dev, task_type="build",
                        priority=5)
print(json.dumps({
    "load": PodToken.issue(pod=load, label="ux")[1],
    "dev": PodToken.issue(pod=dev, label="ux")[1],
}))
"""


@pytest.fixture(scope="module")
def ux(tmp_path_factory):
    """The server (``url``) and pod tokens (``load``, ``dev``)."""
    DB.parent.mkdir(exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{DB}{suffix}").unlink(missing_ok=True)
    env = _server_env(DB)
    manage("migrate", "--noinput", "-v", "0", env=env)
    tokens = json.loads(run_django(SETUP, env=env).strip().splitlines()[-1])
    log_path = tmp_path_factory.mktemp("daphne-ux") / "daphne.log"
    with AsgiServer(env=env, server="daphne", log_path=log_path) as server:
        yield {"url": server.url, **tokens}


def sign_in(browser, ux, *, width=1440, height=900, errors=None, color_scheme="light"):
    context = browser.new_context(
        viewport={"width": width, "height": height}, color_scheme=color_scheme
    )
    page = context.new_page()
    if errors is not None:
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on(
            "console",
            lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None,
        )
    page.goto(ux["url"] + "/login/?next=/")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("#board-body")).to_be_visible()
    expect(page.locator("#live-status")).to_have_attribute("data-state", "connected")
    return page


def card(page, task_id):
    return page.locator(f'[id="task-{task_id}"]')


def api(ux, token, method, path, **body):
    answer = httpx.request(
        method,
        ux["url"] + "/api" + path,
        headers={"Authorization": f"Bearer {ux[token]}"},
        json=body or None,
        timeout=30,
    )
    assert answer.status_code < 300, answer.text
    return answer


# 1. Conflicts ---------------------------------------------------------------------------------


def test_a_conflicting_drop_puts_the_card_where_the_server_says_and_says_so(browser, ux):
    errors = []
    mine = sign_in(browser, ux, height=1400, errors=errors)
    theirs = sign_in(browser, ux, height=1400, errors=errors)
    expect(card(mine, "DEV-204")).to_have_attribute("data-status", "ready")

    # I pick DEV-204 up; while I hold it, someone else moves it to Active.
    mine.locator("#lane-DevPod").scroll_into_view_if_needed()
    card(mine, "DEV-204").scroll_into_view_if_needed()
    box = card(mine, "DEV-204").locator(".card-title").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    mine.mouse.move(x, y)
    mine.mouse.down()
    mine.mouse.move(x + 10, y + 10, steps=4)
    assert mine.evaluate("document.body.dataset.dragging") == "DEV-204"
    other = card(theirs, "DEV-204").locator(".card-menu")
    other.locator("summary").click()
    other.locator("select[name=to_status]").select_option("active")
    with theirs.expect_response(re.compile(r"/board/move/$")) as answer:
        other.locator("button[type=submit]").click()
    assert answer.value.status == 200
    expect(theirs.locator('#lane-DevPod-active [id="task-DEV-204"]')).to_be_visible()
    mine.wait_for_timeout(600)  # the push reaches my board and waits for my drop

    # I drop it on Done: refused (it changed), and the card goes where it really is.
    target = mine.locator("#lane-DevPod-done .card").first.bounding_box()
    with mine.expect_response(re.compile(r"/board/move/$")) as answer:
        mine.mouse.move(target["x"] + 20, target["y"] + 6, steps=20)
        mine.mouse.move(target["x"] + 20, target["y"] + 8, steps=2)
        mine.mouse.up()
    assert answer.value.status == 409
    assert answer.value.headers["podboard-lane"] == "lane-DevPod-active"
    toast = mine.locator(".toast-error")
    expect(toast).to_contain_text("Task DEV-204 changed since you loaded it")
    expect(toast).to_contain_text("It is now Active in DevPod.")
    moved = mine.locator('#lane-DevPod-active [id="task-DEV-204"]')
    expect(moved).to_have_attribute("data-status", "active")
    mine.wait_for_timeout(800)  # the held push is released: it must not undo the placement
    expect(moved).to_have_attribute("data-status", "active")
    assert card(mine, "DEV-204").count() == 1
    expect(mine.locator("#count-DevPod-active")).to_have_text("3")
    mine.reload()
    expect(mine.locator('#lane-DevPod-active [id="task-DEV-204"]')).to_be_visible()
    assert errors == []


# 2. A page that stays put ----------------------------------------------------------------------


def test_page_height_stays_bounded_while_200_live_changes_arrive(browser, ux):
    errors = []
    page = sign_in(browser, ux, errors=errors)
    before = page.evaluate("document.documentElement.scrollHeight")
    client = httpx.Client(
        base_url=ux["url"] + "/api", headers={"Authorization": f"Bearer {ux['load']}"}
    )
    heights = []
    for i in range(100):  # 100 changes: new tasks in LoadPod's Ready column
        made = client.post(
            "/tasks", json={"id": f"LOAD-{i:03}", "title": f"Load {i}", "pod_owner": "LoadPod"}
        )
        assert made.status_code == 201, made.text
        if i % 25 == 24:
            heights.append(page.evaluate("document.documentElement.scrollHeight"))
    for i in range(50):  # 100 more: a pod pulls and completes 50 of them
        pulled = client.post("/tasks/next", json={"pod_owner": "LoadPod", "instance": "Load#1"})
        assert pulled.status_code == 200, pulled.text
        task_id = pulled.json()["task"]["id"]
        done = client.post(f"/tasks/{task_id}/complete", json={"instance": "Load#1"})
        assert done.status_code == 200, done.text
        if i % 10 == 9:
            heights.append(page.evaluate("document.documentElement.scrollHeight"))

    expect(page.locator("#count-LoadPod-done")).to_have_text("50", timeout=10_000)
    expect(page.locator("#count-LoadPod-ready")).to_have_text("50")
    expect(page.locator("#count-LoadPod-active")).to_have_text("3")  # UX-P0…2
    # Each column keeps to its page; the rest is counted on its "Show N more" button.
    expect(page.locator("#lane-LoadPod-ready .card")).to_have_count(PAGE_SIZE, timeout=5000)
    expect(page.locator("#lane-LoadPod-done .card")).to_have_count(PAGE_SIZE)
    expect(page.locator("#more-LoadPod-ready .more-button")).to_have_text("Show 30 more")
    expect(page.locator("#more-LoadPod-done .more-button")).to_have_text("Show 30 more")
    # Done shows the newest first.
    first_done = page.locator("#lane-LoadPod-done .card").first
    expect(first_done).to_have_attribute("id", "task-LOAD-049")
    # Ready shows the first 20 in claim order: LOAD-050 … LOAD-069.
    ids = page.locator("#lane-LoadPod-ready .card").evaluate_all("els => els.map(e => e.id)")
    assert ids == [f"task-LOAD-{i:03}" for i in range(50, 70)]
    # Columns scroll inside themselves: the page grew by one bounded lane, then stayed put.
    after = page.evaluate("document.documentElement.scrollHeight")
    column_max = page.evaluate(
        "Math.max(...[...document.querySelectorAll('#lane-LoadPod .cards')]"
        ".map(el => el.clientHeight))"
    )
    assert column_max <= 544, column_max  # 34rem
    assert after - before <= 700, (before, heights, after)
    assert max(heights) - min(heights) <= 700 - 1, heights

    # "Show more" shows the next page and keeps it while changes arrive.
    page.locator("#more-LoadPod-ready .more-button").click()
    expect(page.locator("#lane-LoadPod-ready .card")).to_have_count(2 * PAGE_SIZE)
    expect(page.locator("#more-LoadPod-ready .more-button")).to_have_text("Show 10 more")

    # A lane collapses, and stays collapsed after a reload (remembered in this browser).
    lane = page.locator("#lane-LoadPod")
    toggle = lane.locator(".lane-toggle")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(lane.locator(".lane-columns")).to_be_hidden()
    page.reload()
    expect(page.locator("#lane-LoadPod .lane-toggle")).to_have_attribute("aria-expanded", "false")
    expect(page.locator("#lane-LoadPod .lane-columns")).to_be_hidden()
    page.locator("#lane-LoadPod .lane-toggle").click()
    expect(page.locator("#lane-LoadPod .lane-columns")).to_be_visible()
    assert errors == []


# 3. Phones -----------------------------------------------------------------------------------


def test_phone_shows_one_column_per_lane_with_tabs_and_44px_targets(browser, ux):
    errors = []
    page = sign_in(browser, ux, width=390, height=844, errors=errors)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    lane = page.locator("#lane-QAPod")
    tabs = lane.locator(".col-tab")
    expect(tabs).to_have_text(["Ready 1", "Active 1", "Done 2"])
    # One column at a time; the work in flight (Active) is shown first when there is some.
    expect(lane.locator(".column:visible")).to_have_count(1)
    expect(tabs.nth(1)).to_have_attribute("aria-selected", "true")
    expect(lane.locator("#lane-QAPod-active")).to_be_visible()
    tabs.nth(0).click()
    expect(lane.locator("#lane-QAPod-ready")).to_be_visible()
    expect(lane.locator("#lane-QAPod-active")).to_be_hidden()
    tabs.nth(2).click()
    expect(tabs.nth(2)).to_have_attribute("aria-selected", "true")
    expect(lane.locator("#lane-QAPod-done")).to_be_visible()
    expect(lane.locator("#lane-QAPod-ready")).to_be_hidden()
    # No empty column is stretched to a neighbour's height.
    docs = page.locator("#lane-DocsPod")
    expect(docs.locator(".col-tab")).to_have_text(["Ready 1", "Active 0", "Done 1"])
    docs.locator(".col-tab").nth(1).click()
    height = docs.locator("#lane-DocsPod-active").evaluate("el => el.offsetHeight")
    assert height <= 60, height
    # The choice of column is remembered.
    page.reload()
    expect(page.locator("#lane-QAPod .col-tab").nth(2)).to_have_attribute("aria-selected", "true")
    # Every control is at least 44 × 44 px (inline links inside sentences excepted).
    small = page.evaluate(
        """() => [...document.querySelectorAll(
            '#board-body button, #board-body summary, #board-body select, #board-body .card-id,'
            + ' #filters select, #filters input, #board-body .lane-link')]
          .filter(el => el.checkVisibility())
          .map(el => [el.textContent.trim().slice(0, 30), el.getBoundingClientRect()])
          .filter(([, r]) => r.width < 44 || r.height < 44)
          .map(([t, r]) => `${t} ${Math.round(r.width)}x${Math.round(r.height)}`)"""
    )
    assert small == []
    move = card(page, "QA-301").locator(".card-menu summary")
    box = move.bounding_box()
    assert box["width"] >= 44 and box["height"] >= 44
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert errors == []


# 4. Flash captions ---------------------------------------------------------------------------


def test_flashes_say_what_happened_on_the_cards(browser, ux):
    errors = []
    page = sign_in(browser, ux, errors=errors)
    api(
        ux,
        "dev",
        "POST",
        "/tasks",
        id="CAP-1",
        title="Caption giver",
        pod_owner="DevPod",
        handoff_mode="sync",
    )
    api(
        ux,
        "dev",
        "POST",
        "/tasks",
        id="CAP-2",
        title="Caption taker",
        pod_owner="DevPod",
        depends_on=["CAP-1"],
        handoff_from="CAP-1",
    )
    api(ux, "dev", "POST", "/tasks/CAP-1/start", instance="Cap#1")
    api(ux, "dev", "POST", "/tasks/CAP-1/complete", instance="Cap#1", handoff_note="Over to you.")
    taker = card(page, "CAP-2")
    expect(taker.locator(".flash-caption")).to_have_text("baton from CAP-1 · sync", timeout=4000)
    expect(card(page, "CAP-1").locator(".flash-caption")).to_have_text("baton → CAP-2")
    expect(taker).to_have_class(re.compile(r"\blive-flash\b"))

    api(ux, "dev", "POST", "/tasks/CAP-2/start", instance="Cap#1")
    api(ux, "dev", "POST", "/tasks/CAP-2/scale_out", instance="Cap#1", reason="capacity_reached")
    expect(card(page, "CAP-2").locator(".flash-caption")).to_have_text(
        "scaled out → CAP-2.2", timeout=4000
    )
    expect(card(page, "CAP-2.2").locator(".flash-caption")).to_have_text("continues CAP-2")
    # The caption goes with the ring, a few seconds later.
    expect(card(page, "CAP-2.2").locator(".flash-caption")).to_have_count(0, timeout=8000)
    assert errors == []


# 5. The side panel follows live changes --------------------------------------------------------


def test_open_panel_follows_live_changes_and_drops_actions_that_no_longer_apply(browser, ux):
    errors = []
    page = sign_in(browser, ux, errors=errors)
    card(page, "UX-P0").locator(".card-id").click()
    panel = page.locator("#panel")
    expect(panel.locator(".status-badge").first).to_have_text("Active")
    expect(panel.locator(".actions button", has_text="Complete")).to_be_enabled()
    expect(panel.locator(".lease")).to_have_count(1)

    api(ux, "load", "POST", "/tasks/UX-P0/complete", instance="LoadPod#1", token_count=4321)
    expect(panel.locator(".status-badge").first).to_have_text("Done", timeout=4000)
    expect(panel.locator(".actions button", has_text="Complete")).to_have_count(0)
    expect(panel.locator(".lease")).to_have_count(0)
    expect(panel.locator(".facts")).to_contain_text("Tokens4.3k")
    expect(panel.locator("button.reopen")).to_be_visible()

    # Someone typing in the panel keeps what they typed: the panel says it is stale instead,
    # and its actions are disabled until it is refreshed.
    card(page, "UX-P1").locator(".card-id").click()
    expect(panel.locator(".detail")).to_have_attribute("data-task-id", "UX-P1")
    panel.locator("input[name=note]").fill("half a thought")
    api(ux, "load", "POST", "/tasks/UX-P1/complete", instance="LoadPod#1")
    expect(panel.locator(".stale-note")).to_contain_text("This task changed", timeout=4000)
    expect(panel.locator(".actions button", has_text="Complete")).to_be_disabled()
    expect(panel.locator("input[name=note]")).to_have_value("half a thought")
    panel.locator(".panel-refresh").click()
    expect(panel.locator(".status-badge").first).to_have_text("Done")
    expect(panel.locator(".actions button", has_text="Complete")).to_have_count(0)
    assert errors == []


# 9. Navigation ---------------------------------------------------------------------------------


def test_links_open_in_the_panel_reopen_and_exact_id_first(browser, ux):
    errors = []
    page = sign_in(browser, ux, errors=errors)
    panel = page.locator("#panel")
    # "waits for" on a card opens the dependency in the panel.
    card(page, "QA-310").locator(".blocked a", has_text="DEV-101").click()
    expect(panel.locator(".detail")).to_have_attribute("data-task-id", "DEV-101")
    # A baton-trail link too; the board stays.
    panel.locator(".baton-trail a", has_text="PROD-100").click()
    expect(panel.locator(".detail")).to_have_attribute("data-task-id", "PROD-100")
    expect(page).to_have_url(re.compile(r"/$"))
    # A done task offers Reopen: back to Ready through the move rule, on every board.
    with page.expect_response(re.compile(r"/tasks/PROD-100/reopen/$")) as answer:
        panel.locator("button.reopen").click()
    assert answer.value.status == 200
    expect(panel.locator(".status-badge").first).to_have_text("Ready")
    expect(panel.locator(".messages")).to_contain_text("PROD-100 is reopened")
    expect(page.locator('#lane-ProductPod-ready [id="task-PROD-100"]')).to_be_visible(timeout=4000)
    # Searching an id puts that task first, before longer ids that contain it.
    page.fill("#filter-q", "UX-101")
    expect(page).to_have_url(re.compile(r"\?q=UX-101$"))
    ids = page.locator("#lane-DevPod-ready .card").evaluate_all("els => els.map(e => e.id)")
    assert ids == ["task-UX-101", "task-UX-1010", "task-UX-1011", "task-UX-1012"]
    assert errors == []


# 10. Filters -----------------------------------------------------------------------------------


def test_filters_show_clear_say_nothing_matches_and_keep_wip_over_all_tasks(browser, ux):
    errors = []
    page = sign_in(browser, ux, errors=errors)
    wip = page.locator("#wip-QAPod")
    expect(wip).to_have_text("WIP 1/2")
    clear = page.locator("#clear-filters")
    expect(clear).to_be_hidden()
    page.fill("#filter-q", "sign-in")
    expect(page).to_have_url(re.compile(r"\?q=sign-in$"))
    expect(clear).to_be_visible()
    # QA-305 (active) does not match, yet the WIP badge still counts it.
    expect(page.locator("#count-QAPod-active")).to_have_text("0")
    expect(wip).to_have_text("WIP 1/2")
    expect(page.locator(".nothing-matches")).to_have_count(0)
    page.fill("#filter-q", "zebra-crossing")
    expect(page.locator(".nothing-matches")).to_have_text(
        "Nothing matches “zebra-crossing”. Clear the filters."
    )
    expect(page.locator("#board-body .card")).to_have_count(0)
    expect(wip).to_have_text("WIP 1/2")
    clear.click()
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.locator(".nothing-matches")).to_have_count(0)
    expect(clear).to_be_hidden()
    assert errors == []


# 7. Keyboard and screen readers ----------------------------------------------------------------

AXE_SERIOUS = """() => axe.run(document, {resultTypes: ['violations']}).then(r => r.violations
  .filter(v => v.impact === 'serious' || v.impact === 'critical')
  .map(v => v.id + ': ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | ')))"""


def axe_violations(page, ux):
    page.add_script_tag(url=ux["url"] + "/static/vendor/axe-core/axe.min.js")
    return page.evaluate(AXE_SERIOUS)


def test_keyboard_and_screen_reader_use(browser, ux):
    errors = []
    page = sign_in(browser, ux, errors=errors)
    expect(card(page, "DEV-101").locator(".card-menu summary")).to_have_attribute(
        "aria-label", "Move DEV-101"
    )
    # The panel is no live region (it would be read out whole); live regions are short.
    assert page.locator("#panel").get_attribute("aria-live") is None
    regions = page.locator("[aria-live], [role=status], [role=alert]").evaluate_all(
        "els => els.map(e => e.textContent.trim().length)"
    )
    assert max(regions) <= 80, regions
    # Opening a card moves focus into the panel; closing it brings focus back to the card.
    link = card(page, "DEV-101").locator(".card-id")
    link.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#panel h1")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator("#panel .detail")).to_have_count(0)
    expect(link).to_be_focused()
    # Lane links: a few Tab presses reach QAPod's lane, not a hundred.
    page.locator("#filter-q").focus()
    presses = 0
    while page.evaluate("document.activeElement.textContent.trim()") != "QAPod" and presses < 20:
        page.keyboard.press("Tab")
        presses += 1
    assert presses <= 8, presses
    page.keyboard.press("Enter")
    expect(page.locator("#lane-QAPod")).to_be_focused()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.closest('.lane').id") == "lane-QAPod"
    assert axe_violations(page, ux) == []
    for path in ["/tasks/DEV-101/", "/tasks/PROD-101/", "/import/"]:
        page.goto(ux["url"] + path)
        assert axe_violations(page, ux) == [], path
    assert errors == []


# 8. Contrast -----------------------------------------------------------------------------------

CONTRAST = """() => {
  const parse = (text) => {
    let m = text.match(/rgba?\\(([^)]+)\\)/);
    if (m) {
      const p = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
      return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
    }
    m = text.match(/color\\(srgb ([^)]+)\\)/);
    if (m) {
      const p = m[1].split(/[ /]+/).filter(Boolean).map(Number);
      return [p[0] * 255, p[1] * 255, p[2] * 255, p.length > 3 ? p[3] : 1];
    }
    throw new Error('colour ' + text);
  };
  const over = (top, under) => {
    const a = top[3];
    return [0, 1, 2].map(i => top[i] * a + under[i] * (1 - a)).concat([1]);
  };
  const background = (el) => {
    const layers = [];
    for (let node = el; node; node = node.parentElement) {
      const bg = parse(getComputedStyle(node).backgroundColor);
      if (bg[3] > 0) layers.push(bg);
      if (bg[3] >= 1) break;
    }
    let colour = [255, 255, 255, 1];
    if (!layers.length || layers[layers.length - 1][3] < 1) {
      colour = parse(getComputedStyle(document.body).backgroundColor);
    }
    for (let i = layers.length - 1; i >= 0; i--) colour = over(layers[i], colour);
    return colour;
  };
  const opacity = (el) => {
    let o = 1;
    for (let node = el; node; node = node.parentElement) {
      o *= Number(getComputedStyle(node).opacity);
    }
    return o;
  };
  const lum = (c) => {
    const [r, g, b] = c.slice(0, 3).map(v => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const out = [];
  const badges = '.tag, .prio, .status-badge, .wip, .lease, .count, .tokens, .instance, ' +
    '.flash-caption, .paused-tag, .col-tab, .done-at, .column-head, .lane-links';
  for (const el of document.querySelectorAll(badges)) {
    if (!el.checkVisibility() || !el.textContent.trim()) continue;
    const bg = background(el);
    const text = parse(getComputedStyle(el).color);
    const fg = over([...text.slice(0, 3), text[3] * opacity(el)], bg);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    const what = `${el.className} "${el.textContent.trim().slice(0, 20)}"`;
    if (ratio < 4.5) out.push(`${what} ${ratio.toFixed(2)}`);
  }
  return out;
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_badge_has_contrast_of_at_least_4_5(browser, ux, scheme):
    page = sign_in(browser, ux, color_scheme=scheme)
    assert page.locator(".card.status-done").count() > 0
    assert page.locator(".card .prio").count() > 10
    assert page.evaluate(CONTRAST) == []
    page.goto(ux["url"] + "/tasks/DEV-101/")
    assert page.evaluate(CONTRAST) == []


# Screenshots for the docs -----------------------------------------------------------------------


def test_docs_screenshots(browser, ux):
    """docs/board.png (1440 × 900) and docs/board-phone.png (390 × 844), from the seeded board
    after the tests above have run their live changes through it."""
    page = sign_in(browser, ux)
    expect(page.locator("#lane-DevPod-active .card").first).to_be_visible()
    page.screenshot(path=str(DOCS / "board.png"))
    phone = sign_in(browser, ux, width=390, height=844)
    expect(phone.locator("#lane-ProductPod .col-tab").first).to_be_visible()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    phone.screenshot(path=str(DOCS / "board-phone.png"))
    assert (DOCS / "board.png").stat().st_size > 20_000
    assert (DOCS / "board-phone.png").stat().st_size > 10_000
