"""Helpers shared by the benchmark scripts, the stress run and the fault tests.

Start and stop what a run needs on 127.0.0.1 only: an ASGI server with several workers, a
private Redis, a private PostgreSQL cluster, a dedicated database on the shared PostgreSQL.
Also: the machine description every report carries, markdown tables, a session cookie for
websocket boards, the bare-SQL claim floor, and the consistency checks run after a stress or
fault run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
LOCALHOST = "127.0.0.1"
SERVER_PORTS = range(8500, 8600)
REDIS_PORTS = range(6390, 6400)
POSTGRES_PORTS = range(5490, 5500)


# Ports and processes -------------------------------------------------------------------------


def port_is_free(port):
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


# Environment for Django subprocesses ---------------------------------------------------------


def django_env(*, database_url=None, redis_url=None, **extra):
    """Return an environment for a PodBoard subprocess on the given database and Redis."""
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "podboard.settings"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    for name, value in (("DATABASE_URL", database_url), ("REDIS_URL", redis_url)):
        if value is None:
            continue
        if value == "":
            env.pop(name, None)
        else:
            env[name] = value
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_django(code, *, env, timeout=300):
    """Run ``code`` in a fresh Python with Django set up under ``env``; return its stdout."""
    prelude = "import django; django.setup()\n"
    result = subprocess.run(
        [PYTHON, "-c", prelude + code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"django snippet failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result.stdout


def manage(*args, env, timeout=600):
    """Run ``manage.py args`` under ``env``; raise with its output when it fails."""
    result = subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"manage.py {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
        )
    return result.stdout


# Databases on PostgreSQL ---------------------------------------------------------------------


def with_database(url, name):
    """Return ``url`` pointing at database ``name``."""
    parts = urlparse(url)
    return urlunparse(parts._replace(path="/" + name))


def database_name(url):
    return urlparse(url).path.lstrip("/")


def recreate_database(url):
    """Drop and create the database named in ``url`` (a PostgreSQL URL)."""
    import psycopg
    from psycopg import sql

    name = database_name(url)
    if not name or name in ("postgres", "template0", "template1"):
        raise ValueError(f"refusing to recreate database {name!r}")
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(url):
    import psycopg
    from psycopg import sql

    name = database_name(url)
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


# The ASGI server -----------------------------------------------------------------------------


class AsgiServer:
    """``uvicorn podboard.asgi:application`` on 127.0.0.1 with ``workers`` processes.

    ``workers=1`` runs a single process (no supervisor), so a SIGKILL ends the whole server.
    """

    def __init__(self, *, env, workers=2, port=None, log_path=None, app=None):
        self.env = env
        self.app = app or os.environ.get("PODBOARD_BENCH_ASGI_APP", "podboard.asgi:application")
        self.workers = workers
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

    def start(self, *, timeout=60.0):
        cmd = [
            PYTHON,
            "-m",
            "uvicorn",
            self.app,
            "--host",
            LOCALHOST,
            "--port",
            str(self.port),
            "--no-access-log",
            "--log-level",
            "warning",
            "--timeout-graceful-shutdown",
            "5",
        ]
        if self.workers > 1:
            cmd += ["--workers", str(self.workers)]
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        out = self._log or subprocess.DEVNULL
        self.process = subprocess.Popen(
            cmd, cwd=ROOT, env=self.env, stdout=out, stderr=out, start_new_session=True
        )
        wait_for_port(self.port, timeout=timeout, process=self.process)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout):
        """Wait until every worker has imported Django: a request gets an HTTP answer."""
        import httpx

        deadline = time.monotonic() + timeout
        answered = 0
        while time.monotonic() < deadline and answered < self.workers * 2:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}")
            try:
                httpx.get(self.url + "/api/pods", timeout=5)
                answered += 1
            except httpx.HTTPError:
                time.sleep(0.1)

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


# A private Redis -----------------------------------------------------------------------------


class PrivateRedis:
    """A throwaway ``redis-server`` on a free port in 6390-6399 (never the shared one)."""

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
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                LOCALHOST,
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
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


# A private PostgreSQL cluster ----------------------------------------------------------------


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
    """A throwaway PostgreSQL cluster in a temporary directory on a port in 5490-5499.

    As root, the cluster belongs to the ``postgres`` OS user (``runuser``); otherwise to the
    current user. Trust authentication on 127.0.0.1 only; fsync off, it holds test data.
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
        self._run(
            self.bindir / "initdb",
            "-D",
            self.data,
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
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
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def destroy(self):
        if self.initialised:
            self.stop(mode="immediate")
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.destroy()


# Users and sessions for websocket boards -----------------------------------------------------


def session_cookie_for(user):
    """Return a session key that logs ``user`` in, written straight to the session store."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    return store.session_key


# The bare-SQL claim floor --------------------------------------------------------------------


def bare_sql_claim_floor(dsn, *, rows=4000, threads=4, timeout=120.0):
    """Measure ``FOR UPDATE SKIP LOCKED`` claims per second with no framework at all.

    Create a scratch table in ``dsn``'s database, let ``threads`` connections claim its rows one
    by one (select + update + commit), drop the table. Return a dict of figures.
    """
    import psycopg

    table = f"floor_claims_{os.getpid()}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(
            f"CREATE TABLE {table} (id serial PRIMARY KEY, priority int NOT NULL, "
            "status text NOT NULL DEFAULT 'ready', claimed_by text NOT NULL DEFAULT '')"
        )
        conn.execute(f"CREATE INDEX ON {table} (status, priority DESC, id)")
        conn.execute(
            f"INSERT INTO {table} (priority) SELECT g %% 3 FROM generate_series(1, %s) g", [rows]
        )
        conn.execute(f"ANALYZE {table}")
    claims, latencies, errors = [], [], []
    deadline = time.monotonic() + timeout

    def worker(name):
        try:
            with psycopg.connect(dsn) as conn:
                while time.monotonic() < deadline:
                    began = time.perf_counter()
                    with conn.transaction():
                        row = conn.execute(
                            f"SELECT id FROM {table} WHERE status = 'ready' "
                            "ORDER BY priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED"
                        ).fetchone()
                        if row is None:
                            return
                        conn.execute(
                            f"UPDATE {table} SET status = 'active', claimed_by = %s WHERE id = %s",
                            [name, row[0]],
                        )
                    latencies.append(time.perf_counter() - began)
                    claims.append(row[0])
        except Exception as exc:  # reported, not raised: a floor is a measurement
            errors.append(repr(exc))

    started = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout + 5)
    elapsed = time.perf_counter() - started
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
    return {
        "rows": rows,
        "threads": threads,
        "claims": len(claims),
        "double_claims": len(claims) - len(set(claims)),
        "seconds": round(elapsed, 2),
        "claims_per_s": round(len(claims) / elapsed, 1) if elapsed else 0.0,
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p95_ms": round(percentile(latencies, 95) * 1000, 2),
        "errors": errors,
    }


# Figures and reports -------------------------------------------------------------------------


def percentile(values, pct):
    """Return the ``pct`` percentile of ``values`` (nearest rank), 0.0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def markdown_table(headers, rows):
    """Return a GitHub markdown table."""
    lines = ["| " + " | ".join(str(h) for h in headers) + " |"]
    lines.append("| " + " | ".join("---" for _ in headers) + " |")
    for row in rows:
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |")
    return "\n".join(lines)


def _first_line(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "unknown"


def machine_info(*, database_url=None, redis_url=None):
    """Return a dict describing the machine and the stack versions a run used."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    try:
        import django

        django_version = django.get_version()
    except ImportError:
        django_version = "not installed"
    pg_version = "unknown"
    if database_url and database_url.startswith("postgres"):
        with contextlib.suppress(Exception):
            import psycopg

            with psycopg.connect(database_url, connect_timeout=3) as conn:
                pg_version = conn.execute("SHOW server_version").fetchone()[0]
    redis_version = "unknown"
    if redis_url:
        with contextlib.suppress(Exception):
            import redis

            info = redis.Redis.from_url(redis_url, socket_timeout=3).info("server")
            redis_version = info.get("redis_version", "unknown")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram": ram,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "django": django_version,
        "postgresql": pg_version,
        "redis": redis_version,
        "uvicorn": _package_version("uvicorn"),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _package_version(name):
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def machine_table(info):
    return markdown_table(["machine", "value"], [(k, v) for k, v in info.items()])


# Consistency of the task graph (after a stress or a fault run) -------------------------------


def check_consistency(*, expect_all_done=False):
    """Check the task graph and the event log in the current Django database.

    Return a dict ``name → list of problems`` (each list empty when the invariant holds):
    done exactly once, no double claim, successors started only after their dependencies,
    sync successors of a done task started, scale-out successors waiting for the continuation,
    the event log replaying to every task's status.
    """
    from django.db import connection

    from tasks_app.models import Event, HandoffNote, Task

    Depends = Task.depends_on.through
    problems = {
        "not_done": [],
        "finished_twice": [],
        "done_without_event": [],
        "double_claims": [],
        "started_before_dependency": [],
        "started_at_before_dependency_completed_at": [],
        "sync_successor_not_started": [],
        "scale_out_half_applied": [],
        "successor_skipped_continuation": [],
        "event_log_mismatch": [],
    }
    tasks = {
        row[0]: row
        for row in Task.objects.values_list(
            "id", "status", "started_at", "completed_at", "handoff_mode", "handoff_from_id"
        )
    }
    finish_events = {}
    claims = {}
    replay = {}
    mismatched = set()
    scale_events = []
    finish_seq = {}  # task → id of its (last) completed/scaled_out event
    active_seq = {}  # task → id of the first event that made it active
    for seq, task_key, kind, from_status, to_status, payload in Event.objects.order_by(
        "id"
    ).values_list("id", "task_key", "kind", "from_status", "to_status", "payload"):
        if kind in ("completed", "scaled_out"):
            finish_events[task_key] = finish_events.get(task_key, 0) + 1
            finish_seq[task_key] = seq
        if to_status == "active" and from_status != "active" and task_key not in active_seq:
            # A sync handoff activates the successor inside the completing transaction, just
            # before that task's own completed event: remember whose completion it was.
            via = payload.get("handoff_from") if kind == "handoff" else None
            active_seq[task_key] = (seq, via)
        if kind == "scaled_out":
            scale_events.append((task_key, payload))
        if kind == "claimed":
            claims.setdefault(task_key, []).append(payload.get("instance", ""))
        if kind in ("lease_expired", "moved") and task_key in claims:
            claims[task_key].append(None)  # a legitimate release: the next claim is a new one
        if to_status:
            current = replay.get(task_key)
            if from_status and current is not None and from_status != current:
                mismatched.add(task_key)
            replay[task_key] = to_status
    for task_id, (_, status, _started_at, completed_at, _mode, _baton) in tasks.items():
        if status != "done":
            problems["not_done"].append(task_id)
        finished = finish_events.get(task_id, 0)
        if status == "done" and finished == 0:
            problems["done_without_event"].append(task_id)
        if finished > 1:
            problems["finished_twice"].append(task_id)
        if status == "done" and completed_at is None:
            problems["done_without_event"].append(f"{task_id} (no completed_at)")
        if replay.get(task_id) != status or task_id in mismatched:
            problems["event_log_mismatch"].append(
                f"{task_id}: events say {replay.get(task_id)}, row says {status}"
            )
    for task_id, holders in claims.items():
        run = []
        for holder in holders:
            if holder is None:
                run = []
                continue
            run.append(holder)
            if len(run) > 1:
                problems["double_claims"].append(f"{task_id}: {run}")
                break
    # Every edge: the dependent started only after its dependency was done, by the event
    # sequence (commit order) and by the timestamps the rows show.
    for dependent, dependency in Depends.objects.values_list("from_task_id", "to_task_id"):
        dep_row, row = tasks.get(dependency), tasks.get(dependent)
        if row is None or dep_row is None:
            continue
        if _started_early(active_seq.get(dependent), dependency, finish_seq):
            problems["started_before_dependency"].append(
                f"{dependent} (event #{active_seq[dependent][0]}) before {dependency} was done"
            )
        if row[2] is not None and (dep_row[3] is None or row[2] < dep_row[3]):
            problems["started_at_before_dependency_completed_at"].append(
                f"{dependent} {row[2].isoformat()} < {dependency} {dep_row[3]}"
            )
    # A done sync task: each successor whose dependencies are all done has started.
    undone_deps = {}
    for dependent, dependency in Depends.objects.values_list("from_task_id", "to_task_id"):
        if tasks.get(dependency, (None, "ready"))[1] != "done":
            undone_deps.setdefault(dependent, []).append(dependency)
    successors = {}
    for dependent, dependency in Depends.objects.values_list("from_task_id", "to_task_id"):
        successors.setdefault(dependency, set()).add(dependent)
    for task_id, row in tasks.items():
        if row[5]:
            successors.setdefault(row[5], set()).add(task_id)
    scaled = {key for key, _ in scale_events}
    for task_id, row in tasks.items():
        if row[1] != "done" or row[4] != "sync" or task_id in scaled:
            continue
        for successor in successors.get(task_id, ()):
            srow = tasks.get(successor)
            if srow and srow[1] == "ready" and not undone_deps.get(successor):
                problems["sync_successor_not_started"].append(f"{task_id} → {successor}")
    # Scale-outs: a continuation with its scale note exists; successors waited for it.
    scale_notes = set(
        HandoffNote.objects.filter(handoff_type="scale").values_list("from_task_id", "to_task_id")
    )
    for task_key, payload in scale_events:
        continuation = payload.get("continuation")
        crow = tasks.get(continuation)
        if crow is None or (task_key, continuation) not in scale_notes or crow[5] != task_key:
            problems["scale_out_half_applied"].append(f"{task_key} → {continuation}")
            continue
        for successor in payload.get("moved_successors", []):
            if _started_early(active_seq.get(successor), continuation, finish_seq):
                problems["successor_skipped_continuation"].append(
                    f"{successor} started before continuation {continuation} was done"
                )
    if scaled:
        with connection.cursor() as cur:
            cur.execute(
                f"SELECT from_task_id, to_task_id FROM {Depends._meta.db_table} d "
                f"JOIN {Task._meta.db_table} t ON t.id = d.from_task_id "
                "WHERE t.status <> 'done'"
            )
            for dependent, dependency in cur.fetchall():
                if dependency in scaled:
                    problems["successor_skipped_continuation"].append(
                        f"{dependent} still waits on scaled-out {dependency}"
                    )
    if not expect_all_done:
        problems.pop("not_done")
    return problems


def _started_early(activation, dependency, finish_seq):
    """Return True when ``activation`` (``(event id, handoff_from)``) came before
    ``dependency`` was done: neither after its finishing event nor inside its completion."""
    if activation is None:
        return False
    seq, via = activation
    done_at = finish_seq.get(dependency)
    if done_at is None:
        return True
    return seq < done_at and via != dependency
