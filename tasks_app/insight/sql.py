"""The SQL that differs between PostgreSQL and SQLite, and the table names the queries use.

Queries are written once, with these fragments filled in, so both engines compute the same
figures from the same statement shapes (the tests run on both).
"""

import contextlib
from dataclasses import dataclass

from django.db import connection, transaction

from ..models import Event, Pod, Task, WebhookDelivery

EVENT = Event._meta.db_table
TASK = Task._meta.db_table
POD = Pod._meta.db_table
DEPENDS = Task.depends_on.through._meta.db_table
DELIVERY = WebhookDelivery._meta.db_table


@dataclass(frozen=True)
class Dialect:
    vendor: str

    @property
    def postgres(self):
        return self.vendor == "postgresql"

    def seconds_between(self, start, end):
        """Seconds from ``start`` to ``end`` (timestamp expressions), to the millisecond."""
        if self.postgres:
            return f"ROUND(EXTRACT(EPOCH FROM ({end} - {start}))::numeric, 3)"
        # SQLite keeps UTC timestamps as text; julianday is exact to well under a millisecond.
        return f"ROUND((julianday({end}) - julianday({start})) * 86400.0, 3)"

    def day(self, expr):
        """The UTC date of a timestamp expression (a date; ``YYYY-MM-DD`` text on SQLite)."""
        if self.postgres:
            return f"(({expr}) AT TIME ZONE 'UTC')::date"
        return f"substr({expr}, 1, 10)"

    def binary(self, expr):
        """``expr`` compared byte by byte: sorting and grouping ids and names needs no
        language rules, and PostgreSQL's locale-aware comparison costs more than the rest."""
        return f'{expr} COLLATE "C"' if self.postgres else expr

    def partition(self, expr):
        """``expr`` as the key a window partitions by: compared byte by byte (``binary``), and
        on SQLite not matched to an index, whose order would have SQLite walk every Event by
        task instead of only the range of time asked for through ``event_kind_time``."""
        return self.binary(expr) if self.postgres else f"+{expr}"

    def json_text(self, column, key):
        """The text of top-level ``key`` of a JSON column (``true`` for a JSON true)."""
        if self.postgres:
            return f"({column} ->> '{key}')"
        return (
            f"(CASE json_type({column}, '$.{key}') WHEN 'true' THEN 'true' "
            f"WHEN 'false' THEN 'false' ELSE json_extract({column}, '$.{key}') END)"
        )

    def timestamp(self, value):
        """A datetime as the query parameter this engine compares with stored timestamps."""
        return connection.ops.adapt_datetimefield_value(value)


def dialect():
    return Dialect(connection.vendor)


@contextlib.contextmanager
def analytics():
    """Run a set of metrics queries as one snapshot. On PostgreSQL, without JIT compilation
    (these statements are estimated costly but run in milliseconds; compiling them took a
    second each), in one process each, with room to sort in memory."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SET LOCAL jit = off; SET LOCAL work_mem = '64MB'; "
                    "SET LOCAL max_parallel_workers_per_gather = 0; "
                    # The pages these queries read are in memory: priced as disk reads, a
                    # walk over every Event of the window in time order looks cheaper than
                    # reading the few kinds asked for through (kind, created_at).
                    "SET LOCAL seq_page_cost = 0.1; SET LOCAL random_page_cost = 0.1"
                )
        yield


def fetch(sql, params=()):
    """Run ``sql`` and return its rows."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()
