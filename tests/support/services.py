"""Throwaway Redis and PostgreSQL servers for fault tests, which stop and restart them.

They take their own port ranges and temporary directories, so a fault test never stops the
shared Redis or PostgreSQL that other runs on the machine use.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.databases import recreate_database
from tests.support.servers import LOCALHOST, free_port, stop_process

REDIS_PORTS = range(6390, 6400)
POSTGRES_PORTS = range(5490, 5500)


class PrivateRedis:
    """A ``redis-server`` on a free port in 6390-6399, without persistence."""

    def __init__(self, port=None):
        self.port = port or free_port(REDIS_PORTS)
        self.process = None

    @property
    def url(self):
        return f"redis://{LOCALHOST}:{self.port}/0"

    def start(self, timeout=15.0):
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        options = {"port": self.port, "bind": LOCALHOST, "save": "", "appendonly": "no",
                   "daemonize": "no"}  # fmt: skip
        cmd = [binary, *(arg for k, v in options.items() for arg in (f"--{k}", str(v)))]
        self.process = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ping():
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            time.sleep(0.05)
        raise TimeoutError(f"private redis on {self.port} did not answer PING")

    def ping(self):
        try:
            with socket.create_connection((LOCALHOST, self.port), 0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self):
        stop_process(self.process, sig=signal.SIGKILL)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def postgres_bindir():
    """Return the directory holding ``initdb`` and ``pg_ctl`` (PostgreSQL 15 preferred)."""
    for candidate in (
        "/usr/lib/postgresql/15/bin",
        *sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True),
    ):
        path = Path(candidate)
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            return path
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")


class PrivatePostgres:
    """A PostgreSQL cluster in a temporary directory on a free port in 5490-5499.

    As root, the cluster belongs to the ``postgres`` OS user (``runuser``), since PostgreSQL
    refuses to run as root; otherwise to the current user. Trust authentication on 127.0.0.1
    only, fsync off: it holds test data and is deleted afterwards.
    """

    def __init__(self, port=None):
        self.port = port or free_port(POSTGRES_PORTS)
        self.bindir = postgres_bindir()
        self.base = Path(tempfile.mkdtemp(prefix="podboard-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self.as_root = os.geteuid() == 0
        self.initialised = False

    def url(self, database="postgres"):
        return f"postgres://postgres@{LOCALHOST}:{self.port}/{database}"

    def _run(self, *args, check=True, timeout=120):
        cmd = [str(a) for a in args]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def init(self):
        if self.as_root:
            shutil.chown(self.base, user="postgres", group="postgres")
        initdb = self.bindir / "initdb"
        self._run(
            initdb, "-D", self.data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"
        )
        self.initialised = True
        return self

    def start(self):
        if not self.initialised:
            self.init()
        options = (
            f"-p {self.port} -k {self.base} -c listen_addresses={LOCALHOST} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            self.bindir / "pg_ctl", "-D", self.data, "-o", options, "-l", self.log, "-w", "start"
        )
        return self

    def stop(self, mode="fast"):
        self._run(self.bindir / "pg_ctl", "-D", self.data, "-m", mode, "-w", "stop", check=False)

    def restart(self):
        self.stop()
        self.start()

    def create_database(self, name):
        """Create database ``name`` in this cluster; return its URL."""
        url = self.url(name)
        recreate_database(url)
        return url

    def destroy(self):
        if self.initialised:
            self.stop(mode="immediate")
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.destroy()
