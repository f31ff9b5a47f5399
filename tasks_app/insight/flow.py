"""Flow metrics: how work moved through each pod over the last N UTC days.

Every figure comes from the Event history (tasks only fill in what an Event does not carry:
token counts, and a pod or a creation time an Event left out), aggregated by the database:

- a task is *done* in the window when it completes, is scaled out, is approved in review, or
  a person moves or edits it to Done there; its latest such moment counts;
- *cycle time* runs from the task's first claim to that moment (the approval, for pods with
  a review gate), *lead time* from its creation;
- *handoff wait* runs from a baton that made a task workable (a ``handoff`` Event that left it
  unblocked: ``sync`` reserved it, ``async`` left it ready) to the claim that took it, split by
  that handoff's resolved mode; a claim counts in the window it happened in;
- *scale_outs*, *stalls* (lease expiries) and *changes_requested* (review verdicts) count the
  Events of the pod's tasks; *send_backs* the rework tasks created for the pod;
- *tokens* add up the token counts of the tasks done in the window;
- the *cumulative flow diagram* gives, for each day, how many tasks of each pod were ready,
  active, in review and done at the end of the day: today's counts, walked back through each
  day's first and last status change per task.

The rows these figures are made of (``flow_sql``) are rolled up once per closed day
(``rollup``) and computed from the Events only for the days still open, so a request reads a
few rows per past day plus today's Events; both kinds of rows are aggregated in one statement
per figure.

Percentiles interpolate linearly between ranks (PostgreSQL's ``percentile_cont``, numpy's
default); the database ranks the values with window functions and answers only the rows around
each rank, so both engines give the same figures. A percentile is null when there is no value.
"""

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta

from django.db import connection
from django.utils import timezone

from ..models import Pod
from . import rollup
from .flow_sql import (
    COUNTS,
    LOOKBACK_DAYS,
    STATUSES,
    cfd_rows,
    count_rows,
    done_events,
    done_rows,
    pod_of,
    task_counts,
    wait_rows,
)
from .sql import EVENT, analytics, dialect, fetch

DEFAULT_DAYS = 30
MAX_DAYS = 365
QUANTILES = (("p50", 50), ("p85", 85))
MODES = ("sync", "async")
ROLLUP = rollup.ROLLUP

__all__ = ["DEFAULT_DAYS", "MAX_DAYS", "STATUSES", "Window", "flow_metrics"]


class Window:
    """The UTC days ``[first, last]``: the last ``days`` days, today included."""

    def __init__(self, days=DEFAULT_DAYS, today=None):
        self.days = days
        self.last = today or timezone.now().astimezone(UTC).date()
        self.first = self.last - timedelta(days=days - 1)
        self.start = datetime.combine(self.first, time.min, tzinfo=UTC)
        self.end = datetime.combine(self.last + timedelta(days=1), time.min, tzinfo=UTC)

    def dates(self):
        return [self.first + timedelta(days=i) for i in range(self.days)]

    def params(self, d, live):
        """Query parameters: rolled-up days are ``[first_day, live_day)`` (the cumulative flow
        starts from the end of ``anchor_day``, the day before), the Events are read from
        ``start`` (the start of ``live_day``) to ``end``.

        With rolled-up days, the Events read are a day's or two: each task's earlier claims
        and creations are looked up on their own, not in one pass over ``LOOKBACK_DAYS``.
        """
        rolled = live > self.first
        live = min(max(live, self.first), self.last + timedelta(days=1))
        start = datetime.combine(live, time.min, tzinfo=UTC)
        adapt = connection.ops.adapt_datefield_value
        return {
            "first_day": adapt(self.first),
            "live_day": adapt(live),
            "anchor_day": adapt(live - timedelta(days=1)),
            "start": d.timestamp(start),
            "end": d.timestamp(self.end),
            "lookback": d.timestamp(start if rolled else start - timedelta(days=LOOKBACK_DAYS)),
        }


def flow_metrics(days=DEFAULT_DAYS, pods=None, today=None, *, rollups=True):
    """Return the flow metrics of the last ``days`` UTC days for ``pods`` (names; all pods when
    None), in the shape of ``GET /api/metrics/flow``. With ``rollups=False`` every figure is
    computed from the Events alone (the rollups' reference)."""
    window = Window(days, today)
    names = list(Pod.objects.order_by("order", "name").values_list("name", flat=True))
    if pods is not None:
        wanted = set(pods)
        names = [n for n in names if n in wanted]
    d = dialect()
    with analytics():
        # Rollups hold what happened since; a window that ends before today reads Events.
        rollups = rollups and window.last == timezone.now().astimezone(UTC).date()
        live = rollup.ensure(window.first) if rollups else window.first
        params = window.params(d, live)
        facts, throughput = _done_facts(d, params)
        waits = _handoff_waits(d, params)
        counts, change, anchor = _counts_and_changes(d, params, rolled=rollups)
    cfd = _cfd(window, names, change, anchor)
    days_iso = [day.isoformat() for day in window.dates()]
    out = []
    for name in names:
        per_day = throughput.get(name, {})
        pod_facts = facts.get(name, {})
        tokens = pod_facts.get("tokens", {})
        chain_tokens = pod_facts.get("chain_tokens", {})
        pod_counts = counts.get(name, {})
        out.append(
            {
                "pod": name,
                "done": sum(per_day.values()),
                "throughput": [{"day": day, "done": per_day.get(day, 0)} for day in days_iso],
                "cycle_time_s": _quantiles(pod_facts.get("cycle")),
                "lead_time_s": _quantiles(pod_facts.get("lead")),
                "handoff_wait_s": {
                    mode: _quantiles(waits.get(name, {}).get(mode)) for mode in MODES
                },
                "scale_outs": pod_counts.get("scaled_out", 0),
                "stalls": pod_counts.get("lease_expired", 0),
                "changes_requested": pod_counts.get("changes_requested", 0),
                "send_backs": pod_counts.get("send_backs", 0),
                "claims": pod_counts.get("claimed", 0),
                "tokens": {
                    "total": _number(tokens.get("total", 0)),
                    "per_task_p50": tokens.get("p50"),
                    "per_chain_p50": chain_tokens.get("p50"),
                },
            }
        )
    return {
        "from": window.first.isoformat(),
        "to": window.last.isoformat(),
        "pods": out,
        "cfd": cfd,
    }


# Percentiles -----------------------------------------------------------------------------------


def _percentiles(d, values_sql, params):
    """Return ``{grp: {metric: {"p50", "p85", "n", "total"}}}`` for ``values_sql`` (rows
    ``grp, metric, v``; null values are left out)."""
    if d.postgres:
        aggregates = ", ".join(
            f"percentile_cont({q / 100}) WITHIN GROUP (ORDER BY v)" for _, q in QUANTILES
        )
        rows = fetch(
            f"""
            SELECT {d.binary("grp")}, {d.binary("metric")}, COUNT(*), SUM(v), {aggregates}
            FROM ({values_sql}) vals
            WHERE v IS NOT NULL AND grp IS NOT NULL
            GROUP BY 1, 2
            """,
            params,
        )
        out = defaultdict(dict)
        for grp, metric, n, total, *values in rows:
            figures = {"n": n, "total": total}
            for (name, _), value in zip(QUANTILES, values, strict=True):
                figures[name] = _number(value)
            out[grp][metric] = figures
        return out
    return _collect_ranks(fetch(_ranked(values_sql), params))


def _ranked(values_sql, source=None):
    """Wrap ``values_sql`` (rows ``grp, metric, v``; or read the table expression ``source``)
    so the database answers, per group and metric, only the rows at the ranks the
    percentiles need, with the count and the sum (for engines without ``percentile_cont``)."""
    picks = " OR ".join(
        f"r = ((n - 1) * {q}) / 100 OR r = ((n - 1) * {q} + 99) / 100" for _, q in QUANTILES
    )
    return f"""
        SELECT grp, metric, r, n, total, v FROM (
            SELECT grp, metric, v,
                ROW_NUMBER() OVER w - 1 AS r,
                COUNT(*) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS n,
                SUM(v) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS total
            FROM {source or f"({values_sql}) vals"}
            WHERE v IS NOT NULL AND grp IS NOT NULL
            -- One sort serves all three (the count and sum span the whole partition).
            WINDOW w AS (PARTITION BY grp, metric ORDER BY v)
        ) ranked
        WHERE {picks}
    """


def _collect_ranks(rows):
    """Turn ``_ranked`` rows into ``{grp: {metric: {"p50", "p85", "n", "total"}}}``: linear
    interpolation between the two ranks around each percentile, as ``percentile_cont``."""
    picked = defaultdict(dict)
    sizes = {}
    for grp, metric, r, n, total, v in rows:
        picked[(grp, metric)][int(r)] = float(v)
        sizes[(grp, metric)] = (int(n), total)
    out = defaultdict(dict)
    for key, at in picked.items():
        n, total = sizes[key]
        figures = {"n": n, "total": total}
        for name, q in QUANTILES:
            exact = (n - 1) * q / 100
            low, high = ((n - 1) * q) // 100, ((n - 1) * q + 99) // 100
            value = at[low] + (at[high] - at[low]) * (exact - low)
            figures[name] = _number(value)
        out[key[0]][key[1]] = figures
    return out


def _number(value):
    """A figure for JSON: an int when whole, else rounded to the millisecond."""
    if value is None:
        return None
    value = round(float(value), 3)
    return int(value) if value.is_integer() else value


def _quantiles(figures):
    if not figures:
        return {"p50": None, "p85": None}
    return {"p50": figures["p50"], "p85": figures["p85"]}


# The queries -----------------------------------------------------------------------------------

ROLLED = "day >= %(first_day)s AND day < %(live_day)s"


def _done_facts(d, params):
    """Cycle and lead time, tokens per task and per scale chain, per pod, and the throughput
    per pod and day: ``({pod: {metric: figures}}, {pod: {day: done}})``. Each task's latest
    done Event counts: the open days' latest, else the rolled-up row nothing superseded."""
    columns = "task_key, event_id, done_at, grp, tokens, chain, cycle, lead"
    if d.postgres:
        key = d.binary("task_key")
        live_latest = (
            f"SELECT DISTINCT ON ({key}) {columns} FROM done_rows "
            f"ORDER BY {key}, done_at DESC, event_id DESC"
        )
    else:
        live_latest = f"""
            SELECT {columns} FROM (
                SELECT {columns}, ROW_NUMBER() OVER (
                    PARTITION BY task_key ORDER BY done_at DESC, event_id DESC) AS rn
                FROM done_rows
            ) ranked WHERE rn = 1
        """
    ctes = f"""
        WITH {done_rows(d)},
        live_latest AS ({live_latest}),
        latest AS (
            SELECT pod AS grp, at AS done_at, tokens, chain, seconds AS cycle, lead_s AS lead
            FROM {ROLLUP} r
            WHERE figure = 'done' AND NOT superseded AND {ROLLED}
                AND task_key NOT IN (SELECT task_key FROM done_rows)
            UNION ALL
            SELECT grp, done_at, tokens, chain, cycle, lead FROM live_latest
        ),
        per_task AS (SELECT * FROM latest WHERE grp IS NOT NULL)
    """
    if d.postgres:
        return _done_facts_postgres(d, ctes, params)
    # SQLite: the ranks and the days in one statement, so the CTEs run once.
    rows = fetch(
        f"""
        {ctes},
        vals AS (
            SELECT grp, 'cycle' AS metric, cycle AS v FROM per_task
            UNION ALL SELECT grp, 'lead', lead FROM per_task
            UNION ALL SELECT grp, 'tokens', tokens FROM per_task
            UNION ALL SELECT grp, 'chain_tokens', SUM(tokens) FROM per_task GROUP BY grp, chain
        )
        SELECT 'rank', * FROM ({_ranked(None, source="vals")})
        UNION ALL
        SELECT 'day', grp, {d.day("done_at")}, COUNT(*), NULL, NULL, NULL FROM per_task
        GROUP BY grp, {d.day("done_at")}
        """,
        params,
    )
    facts = _collect_ranks(row[1:] for row in rows if row[0] == "rank")
    throughput = defaultdict(dict)
    for _part, pod, day, count, *_ in (row for row in rows if row[0] == "day"):
        throughput[pod][str(day)] = count
    return facts, throughput


def _done_facts_postgres(d, ctes, params):
    """``_done_facts`` in one statement: ``percentile_cont`` per pod over each figure, the
    per-chain sums, and the per-day counts, from one pass over the tasks done."""

    def pct(column):
        return ", ".join(
            f"percentile_cont({q / 100}) WITHIN GROUP (ORDER BY {column})" for _, q in QUANTILES
        )

    nothing = ", ".join(["NULL::float8"] * len(QUANTILES))
    grp = d.binary("grp")
    rows = fetch(
        f"""
        {ctes}
        SELECT 'pod', {grp}, NULL::date, COUNT(*), SUM(tokens), {pct("cycle")}, {pct("lead")},
            {pct("tokens")}
        FROM per_task GROUP BY 2
        UNION ALL
        SELECT 'chain', {grp}, NULL::date, COUNT(*), SUM(chain_tokens), {nothing},
            {nothing}, {pct("chain_tokens")}
        FROM (SELECT grp, SUM(tokens) AS chain_tokens FROM per_task GROUP BY grp, chain) ch
        GROUP BY 2
        UNION ALL
        SELECT 'day', {grp}, {d.day("done_at")}, COUNT(*), NULL, {nothing}, {nothing}, {nothing}
        FROM per_task GROUP BY 2, 3
        """,
        params,
    )
    facts, throughput = defaultdict(dict), defaultdict(dict)
    width = len(QUANTILES)
    for part, pod, day, count, total, *values in rows:
        if part == "day":
            throughput[pod][str(day)] = count
            continue
        groups = [values[i : i + width] for i in range(0, len(values), width)]
        names = ("cycle", "lead", "tokens") if part == "pod" else (None, None, "chain_tokens")
        for name, group in zip(names, groups, strict=True):
            if name is None or group[0] is None:
                continue
            figures = {"n": count, "total": total}
            for (label, _), value in zip(QUANTILES, group, strict=True):
                figures[label] = _number(value)
            facts[pod][name] = figures
    return facts, throughput


def _handoff_waits(d, params):
    """``{pod: {mode: percentiles}}`` of the time from a workable baton to its claim."""
    values = f"""
        SELECT pod AS grp, figure AS metric, seconds AS v FROM {ROLLUP}
        WHERE figure IN ('sync', 'async') AND {ROLLED}
        UNION ALL
        SELECT grp, metric, v FROM ({wait_rows(d)}) live
    """
    waits = _percentiles(d, values, params)
    for modes in waits.values():
        for name in [m for m in modes if m not in MODES]:
            del modes[name]
    return waits


def _counts_and_changes(d, params, *, rolled):
    """In one statement: ``{pod: {figure: count}}`` for claims, scale-outs, stalls, review
    change requests and send-backs; each day's net change of each cumulative-flow column,
    ``{day: {(pod, status): change}}``; and where the cumulative flow starts from,
    ``(day, {(pod, status): count})``: the end of the last rolled-up day (``rolled``), else
    the tasks now (day None)."""
    counted = ", ".join(f"'{figure}'" for figure in COUNTS)
    columns = ", ".join(f"'cfd:{status}'" for status in STATUSES)
    ends = ", ".join(f"'at:{status}'" for status in STATUSES)
    anchor = (
        f"SELECT 'at', day, pod, substr(figure, 4), count FROM {ROLLUP} "
        f"WHERE figure IN ({ends}) AND day = %(anchor_day)s"
        if rolled
        else f"SELECT 'now', NULL, pod, status, n FROM ({task_counts()}) now_"
    )
    rows = fetch(
        f"""
        SELECT 'count', CAST(NULL AS DATE), pod, figure, SUM(count) FROM {ROLLUP}
        WHERE figure IN ({counted}) AND {ROLLED} GROUP BY pod, figure
        UNION ALL
        SELECT 'count', NULL, pod, what, n FROM ({count_rows(d)}) live_counts
        UNION ALL
        SELECT 'cfd', day, pod, substr(figure, 5), count FROM {ROLLUP}
        WHERE figure IN ({columns}) AND day >= %(first_day)s AND day < %(live_day)s
        UNION ALL
        SELECT 'cfd', day, pod, status, delta FROM ({cfd_rows(d, bounded=False)}) live_cfd
        UNION ALL
        {anchor}
        """,
        params,
    )
    counts = defaultdict(lambda: defaultdict(int))
    change = defaultdict(lambda: defaultdict(int))
    state, anchor_day = defaultdict(int), None
    for part, day, pod, what, n in rows:
        if part == "count":
            counts[pod][what] += int(n)
        elif part == "cfd":
            change[str(day)][(pod, what)] += int(n)
        else:
            state[(pod, what)] += int(n)
            anchor_day = str(day) if day is not None else None
    if rolled and anchor_day is None:  # nothing was there at the end of that day
        anchor_day = str(params["anchor_day"])
    return counts, change, (anchor_day, state)


def _cfd(window, names, change, anchor):
    """The cumulative flow diagram: ``[{day, pod, ready, active, review, done}]``.

    From the ``anchor`` (``(day, counts at its end)``; day None: the tasks now, after every
    change), each later day is the day before with its ``change`` done, each earlier day the
    day after with that day's ``change`` undone.
    """
    anchor_day, counts = anchor
    state = defaultdict(int, counts)
    last = window.last.isoformat()
    if anchor_day is None:
        for day, deltas in change.items():
            if day > last:  # Events stamped after today (a clock ahead): not in today's counts
                for key, delta in deltas.items():
                    state[key] -= delta
        anchor_day = last
    at = date.fromisoformat(anchor_day)
    by_day = {anchor_day: dict(state)}
    walk = defaultdict(int, state)
    day = at
    while day < window.last:  # forward: do each day's change
        day += timedelta(days=1)
        for key, delta in change.get(day.isoformat(), {}).items():
            walk[key] += delta
        by_day[day.isoformat()] = dict(walk)
    day = at
    while day > window.first:  # back: undo each day's change
        for key, delta in change.get(day.isoformat(), {}).items():
            state[key] -= delta
        day -= timedelta(days=1)
        by_day[day.isoformat()] = dict(state)
    return [
        {"day": day.isoformat(), "pod": name}
        | {status: max(0, by_day[day.isoformat()].get((name, status), 0)) for status in STATUSES}
        for day in window.dates()
        for name in names
    ]


def done_in(start, end, pod):
    """Return ``[(task id, done at)]`` of the tasks ``pod`` finished in ``[start, end)``, the
    ones a throughput bar counts, oldest first."""
    d = dialect()
    rows = fetch(
        f"""
        SELECT task_key, done_at FROM (
            SELECT e.task_key, e.created_at AS done_at, {pod_of(d, "e")} AS pod,
                ROW_NUMBER() OVER (PARTITION BY e.task_key ORDER BY e.created_at DESC, e.id DESC)
                    AS rn
            FROM {{event}} e WHERE {done_events(d)}
        ) dt WHERE rn = 1 AND pod = %(pod)s
        ORDER BY done_at, task_key
        """.replace("{event}", EVENT),
        {"start": d.timestamp(start), "end": d.timestamp(end), "pod": pod},
    )
    return [(key, _as_datetime(at)) for key, at in rows]


def _as_datetime(value):
    """A timestamp from a raw query: SQLite answers text, PostgreSQL a datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
