"""The first run as a new user sees it: `manage.py demo` (what `make run` starts) brings up the
board with the pod simulator, and handoffs and scale-outs arrive live without a reload."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import ROOT, _free_port, _server_env, wait_until_serving

pytestmark = pytest.mark.browser

# Records, in the page, every card the live layer inserts and every handoff highlight.
WATCH = """
() => {
  window.__seen = {cards: [], flashes: []};
  new MutationObserver((records) => {
    for (const r of records) {
      for (const node of r.addedNodes) {
        if (node.nodeType !== 1) continue;
        const cards = node.matches('article.card') ? [node] : node.querySelectorAll('article.card');
        for (const c of cards) window.__seen.cards.push({
          id: c.id, status: c.dataset.status,
          continuation: c.classList.contains('is-continuation')});
      }
      if (r.type === 'attributes' && r.target.classList.contains('live-flash')) {
        window.__seen.flashes.push(r.target.id);
      }
    }
  }).observe(document.body, {childList: true, subtree: true, attributes: true,
                             attributeFilter: ['class']});
}
"""


@pytest.fixture
def demo_url():
    db_path = ROOT / "var" / "browser-demo.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    port = _free_port()
    env = _server_env(db_path)
    log_path = ROOT / "var" / "browser-demo.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "demo",
                "--port",
                str(port),
                "--speed",
                "6",
                "--seed",
                "3",
                "--lease-seconds",
                "6",
                "--sweep-seconds",
                "1",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        log.flush()
        wait_until_serving(url, server, str(log_path), timeout=60)
        yield url
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def test_demo_board_shows_handoffs_and_scale_outs_live(demo_url, page):
    page.goto(demo_url + "/login/")
    page.fill("input[name=username]", "demo")
    page.fill("input[name=password]", "podboard-demo")
    page.click("button[type=submit]")
    page.wait_for_selector("article.card")
    page.wait_for_selector("#live-status[data-state=connected]", timeout=15_000)
    page.evaluate(WATCH)
    url_before = page.url

    def seen():
        return page.evaluate("window.__seen")

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        got = seen()
        handoffs = [c for c in got["cards"] if c["status"] in ("active", "done")] and got["flashes"]
        scale_outs = [c for c in got["cards"] if c["continuation"] and c["status"] == "ready"]
        if handoffs and scale_outs:
            break
        page.wait_for_timeout(500)
    got = seen()
    assert got["flashes"], "no handoff was highlighted live"
    assert any(c["continuation"] for c in got["cards"]), "no scale-out continuation appeared live"
    assert page.url == url_before  # no reload: the page is the one we watched
    # docs/board.png comes from test_board_ux.py, docs/board-review.png from
    # test_control_browser.py.
    os.makedirs(ROOT / "var" / "screens", exist_ok=True)
    page.screenshot(path=str(ROOT / "var" / "screens" / "demo-board.png"), full_page=True)
