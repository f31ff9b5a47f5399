"""Browser tests: a real Daphne server on a seeded SQLite file, driven by headless Chromium.

The server runs as a subprocess on a free port (tests/support/servers.py) with its own database
file (var/browser-board.sqlite3), so it never touches the test database of the other tests.
"""

import os
from pathlib import Path

import pytest

from tests.support.servers import (
    ROOT,
    AsgiServer,
    django_env,
    free_port,
    manage,
    run_django,
    wait_for_http,
)

CHROMIUM = "/usr/bin/chromium"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(config, items):
    if Path(CHROMIUM).exists() or IN_CI:
        return
    skip = pytest.mark.skip(reason=f"{CHROMIUM} is missing (apt-get install chromium)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing under CI=true")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 900}}


# test_demo_browser.py and test_live_browser.py start or reach servers of their own with these.
_free_port = free_port


def _server_env(db_path):
    """Return the environment of a server on the SQLite file ``db_path``, without Redis."""
    return django_env(database_url="", redis_url="", PODBOARD_SQLITE_PATH=db_path, DEBUG="false")


def fresh_database(name):
    """Remove ``var/<name>`` (and its WAL files), migrate a new one; return its server's env."""
    db_path = ROOT / "var" / name
    db_path.parent.mkdir(exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    env = _server_env(db_path)
    manage("migrate", "--noinput", "-v", "0", env=env)
    return env


def wait_until_serving(url, server, log_name, *, timeout):
    """Return once ``url`` answers its login page; kill ``server`` and fail if it never does."""
    try:
        wait_for_http(url, process=server, timeout=timeout)
    except (RuntimeError, TimeoutError) as exc:
        server.kill()
        tail = Path(log_name).read_text(errors="replace")[-2000:]
        pytest.fail(f"the server at {url} did not start ({exc}); {log_name} ends with:\n{tail}")


@pytest.fixture(scope="session")
def live_server_url(tmp_path_factory):
    env = fresh_database("browser-board.sqlite3")
    run_django("from tests.browser.seeding import seed; seed()", env=env)
    log_path = tmp_path_factory.mktemp("daphne") / "daphne.log"
    with AsgiServer(env=env, server="daphne", log_path=log_path) as server:
        yield server.url
