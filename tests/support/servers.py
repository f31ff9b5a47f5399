"""Start and stop PodBoard server processes on 127.0.0.1.

Every server a test or a bench script starts takes a port from one range, picked at random so
parallel runs on one machine spread out instead of racing for the lowest free port. Each runs in
its own process group, so stopping it also stops its workers.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
LOCALHOST = "127.0.0.1"
SERVER_PORTS = range(8500, 8600)
ASGI_APP = "podboard.asgi:application"


# Ports and processes -------------------------------------------------------------------------


def port_is_free(port):
    """Return True when ``port`` can be bound on 127.0.0.1 (a server binds with SO_REUSEADDR
    too, so a port in TIME_WAIT counts as free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOCALHOST, port))
        except OSError:
            return False
    return True


def free_port(ports=SERVER_PORTS):
    """Return a free port from ``ports``, tried in random order so parallel runs spread out."""
    candidates = list(ports)
    random.shuffle(candidates)
    for port in candidates:
        if port_is_free(port):
            return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1}")


def wait_for_port(port, *, timeout=30.0, process=None):
    """Wait until something accepts connections on ``port``; fail if ``process`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((LOCALHOST, port), 0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {LOCALHOST}:{port} after {timeout:.0f}s")


def stop_process(process, *, sig=signal.SIGTERM, timeout=10.0):
    """Stop ``process`` and its process group (started with ``start_new_session``)."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)


def wait_for_http(url, *, process, timeout=30.0, answers=1):
    """Wait until ``url``'s login page has answered ``answers`` requests (any status): the
    server behind it has imported Django. Fail if ``process`` exits first."""
    import httpx

    deadline = time.monotonic() + timeout
    answered = 0
    while answered < answers:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} gave no HTTP answer in {timeout:.0f}s")
        try:
            httpx.get(url + "/login/", timeout=5)
            answered += 1
        except httpx.HTTPError:
            time.sleep(0.1)


# Django in a subprocess ----------------------------------------------------------------------


def django_env(*, database_url=None, redis_url=None, **extra):
    """Return the environment of a PodBoard subprocess on the given database and Redis.

    ``None`` keeps the variable as this process has it, ``""`` removes it (SQLite, the
    in-memory channel layer). ``DJANGO_ALLOW_ASYNC_UNSAFE``, which the test process sets for
    itself, is removed: a server under test must run as it does in production.
    """
    env = dict(os.environ)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    env["DJANGO_SETTINGS_MODULE"] = "podboard.settings"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    for name, value in (("DATABASE_URL", database_url), ("REDIS_URL", redis_url)):
        if value == "":
            env.pop(name, None)
        elif value is not None:
            env[name] = value
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _run(args, *, env, timeout, what):
    result = subprocess.run(
        [PYTHON, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{what} failed ({result.returncode}):\n"
            f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
        )
    return result.stdout


def run_django(code, *, env, timeout=300):
    """Run ``code`` in a fresh Python with Django set up under ``env``; return its stdout."""
    return _run(
        ["-c", "import django; django.setup()\n" + code],
        env=env,
        timeout=timeout,
        what="django snippet",
    )


def manage(*args, env, timeout=600):
    """Run ``manage.py args`` under ``env``; raise with its output when it fails."""
    return _run(["manage.py", *args], env=env, timeout=timeout, what=f"manage.py {' '.join(args)}")


# The ASGI server -----------------------------------------------------------------------------


class AsgiServer:
    """PodBoard's ASGI application served by uvicorn (or daphne) in a subprocess.

    ``workers=1`` runs a single uvicorn process (no supervisor), so a SIGKILL ends the whole
    server. ``server="daphne"`` serves with daphne, the server ``runserver`` uses, in one
    process. ``options`` are passed to the server command as they are.
    """

    def __init__(
        self, *, env, workers=1, port=None, log_path=None, app=ASGI_APP, server="uvicorn",
        options=(),
    ):  # fmt: skip
        if server not in ("uvicorn", "daphne"):
            raise ValueError(f"unknown ASGI server {server!r}")
        if server == "daphne" and workers != 1:
            raise ValueError("daphne serves with one process")
        self.env = env
        self.app = app
        self.server = server
        self.workers = workers
        self.options = list(options)
        self.port = port or free_port()
        self.log_path = Path(log_path) if log_path else None
        self.process = None
        self._log = None

    @property
    def url(self):
        return f"http://{LOCALHOST}:{self.port}"

    @property
    def ws_url(self):
        return f"ws://{LOCALHOST}:{self.port}"

    def command(self):
        if self.server == "daphne":
            return [PYTHON, "-m", "daphne", "-b", LOCALHOST, "-p", str(self.port), *self.options,
                    self.app]  # fmt: skip
        cmd = [PYTHON, "-m", "uvicorn", self.app, "--host", LOCALHOST, "--port", str(self.port),
               "--lifespan", "off", "--no-access-log", "--log-level", "warning",
               "--timeout-graceful-shutdown", "5", *self.options]  # fmt: skip
        if self.workers > 1:
            cmd += ["--workers", str(self.workers)]
        return cmd

    def start(self, *, timeout=60.0):
        """Start the server; return once every worker answers HTTP requests."""
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        out = self._log or subprocess.DEVNULL
        self.process = subprocess.Popen(
            self.command(), cwd=ROOT, env=self.env, stdout=out, stderr=out, start_new_session=True
        )
        try:
            wait_for_port(self.port, timeout=timeout, process=self.process)
            # Two answers a worker, so that every worker has imported Django.
            answers = self.workers * 2
            wait_for_http(self.url, process=self.process, timeout=timeout, answers=answers)
        except (RuntimeError, TimeoutError) as exc:
            self.stop()
            raise RuntimeError(
                f"the server at {self.url} did not start: {exc}{self._tail()}"
            ) from exc
        return self

    def _tail(self):
        if not self.log_path or not self.log_path.exists():
            return ""
        return f"\n{self.log_path} ends with:\n" + self.log_path.read_text(errors="replace")[-2000:]

    def kill(self, sig=signal.SIGKILL):
        """Send ``sig`` to the whole server (every worker) and wait for it to end."""
        stop_process(self.process, sig=sig, timeout=15)

    def stop(self):
        stop_process(self.process)
        if self._log:
            self._log.close()
            self._log = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
