"""What every benchmark report carries: percentiles, markdown tables, the machine description.

Each bench script prints its figures as markdown so bench/run_all.py can paste them into
docs/BENCHMARKS.md; the machine table says what the figures were measured on. Servers,
databases and sessions for a run come from tests/support, which the tests share.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
from pathlib import Path


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
