"""Browser tests: a real Daphne server on a seeded SQLite file, driven by headless Chromium.

The server runs as a subprocess on a free port in 8200–8299 with its own database file
(var/browser-board.sqlite3), so it never touches the test database of the other tests.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
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


def _free_port():
    for port in range(8200, 8300):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 8200–8299")


def _server_env(db_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="podboard.settings",
        PODBOARD_SQLITE_PATH=str(db_path),
        DEBUG="false",
        PYTHONPATH=str(ROOT),
        PODBOARD_LEASE_SWEEP_SECONDS="3600",
    )
    return env


def wait_until_serving(url, server, log_name, *, timeout):
    """Return once ``url`` answers its login page; kill ``server`` and fail if it never does."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url + "/login/", timeout=2)
            return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                tail = Path(log_name).read_text(errors="replace")[-2000:]
                pytest.fail(f"the server at {url} did not start; {log_name} ends with:\n{tail}")
            time.sleep(0.2)


@pytest.fixture(scope="session")
def live_server_url(tmp_path_factory):
    db_path = ROOT / "var" / "browser-board.sqlite3"
    db_path.parent.mkdir(exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    env = _server_env(db_path)
    python = sys.executable
    subprocess.run(
        [python, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    subprocess.run(
        [
            python,
            "-c",
            "import django; django.setup(); from tests.browser.seeding import seed; seed()",
        ],
        cwd=ROOT,
        env=env,
        check=True,
    )
    port = _free_port()
    log = (tmp_path_factory.mktemp("daphne") / "daphne.log").open("w")
    daphne = shutil.which("daphne", path=str(Path(python).parent)) or "daphne"
    server = subprocess.Popen(
        [daphne, "-b", "127.0.0.1", "-p", str(port), "podboard.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_serving(url, server, log.name, timeout=30)
    yield url
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()
