"""Databases of their own on a PostgreSQL server, for tests and bench runs.

Each run works in a database it names, so runs beside each other on one shared server never
see each other's rows; dropping one is refused for the server's own databases. A SQLite file
of a run is removed with its write-ahead log and shared-memory files (``remove_sqlite``).
"""

from pathlib import Path
from urllib.parse import urlparse, urlunparse

_RESERVED = ("", "postgres", "template0", "template1")


def remove_sqlite(path):
    """Delete the SQLite database at ``path`` (a path or a ``sqlite:///`` URL) and its ``-wal``
    and ``-shm`` files, where they exist."""
    path = str(path).removeprefix("sqlite:///")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def with_database(url, name):
    """Return ``url`` pointing at database ``name``."""
    return urlunparse(urlparse(url)._replace(path="/" + name))


def database_name(url):
    return urlparse(url).path.lstrip("/")


def recreate_database(url):
    """Drop and create the database named in ``url`` (a PostgreSQL URL)."""
    _on_server(url, "DROP DATABASE IF EXISTS {} WITH (FORCE)", "CREATE DATABASE {}")


def drop_database(url):
    """Drop the database named in ``url``, closing its connections."""
    _on_server(url, "DROP DATABASE IF EXISTS {} WITH (FORCE)")


def _on_server(url, *statements):
    """Run ``statements`` (each naming the database as ``{}``) from the server's ``postgres``
    database: a database cannot be dropped or created from inside itself."""
    import psycopg
    from psycopg import sql

    name = database_name(url)
    if name in _RESERVED:
        raise ValueError(f"refusing to drop or create database {name!r}")
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        for statement in statements:
            conn.execute(sql.SQL(statement).format(sql.Identifier(name)))
