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

Percentiles interpolate linearly between ranks (PostgreSQL's ``percentile_cont``, numpy's
default); the database ranks the values with window functions and answers only the rows around
each rank, so both engines give the same figures. A percentile is null when there is no value.

Why one module of this size: each figure is one SQL aggregation, and they share the window,
the pod filter and the percentile helpers; most of the length is the SQL itself.
"""

from collections import defaultdict
from datetime import UTC, datetime, time, timedelta

from django.utils import timezone

from ..models import Pod
from .sql import EVENT, POD, TASK, analytics, dialect, fetch

DEFAULT_DAYS = 30
MAX_DAYS = 365
STATUSES = ("ready", "active", "review", "done")
QUANTILES = (("p50", 50), ("p85", 85))
MODES = ("sync", "async")
# Creations, first claims and batons are read in one pass over the window and this many days
# before it; older ones are looked up one task at a time.
LOOKBACK_DAYS = 7

# The kinds of Event that may change a task's status or pod (the cumulative flow reads these).
STATUS_KINDS = (
    "created",
    "imported",
    "claimed",
    "activated",
    "handoff",
    "completed",
    "scaled_out",
    "lease_expired",
    "moved",
    "edited",
    "deleted",
    "submitted",
    "reviewed",
    "sent_back",
)

__all__ = ["DEFAULT_DAYS", "MAX_DAYS", "Window", "flow_metrics"]


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

    def params(self, d):
        lookback = self.start - timedelta(days=LOOKBACK_DAYS)
        return {
            "start": d.timestamp(self.start),
            "end": d.timestamp(self.end),
            "lookback": d.timestamp(lookback),
        }


def flow_metrics(days=DEFAULT_DAYS, pods=None, today=None):
    """Return the flow metrics of the last ``days`` UTC days for ``pods`` (names; all pods when
    None), in the shape of ``GET /api/metrics/flow``."""
    window = Window(days, today)
    names = list(Pod.objects.order_by("order", "name").values_list("name", flat=True))
    if pods is not None:
        wanted = set(pods)
        names = [n for n in names if n in wanted]
    d = dialect()
    params = window.params(d)
    with analytics():
        facts, throughput = _done_facts(d, params)
        waits = _handoff_waits(d, params)
        counts = _event_counts(d, params)
        send_backs = _send_backs(d, params)
        cfd = _cfd(d, params, window, names)
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
                "send_backs": send_backs.get(name, 0),
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


def _ranked(values_sql):
    """Wrap ``values_sql`` (rows ``grp, metric, v``) so the database answers, per group and
    metric, only the rows at the ranks the percentiles need, with the count and the sum
    (for engines without ``percentile_cont``)."""
    picks = " OR ".join(
        f"r = ((n - 1) * {q}) / 100 OR r = ((n - 1) * {q} + 99) / 100" for _, q in QUANTILES
    )
    return f"""
        SELECT grp, metric, r, n, total, v FROM (
            SELECT grp, metric, v,
                ROW_NUMBER() OVER (PARTITION BY grp, metric ORDER BY v) - 1 AS r,
                COUNT(*) OVER (PARTITION BY grp, metric) AS n,
                SUM(v) OVER (PARTITION BY grp, metric) AS total
            FROM ({values_sql}) vals
            WHERE v IS NOT NULL AND grp IS NOT NULL
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


def _pod_of(d, alias):
    """The pod an Event is about: the one it names, else its task's current pod."""
    return (
        f"COALESCE(NULLIF({alias}.to_pod, ''), NULLIF({alias}.from_pod, ''), "
        f"(SELECT p.name FROM {TASK} t JOIN {POD} p ON p.id = t.pod_owner_id "
        f"WHERE t.id = {alias}.task_key))"
    )


def _done_events(d):
    """The condition on Events (alias ``e``) that took a task to Done in the window."""
    verdict = d.json_text("e.payload", "verdict")
    return f"""
        e.kind IN ('completed', 'scaled_out', 'reviewed', 'moved', 'edited')
        AND e.created_at >= %(start)s AND e.created_at < %(end)s
        AND (
            e.kind IN ('completed', 'scaled_out')
            OR (e.kind = 'reviewed' AND {verdict} = 'approve')
            OR (e.to_status = 'done' AND e.from_status <> 'done')
        )
    """


def _done_tasks(d):
    """One row per task done in the window, its latest such Event: ``task_key, done_at, pod``."""
    if d.postgres:
        return f"""
            SELECT DISTINCT ON ({d.binary("e.task_key")}) e.task_key, e.created_at AS done_at,
                {_pod_of(d, "e")} AS pod
            FROM {EVENT} e WHERE {_done_events(d)}
            ORDER BY {d.binary("e.task_key")}, e.created_at DESC, e.id DESC
        """
    return f"""
        SELECT task_key, done_at, pod FROM (
            SELECT e.task_key, e.created_at AS done_at, {_pod_of(d, "e")} AS pod,
                ROW_NUMBER() OVER (PARTITION BY e.task_key ORDER BY e.created_at DESC, e.id DESC)
                    AS rn
            FROM {EVENT} e WHERE {_done_events(d)}
        ) de WHERE rn = 1
    """


def _done_facts(d, params):
    """Cycle and lead time, tokens per task and per scale chain, per pod, and the throughput
    per pod and day: ``({pod: {metric: figures}}, {pod: {day: done}})``.

    A task's creation and first claim are read from the Events since ``lookback`` in one
    range scan each; only a task created before that (or with no claim since) is looked up
    further back, on its own.
    """

    def earlier(kind, alias):
        return (
            f"(SELECT MIN(c.created_at) FROM {EVENT} c WHERE c.kind = '{kind}' "
            f"AND c.task_key = {alias}.task_key AND c.created_at < %(lookback)s)"
        )

    def since_lookback(kind, name):
        return (
            f"SELECT c.task_key, MIN(c.created_at) AS {name} FROM {EVENT} c "
            f"WHERE c.kind = '{kind}' AND c.created_at >= %(lookback)s "
            "AND c.created_at < %(end)s GROUP BY c.task_key"
        )

    ctes = f"""
        WITH done AS ({_done_tasks(d)}),
        fc AS ({since_lookback("claimed", "first_claim")}),
        cr AS ({since_lookback("created", "created_at")}),
        joined AS (
            SELECT done.pod AS grp, done.task_key, done.done_at, fc.first_claim AS recent_claim,
                COALESCE(cr.created_at, {earlier("created", "done")}, t.created_at)
                    AS created_at,
                t.token_count AS tokens, COALESCE(NULLIF(t.scale_root, ''), t.id) AS chain
            FROM done
            LEFT JOIN fc ON fc.task_key = done.task_key
            LEFT JOIN cr ON cr.task_key = done.task_key
            LEFT JOIN {TASK} t ON t.id = done.task_key
            WHERE done.pod IS NOT NULL
        ),
        facts AS (
            SELECT grp, done_at, created_at, tokens, chain,
                CASE WHEN created_at >= %(lookback)s AND recent_claim IS NOT NULL
                    THEN recent_claim
                    ELSE COALESCE({earlier("claimed", "joined")}, recent_claim) END
                    AS first_claim
            FROM joined
        ),
        per_task AS (
            SELECT grp, done_at, tokens, chain,
                CASE WHEN first_claim <= done_at
                    THEN {d.seconds_between("first_claim", "done_at")} END AS cycle,
                {d.seconds_between("created_at", "done_at")} AS lead
            FROM facts
        )
    """
    if d.postgres:
        return _done_facts_postgres(d, ctes, params)
    values = f"""
        {ctes}
        SELECT grp, 'cycle' AS metric, cycle AS v FROM per_task
        UNION ALL SELECT grp, 'lead', lead FROM per_task
        UNION ALL SELECT grp, 'tokens', tokens FROM per_task
        UNION ALL SELECT grp, 'chain_tokens', SUM(tokens) FROM per_task GROUP BY grp, chain
    """
    facts = _percentiles(d, values, params)
    throughput = defaultdict(dict)
    for pod, day, count in fetch(
        f"{ctes} SELECT grp, {d.day('done_at')}, COUNT(*) FROM per_task "
        f"GROUP BY grp, {d.day('done_at')}",
        params,
    ):
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
    """``{pod: {mode: percentiles}}`` of the time from a workable baton to its claim.

    A claim waited on the latest unblocked ``handoff`` of its task when no other claim came
    between them. The database pairs them in one ordered pass over the Events since
    ``lookback`` (``LOOKBACK_DAYS`` before the window); only a claim with nothing before it in
    that stretch is looked up further back, on its own.
    """
    blocked = d.json_text("e.payload", "blocked")
    mode = d.json_text("e.payload", "mode")
    unblocked = f"NOT (e.kind = 'handoff' AND COALESCE({blocked}, 'false') = 'true')"
    older = f"""
        SELECT MAX(e.created_at) FROM {EVENT} e
        WHERE e.kind = %s AND e.task_key = claims.task_key AND e.created_at < %(lookback)s
            AND {unblocked}
    """
    baton_at = older.replace("%s", "'handoff'")
    claim_at = older.replace("%s", "'claimed'")
    baton_mode = f"""
        SELECT {mode} FROM {EVENT} e
        WHERE e.kind = 'handoff' AND e.task_key = far.task_key AND e.created_at = far.baton_at
            AND {unblocked}
        ORDER BY e.id DESC LIMIT 1
    """
    values = f"""
        WITH seq AS (
            SELECT e.task_key, e.kind, e.created_at, {_pod_of(d, "e")} AS pod,
                LAG(e.kind) OVER w AS prev_kind,
                LAG(e.created_at) OVER w AS prev_at,
                LAG({mode}) OVER w AS prev_mode
            FROM {EVENT} e
            WHERE e.kind IN ('handoff', 'claimed')
                AND e.created_at >= %(lookback)s AND e.created_at < %(end)s AND {unblocked}
            WINDOW w AS (PARTITION BY {d.binary("e.task_key")} ORDER BY e.created_at, e.id)
        ),
        claims AS (
            SELECT task_key, created_at, pod, prev_kind, prev_at, prev_mode FROM seq
            WHERE kind = 'claimed' AND created_at >= %(start)s
        ),
        far AS (
            SELECT claims.task_key, claims.created_at, claims.pod,
                ({baton_at}) AS baton_at, ({claim_at}) AS claim_at
            FROM claims WHERE prev_kind IS NULL
        )
        SELECT pod AS grp, prev_mode AS metric, {d.seconds_between("prev_at", "created_at")} AS v
        FROM claims WHERE prev_kind = 'handoff' AND prev_mode IN ('sync', 'async')
        UNION ALL
        SELECT pod, ({baton_mode}), {d.seconds_between("baton_at", "created_at")}
        FROM far WHERE baton_at IS NOT NULL AND (claim_at IS NULL OR claim_at < baton_at)
    """
    waits = _percentiles(d, values, params)
    for modes in waits.values():
        for name in [m for m in modes if m not in MODES]:
            del modes[name]
    return waits


def _event_counts(d, params):
    """``{pod: {kind: count}}`` for claims, scale-outs, stalls and review change requests."""
    verdict = d.json_text("e.payload", "verdict")
    rows = fetch(
        f"""
        SELECT pod, what, COUNT(*) FROM (
            SELECT {_pod_of(d, "e")} AS pod,
                CASE WHEN e.kind = 'reviewed' THEN 'changes_requested' ELSE e.kind END AS what
            FROM {EVENT} e
            WHERE e.kind IN ('claimed', 'scaled_out', 'lease_expired', 'reviewed')
                AND e.created_at >= %(start)s AND e.created_at < %(end)s
                AND (e.kind <> 'reviewed' OR {verdict} = 'changes_requested')
        ) counted
        WHERE pod IS NOT NULL
        GROUP BY pod, what
        """,
        params,
    )
    out = defaultdict(dict)
    for pod, what, count in rows:
        out[pod][what] = count
    return out


def _send_backs(d, params):
    """``{pod: rework tasks created for it}``: each ``sent_back`` Event counts for the pod of
    its rework task (or, when that is gone, of the task sent back to)."""
    rework = d.json_text("e.payload", "rework")
    to = d.json_text("e.payload", "to")
    rows = fetch(
        f"""
        SELECT pod, COUNT(*) FROM (
            SELECT COALESCE(
                (SELECT p.name FROM {TASK} t JOIN {POD} p ON p.id = t.pod_owner_id
                    WHERE t.id = {rework}),
                (SELECT p.name FROM {TASK} t JOIN {POD} p ON p.id = t.pod_owner_id
                    WHERE t.id = {to})
            ) AS pod
            FROM {EVENT} e
            WHERE e.kind = 'sent_back' AND e.created_at >= %(start)s AND e.created_at < %(end)s
        ) sb
        WHERE pod IS NOT NULL
        GROUP BY pod
        """,
        params,
    )
    return dict(rows)


def _cfd(d, params, window, names):
    """The cumulative flow diagram: ``[{day, pod, ready, active, review, done}]``.

    Today's counts come from the tasks; each earlier day is the next day's counts with that
    next day's changes undone. A day's change of one task is its state before the day's first
    status Event and after its last, so a burst of Events (a drag to Done writes three) counts
    once.
    """
    created = d.json_text("e.payload", "created")
    task_pod = (
        f"(SELECT p.name FROM {TASK} t JOIN {POD} p ON p.id = t.pod_owner_id "
        "WHERE t.id = e.task_key)"
    )
    kinds = ", ".join(f"'{kind}'" for kind in STATUS_KINDS)

    # Only an import leaves the state after it unsaid: the next status Event's "before", or
    # the task's state now. Imports are rare, so this is looked up for them alone.
    def after_import(column, current):
        return f"""COALESCE(
            (SELECT nx.{column} FROM {EVENT} nx
             WHERE nx.kind IN ({kinds}) AND nx.task_key = seq.task_key
                AND nx.kind NOT IN ('created', 'imported') AND nx.from_status <> ''
                AND (nx.created_at > seq.created_at
                    OR (nx.created_at = seq.created_at AND nx.id > seq.id))
             ORDER BY nx.created_at, nx.id LIMIT 1),
            {current})"""

    current_status = f"(SELECT t.status FROM {TASK} t WHERE t.id = seq.task_key)"
    current_pod = (
        f"(SELECT p.name FROM {TASK} t JOIN {POD} p ON p.id = t.pod_owner_id "
        "WHERE t.id = seq.task_key)"
    )
    rows = fetch(
        f"""
        WITH ev AS (
            SELECT e.task_key, e.created_at, e.id, {d.day("e.created_at")} AS day,
                CASE WHEN e.kind IN ('created', 'imported') THEN '' ELSE e.from_status END
                    AS b_status,
                CASE WHEN e.kind IN ('created', 'imported') THEN NULL
                    ELSE COALESCE(NULLIF(e.from_pod, ''), {task_pod}) END AS b_pod,
                CASE WHEN e.kind = 'deleted' THEN '' ELSE e.to_status END AS a_status,
                CASE WHEN e.kind = 'deleted' THEN NULL
                    ELSE COALESCE(NULLIF(e.to_pod, ''), {task_pod}) END AS a_pod
            FROM {EVENT} e
            WHERE e.kind IN ({kinds}) AND e.created_at >= %(start)s
                AND (e.from_status <> e.to_status OR e.from_pod <> e.to_pod
                    OR e.kind IN ('created', 'deleted')
                    OR (e.kind = 'imported' AND {created} = 'true'))
        ),
        seq AS (
            SELECT task_key, created_at, id, day, b_status, b_pod, a_status, a_pod,
                LAG(day) OVER w AS prev_day, LEAD(day) OVER w AS next_day
            FROM ev
            WINDOW w AS (PARTITION BY {d.binary("task_key")} ORDER BY created_at, id)
        ),
        -- One pass over seq (so PostgreSQL need not materialize it): each row gives the
        -- state a day began with (side -1) and the one it ended with (side 1).
        marks AS (
            SELECT day,
                CASE WHEN side = -1 THEN b_pod WHEN a_status <> '' THEN a_pod
                    ELSE {after_import("from_pod", current_pod)} END AS pod,
                CASE WHEN side = -1 THEN b_status WHEN a_status <> '' THEN a_status
                    ELSE {after_import("from_status", current_status)} END AS status,
                side AS delta
            FROM seq CROSS JOIN (SELECT -1 AS side UNION ALL SELECT 1) sides
            WHERE CASE WHEN side = -1
                THEN (prev_day IS NULL OR prev_day <> day) AND b_status <> ''
                ELSE (next_day IS NULL OR next_day <> day) AND (a_status <> '' OR a_pod IS NOT NULL)
                END
        )
        SELECT day, pod, status, SUM(delta) FROM marks
        WHERE pod IS NOT NULL AND status IS NOT NULL
        GROUP BY day, pod, status
        """,
        params,
    )
    change = defaultdict(lambda: defaultdict(int))  # day → (pod, status) → net change
    for day, pod, status, delta in rows:
        change[str(day)][(pod, status)] += int(delta)
    state = defaultdict(int)
    pod_names = dict(fetch(f"SELECT id, name FROM {POD}"))
    for pod_id, status, count in fetch(
        f"SELECT pod_owner_id, status, COUNT(*) FROM {TASK} GROUP BY pod_owner_id, status"
    ):
        state[(pod_names.get(pod_id), status)] = count
    last = window.last.isoformat()
    for day, deltas in change.items():
        if day > last:  # Events stamped after today (a clock ahead): not in today's counts
            for key, delta in deltas.items():
                state[key] -= delta
    by_day = {}
    for day in reversed(window.dates()):
        iso = day.isoformat()
        by_day[iso] = dict(state)
        for key, delta in change.get(iso, {}).items():
            state[key] -= delta
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
        f"SELECT task_key, done_at FROM ({_done_tasks(d)}) dt WHERE pod = %(pod)s "
        "ORDER BY done_at, task_key",
        {"start": d.timestamp(start), "end": d.timestamp(end), "pod": pod},
    )
    return [(key, _as_datetime(at)) for key, at in rows]


def _as_datetime(value):
    """A timestamp from a raw query: SQLite answers text, PostgreSQL a datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
