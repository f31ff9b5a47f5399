"""Rolled-up flow figures of closed days, so the flow metrics read a few rows per day.

A closed day is a UTC day that ended more than ``GRACE`` ago: the rules stamp their Events
with the time they run, so once a day is closed no rule can add an Event to it (``GRACE``
covers a transaction still open across midnight). Its figures are then fixed, and
``ensure`` rolls them up from the Events, once, the first time a window asks for the day:
the rows of ``flow_sql`` for that day, stored in ``FlowRollup`` (one row per done Event and
per waited claim for the percentiles, counts per pod and figure, the cumulative flow's net
changes), with the day in ``FlowDay``. The open days (today, and yesterday within ``GRACE``
of midnight) are computed from the Events on every request, by the same SQL.

Nothing in the rule runner writes here, so claims and completions pay nothing for it. Only
writers that put Events into the past must say so: ``forget`` drops the rollups from a day on
(``tasks_app.history`` calls it, then rolls its days up again); ``manage.py rollup_flow``
rebuilds them by hand.
"""

from datetime import UTC, datetime, time, timedelta

from django.db import connection, transaction
from django.utils import timezone

from ..models import FlowDay, FlowRollup
from .flow_sql import LOOKBACK_DAYS, cfd_rows, count_rows, done_rows, task_counts, wait_rows
from .sql import dialect, fetch

ROLLUP = FlowRollup._meta.db_table
ROLLED_DAYS = FlowDay._meta.db_table
GRACE = timedelta(minutes=15)
ANALYZE_AFTER = 7  # days rolled up at once
COLUMNS = (
    "day, pod, figure, count, task_key, event_id, at, seconds, lead_s, tokens, chain, superseded"
)


def live_day(now=None):
    """The first UTC day that is not closed: the metrics compute it and later days from the
    Events."""
    return ((now or timezone.now()) - GRACE).astimezone(UTC).date()


def ensure(first, now=None):
    """Roll up the closed days from ``first`` on (and the last closed day, always: the
    cumulative flow starts from its end) that are not rolled up yet; return the first day
    that is not closed. Runs in the caller's transaction (a rollup that fails leaves no
    trace); two callers at once roll each day up once."""
    live = live_day(now)
    stop = live
    first = min(first, live - timedelta(days=1))
    adapt = connection.ops.adapt_datefield_value
    have = {
        str(day)
        for (day,) in fetch(
            f"SELECT day FROM {ROLLED_DAYS} WHERE day >= %s AND day < %s",
            [adapt(first), adapt(stop)],
        )
    }
    missing = [
        day
        for day in (first + timedelta(days=i) for i in range((stop - first).days))
        if day.isoformat() not in have
    ]
    if not missing:
        return live
    stamp = connection.ops.adapt_datetimefield_value(timezone.now())
    values = ", ".join(["(%s, %s)"] * len(missing))
    claimed = fetch(
        f"INSERT INTO {ROLLED_DAYS} (day, rolled_at) VALUES {values} "
        "ON CONFLICT (day) DO NOTHING RETURNING day",
        [p for day in missing for p in (adapt(day), stamp)],
    )
    days = sorted(_as_date(day) for (day,) in claimed)
    for run_first, run_last in _runs(days):
        _roll(run_first, run_last + timedelta(days=1))
    if len(days) >= ANALYZE_AFTER:
        # A backfill: the planner's row estimates for the table are far off until analysed
        # (PostgreSQL then sorts and joins the 30-day reads badly: 2× their time).
        fetch_none(f"ANALYZE {ROLLUP}", ())
    return live


def _roll(first, stop):
    """Store the rows of the days ``[first, stop)`` in one statement: the rows of ``flow_sql``
    and the cumulative flow at the end of the last day (the tasks now, with every change
    since undone). Then mark the done rows of tasks done again later."""
    d = dialect()
    start = datetime.combine(first, time.min, tzinfo=UTC)
    end = datetime.combine(stop, time.min, tzinfo=UTC)
    adapt = connection.ops.adapt_datefield_value
    params = {
        "start": d.timestamp(start),
        "end": d.timestamp(end),
        "lookback": d.timestamp(start - timedelta(days=LOOKBACK_DAYS)),
        "last_day": adapt(stop - timedelta(days=1)),
        "first_day": adapt(first),
        "stop_day": adapt(stop),
    }
    blanks = "NULL, NULL, NULL, NULL, NULL, NULL, NULL, FALSE"
    fetch_none(
        f"""
        INSERT INTO {ROLLUP} ({COLUMNS})
        SELECT {d.day("done_at")}, grp, 'done', CAST(NULL AS INTEGER), task_key, event_id,
            done_at, cycle, lead, tokens, chain, FALSE
        FROM (WITH {done_rows(d)} SELECT * FROM done_rows) dr
        UNION ALL
        SELECT {d.day("at")}, grp, metric, NULL, task_key, event_id, at, v, NULL, NULL, NULL,
            FALSE
        FROM ({wait_rows(d)}) wr WHERE metric IN ('sync', 'async') AND v IS NOT NULL
        UNION ALL
        SELECT day, pod, what, n, {blanks} FROM ({count_rows(d)}) cr
        UNION ALL
        SELECT day, pod, 'cfd:' || status, delta, {blanks}
        FROM ({cfd_rows(d, bounded=True)}) cf
        UNION ALL
        SELECT %(last_day)s, pod, 'at:' || status, SUM(n), {blanks} FROM (
            SELECT pod, status, n FROM ({task_counts()}) now_
            UNION ALL
            SELECT pod, status, -delta FROM ({cfd_rows(d, bounded=False, since="end")}) later
        ) at_end
        WHERE pod IS NOT NULL GROUP BY pod, status
        """,
        params,
    )
    fetch_none(
        f"""
        UPDATE {ROLLUP} SET superseded = TRUE
        WHERE figure = 'done' AND NOT superseded
            AND task_key IN (
                SELECT task_key FROM {ROLLUP}
                WHERE figure = 'done' AND day >= %(first_day)s AND day < %(stop_day)s
            )
            AND EXISTS (
                SELECT 1 FROM {ROLLUP} later
                WHERE later.figure = 'done' AND later.task_key = {ROLLUP}.task_key
                    AND (later.at > {ROLLUP}.at
                        OR (later.at = {ROLLUP}.at AND later.event_id > {ROLLUP}.event_id))
            )
        """,
        params,
    )


def forget(since=None):
    """Drop the rollups of ``since`` (a date) and later days, all when None: Events were
    written into those days after they closed."""
    with transaction.atomic():
        days = FlowDay.objects.all()
        rows = FlowRollup.objects.all()
        if since is not None:
            days, rows = days.filter(day__gte=since), rows.filter(day__gte=since)
        rows.delete()
        days.delete()


def rebuild(days, now=None):
    """Roll up the last ``days`` closed days afresh; return how many days were rolled up."""
    live = live_day(now)
    first = live - timedelta(days=days)
    with transaction.atomic():
        forget(first)
        ensure(first, now)
    return FlowDay.objects.filter(day__gte=first).count()


def _runs(days):
    """Contiguous runs ``[(first, last), …]`` of sorted ``days``."""
    runs = []
    for day in days:
        if runs and day - runs[-1][1] == timedelta(days=1):
            runs[-1][1] = day
        else:
            runs.append([day, day])
    return [tuple(run) for run in runs]


def _as_date(value):
    return datetime.fromisoformat(value).date() if isinstance(value, str) else value


def fetch_none(sql, params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
