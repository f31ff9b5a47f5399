"""The board in a real headless Chromium: log in, drag, refused moves, detail, no script runs.

Tests share one seeded server and run in file order (the screenshot first, before any move).
"""

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from .seeding import PASSWORD, USERNAME

pytestmark = pytest.mark.browser

SCREENS = Path(__file__).resolve().parents[2] / "var" / "screens"


@pytest.fixture
def board(page, live_server_url):
    """A logged-in page on the board; fails the test on any JavaScript error or anything the
    page's Content-Security-Policy refused."""
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    page.goto(live_server_url + "/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("#board-body")).to_be_visible()
    wait_for_scripts(page)
    yield page
    assert errors == []


def wait_for_scripts(page, timeout=10.0):
    """Wait until the board's scripts are loaded. Polled from here: Playwright's in-page
    ``wait_for_function`` evaluates a string, which the page's CSP (no 'unsafe-eval') refuses."""
    for _ in range(int(timeout / 0.05)):
        if page.evaluate("() => !!(window.Sortable && window.podboard && window.htmx)"):
            return
        page.wait_for_timeout(50)
    raise AssertionError("the board's scripts did not load")


def card(page, task_id):
    return page.locator(f'[id="task-{task_id}"]')


def drag(page, task_id, lane_id):
    """Drag a card by its title onto the top of a column (SortableJS, mouse events)."""
    page.set_viewport_size({"width": 1280, "height": 2000})  # source and target both on screen
    source = card(page, task_id).locator(".card-title").bounding_box()
    target_list = page.locator(f"#{lane_id}")
    first = target_list.locator(".card").first
    if first.count():
        box = first.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + 6
    else:
        box = target_list.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(source["x"] + source["width"] / 2, source["y"] + source["height"] / 2)
    page.mouse.down()
    page.mouse.move(
        source["x"] + source["width"] / 2 + 8, source["y"] + source["height"] / 2 + 8, steps=4
    )
    page.mouse.move(x, y, steps=20)
    page.mouse.move(x, y + 2, steps=2)
    page.mouse.up()


def test_board_screenshot(board):
    expect(board.locator("#lane-DevPod-active .card")).to_have_count(2)
    shot = SCREENS / "board-seeded.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    board.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_drag_ready_to_active(board, live_server_url):
    expect(board.locator("#count-DevPod-active")).to_have_text("2")
    with board.expect_response(re.compile(r"/board/move/$")) as answer:
        drag(board, "DEV-201", "lane-DevPod-active")
    assert answer.value.status == 200
    moved = board.locator('#lane-DevPod-active [id="task-DEV-201"]')
    expect(moved).to_have_attribute("data-status", "active")
    expect(board.locator("#count-DevPod-active")).to_have_text("3")
    expect(board.locator("#count-DevPod-ready")).to_have_text("4")
    assert board.evaluate("document.body.dataset.dragging") is None
    board.reload()
    expect(board.locator('#lane-DevPod-active [id="task-DEV-201"]')).to_be_visible()


def test_drag_to_another_pod_lane(board):
    with board.expect_response(re.compile(r"/board/move/$")) as answer:
        drag(board, "DEV-202", "lane-QAPod-ready")
    assert answer.value.status == 200
    moved = board.locator('#lane-QAPod-ready [id="task-DEV-202"]')
    expect(moved).to_have_attribute("data-pod", "QAPod")
    expect(board.locator("#count-QAPod-ready")).to_have_text("2")
    board.reload()
    expect(board.locator('#lane-QAPod-ready [id="task-DEV-202"]')).to_be_visible()


def test_refused_move_snaps_back_with_its_reason(board):
    before = board.locator("#lane-QAPod-ready .card").evaluate_all("els => els.map(e => e.id)")
    with board.expect_response(re.compile(r"/board/move/$")) as answer:
        drag(board, "QA-310", "lane-QAPod-active")
    assert answer.value.status == 409
    expect(board.locator(".toast-error")).to_contain_text(
        "Task QA-310 waits for DEV-101 to be done."
    )
    expect(board.locator('#lane-QAPod-ready [id="task-QA-310"]')).to_have_attribute(
        "data-status", "ready"
    )
    after = board.locator("#lane-QAPod-ready .card").evaluate_all("els => els.map(e => e.id)")
    assert after == before
    expect(board.locator("#lane-QAPod-active [id='task-QA-310']")).to_have_count(0)
    expect(board.locator("#count-QAPod-active")).to_have_text("1")


def test_keyboard_move_menu(board):
    menu = card(board, "DEV-203").locator(".card-menu")
    menu.locator("summary").focus()
    board.keyboard.press("Enter")
    menu.locator("select[name=to_status]").select_option("active")
    menu.locator("select[name=to_status]").focus()
    board.keyboard.press("Tab")  # the pod select
    board.keyboard.press("Tab")  # the Move button
    with board.expect_response(re.compile(r"/board/move/$")):
        board.keyboard.press("Enter")
    expect(board.locator('#lane-DevPod-active [id="task-DEV-203"]')).to_have_attribute(
        "data-status", "active"
    )


def test_detail_panel_shows_notes_and_trace_and_runs_no_script(board, live_server_url):
    card(board, "DEV-101").locator(".card-id").click()
    panel = board.locator("#panel")
    expect(panel).to_contain_text("Build the sign-in form")
    expect(panel).to_contain_text("Spec is final. OAuth only, no passwords.")
    expect(panel.locator(".trace")).to_contain_text("Split the form")
    panel.locator(".trace summary").click()
    expect(panel.locator(".trace")).to_contain_text("Read the auth spec")
    panel.locator(".cot summary").click()
    expect(panel.locator(".cot")).to_contain_text("Passwords add reset flows")
    expect(panel.locator(".baton-trail")).to_contain_text("PROD-100")
    assert board.evaluate("window.__pwned") is None
    # The escaped card title never ran either.
    expect(card(board, "DEV-205")).to_contain_text("<script>window.__pwned = 4</script>")

    board.goto(live_server_url + "/tasks/DEV-101/")
    expect(board.locator(".note")).to_contain_text("Spec is final")
    expect(board.locator(".trace")).to_contain_text("Read the auth spec")
    # The note's javascript: link lost its href; clicking it runs nothing.
    board.locator(".note a", has_text="details").click()
    assert board.evaluate("window.__pwned") is None
    assert board.locator(".note script, .note img[onerror]").count() == 0


def test_filters_update_the_board_and_the_url(board):
    board.fill("#filter-q", "sign-in")
    expect(board).to_have_url(re.compile(r"\?q=sign-in$"))
    expect(board.locator("#board-body .card")).to_have_count(3)  # PROD-100, DEV-101, QA-310
    board.select_option("#filter-pod", "QAPod")
    expect(board.locator("#board-body .lane")).to_have_count(1)
    expect(board).to_have_url(re.compile(r"pod=QAPod"))
    board.reload()
    expect(board.locator("#board-body .card")).to_have_count(1)


def test_narrow_screen_and_dark_mode_keep_the_page_usable(board, live_server_url):
    shots = Path(__file__).resolve().parents[2] / "var" / "screens"
    shots.mkdir(parents=True, exist_ok=True)
    board.set_viewport_size({"width": 390, "height": 844})
    board.reload()
    # A lane shows one column at a time, picked with its tabs; the page never scrolls sideways.
    assert board.evaluate("document.documentElement.scrollWidth") <= 390
    lane = board.locator("#lane-DevPod")
    expect(lane.locator(".col-tab")).to_have_count(3)
    expect(lane.locator(".column:visible")).to_have_count(1)
    board.screenshot(path=str(shots / "board-390.png"))
    card(board, "DEV-101").locator(".card-id").click()
    expect(board.locator("#panel")).to_contain_text("Baton trail")
    board.screenshot(path=str(shots / "panel-390.png"))
    board.emulate_media(color_scheme="dark")
    board.set_viewport_size({"width": 1280, "height": 900})
    board.goto(live_server_url + "/")
    background = board.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(18, 21, 26)"
    board.screenshot(path=str(shots / "board-dark.png"))
    board.goto(live_server_url + "/tasks/DEV-101/")
    board.screenshot(path=str(shots / "detail-dark.png"), full_page=True)
    board.emulate_media(color_scheme="light")
    board.goto(live_server_url + "/tasks/NOPE/")
    expect(board.locator("h1")).to_have_text("Nothing here")


def test_api_docs_render_from_podboards_own_files_under_its_csp(page, live_server_url):
    """Swagger UI comes from PodBoard's static files and works under the enforcing CSP."""
    refused, outside = [], []
    page.on(
        "console",
        lambda msg: refused.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    page.on(
        "request",
        lambda r: None if r.url.startswith((live_server_url, "data:")) else outside.append(r.url),
    )
    page.goto(live_server_url + "/api/docs")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
    expect(page.locator(".swagger-ui")).to_contain_text("Pull the pod's next task")
    assert outside == []
    assert refused == []
