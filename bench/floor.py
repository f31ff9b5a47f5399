"""The bare-SQL claim floor: how fast PostgreSQL itself hands out rows to claimers.

A stress run reports it beside PodBoard's own claim rate, so a slow figure can be told apart
from a slow machine or a busy shared server.
"""

from __future__ import annotations

import os
import threading
import time

from bench.common import percentile


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
