"""The flow metrics' rows over a range of time ``[%(start)s, %(end)s)``, as SQL.

Each function returns a statement (or common table expressions) that answers, for the Events
in the range, the rows a figure is made of: one row per done Event or per waited claim (for
the percentiles), counts per UTC day and pod, and each day's net change of each column of the
cumulative flow. ``tasks_app.insight.rollup`` stores these rows for closed days;
``tasks_app.insight.flow`` computes the same rows for the days still open and aggregates both.
``%(lookback)s`` is ``LOOKBACK_DAYS`` before ``start`` (see ``done_rows`` and ``wait_rows``).
"""

from .sql import EVENT, POD, TASK

# Creations, first claims and batons are read in one pass over the range and this many days
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
# The counted figures: Event kinds (and review change requests), and send-backs.
COUNTS = ("claimed", "scaled_out", "lease_expired", "changes_requested", "send_backs")
STATUSES = ("ready", "active", "review", "done")


def task_counts():
    """A statement answering ``pod, status, n``: the tasks now."""
    return (
        f"SELECT p.name AS pod, t.status, COUNT(*) AS n "
        f"FROM {TASK} t LEFT JOIN {POD} p ON p.id = t.pod_owner_id GROUP BY p.name, t.status"
    )


def pod_of(d, alias):
    """The pod an Event is about: the one it names, else its task's current pod."""
    return (
        f"COALESCE(NULLIF({alias}.to_pod, ''), NULLIF({alias}.from_pod, ''), "
        f"(SELECT p.name FROM {TASK} t JOIN {POD} p ON p.id = t.pod_owner_id "
        f"WHERE t.id = {alias}.task_key))"
    )


def done_events(d):
    """The condition on Events (alias ``e``) that took a task to Done in the range."""
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


def done_rows(d):
    """Common table expressions ending in ``done_rows``: one row per Event that took a task to
    Done in the range, ``task_key, event_id, done_at, grp, cycle, lead, tokens, chain``.

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

    return f"""
        done AS (
            SELECT e.task_key, e.id AS event_id, e.created_at AS done_at,
                {pod_of(d, "e")} AS pod
            FROM {EVENT} e WHERE {done_events(d)}
        ),
        fc AS ({since_lookback("claimed", "first_claim")}),
        cr AS ({since_lookback("created", "created_at")}),
        joined AS (
            SELECT done.pod AS grp, done.task_key, done.event_id, done.done_at,
                fc.first_claim AS recent_claim,
                COALESCE(cr.created_at, {earlier("created", "done")}, t.created_at)
                    AS created_at,
                t.token_count AS tokens, COALESCE(NULLIF(t.scale_root, ''), t.id) AS chain
            FROM done
            LEFT JOIN fc ON fc.task_key = done.task_key
            LEFT JOIN cr ON cr.task_key = done.task_key
            LEFT JOIN {TASK} t ON t.id = done.task_key
        ),
        facts AS (
            SELECT grp, task_key, event_id, done_at, created_at, tokens, chain,
                CASE WHEN created_at >= %(lookback)s AND recent_claim IS NOT NULL
                    THEN recent_claim
                    ELSE COALESCE({earlier("claimed", "joined")}, recent_claim) END
                    AS first_claim
            FROM joined
        ),
        done_rows AS (
            SELECT task_key, event_id, done_at, grp, tokens, chain,
                CASE WHEN first_claim <= done_at
                    THEN {d.seconds_between("first_claim", "done_at")} END AS cycle,
                {d.seconds_between("created_at", "done_at")} AS lead
            FROM facts
        )
    """


def wait_rows(d):
    """A statement answering one row per claim in the range that waited on a workable baton:
    ``task_key, event_id, at, grp, metric, v`` (``metric`` the baton's mode, ``v`` the wait).

    A claim waited on the latest unblocked ``handoff`` of its task when no other claim came
    between them. The database pairs them in one ordered pass over the Events since
    ``lookback``; only a claim with nothing before it in that stretch is looked up further
    back, on its own.
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
    return f"""
        WITH seq AS (
            SELECT e.id, e.task_key, e.kind, e.created_at, {pod_of(d, "e")} AS pod,
                LAG(e.kind) OVER w AS prev_kind,
                LAG(e.created_at) OVER w AS prev_at,
                LAG({mode}) OVER w AS prev_mode
            FROM {EVENT} e
            WHERE e.kind IN ('handoff', 'claimed')
                AND e.created_at >= %(lookback)s AND e.created_at < %(end)s AND {unblocked}
            WINDOW w AS (PARTITION BY {d.partition("e.task_key")} ORDER BY e.created_at, e.id)
        ),
        claims AS (
            SELECT id, task_key, created_at, pod, prev_kind, prev_at, prev_mode FROM seq
            WHERE kind = 'claimed' AND created_at >= %(start)s
        ),
        far AS (
            SELECT claims.id, claims.task_key, claims.created_at, claims.pod,
                ({baton_at}) AS baton_at, ({claim_at}) AS claim_at
            FROM claims WHERE prev_kind IS NULL
        )
        SELECT task_key, id AS event_id, created_at AS at, pod AS grp, prev_mode AS metric,
            {d.seconds_between("prev_at", "created_at")} AS v
        FROM claims WHERE prev_kind = 'handoff' AND prev_mode IN ('sync', 'async')
        UNION ALL
        SELECT task_key, id, created_at, pod, ({baton_mode}),
            {d.seconds_between("baton_at", "created_at")}
        FROM far WHERE baton_at IS NOT NULL AND (claim_at IS NULL OR claim_at < baton_at)
    """


def count_rows(d):
    """A statement answering ``day, pod, figure, count`` for the counted figures (``COUNTS``)
    in the range: Events of the pod's tasks, and rework tasks created for the pod (a
    ``sent_back`` Event counts for the pod of its rework task or, when that is gone, of the
    task sent back to)."""
    verdict = d.json_text("e.payload", "verdict")
    rework = d.json_text("e.payload", "rework")
    to = d.json_text("e.payload", "to")
    pod_named = (
        f"(SELECT p.name FROM {TASK} t JOIN {POD} p ON p.id = t.pod_owner_id WHERE t.id = %s)"
    )
    return f"""
        SELECT day, pod, what, COUNT(*) AS n FROM (
            SELECT {d.day("e.created_at")} AS day, {pod_of(d, "e")} AS pod,
                CASE WHEN e.kind = 'reviewed' THEN 'changes_requested' ELSE e.kind END AS what
            FROM {EVENT} e
            WHERE e.kind IN ('claimed', 'scaled_out', 'lease_expired', 'reviewed')
                AND e.created_at >= %(start)s AND e.created_at < %(end)s
                AND (e.kind <> 'reviewed' OR {verdict} = 'changes_requested')
            UNION ALL
            SELECT {d.day("e.created_at")},
                COALESCE({pod_named.replace("%s", rework)}, {pod_named.replace("%s", to)}),
                'send_backs'
            FROM {EVENT} e
            WHERE e.kind = 'sent_back' AND e.created_at >= %(start)s AND e.created_at < %(end)s
        ) counted
        WHERE pod IS NOT NULL
        GROUP BY day, pod, what
    """


def cfd_rows(d, *, bounded, since="start"):
    """A statement answering ``day, pod, status, delta``: each day's net change of each
    column of the cumulative flow, from the Events since ``%(<since>)s`` (and before
    ``end`` when ``bounded``).

    A day's change of one task is its state before the day's first status Event and after its
    last, so a burst of Events (a drag to Done writes three) counts once.
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
    until = "AND e.created_at < %(end)s" if bounded else ""
    return f"""
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
            WHERE e.kind IN ({kinds}) AND e.created_at >= %({since})s {until}
                AND (e.from_status <> e.to_status OR e.from_pod <> e.to_pod
                    OR e.kind IN ('created', 'deleted')
                    OR (e.kind = 'imported' AND {created} = 'true'))
        ),
        seq AS (
            SELECT task_key, created_at, id, day, b_status, b_pod, a_status, a_pod,
                LAG(day) OVER w AS prev_day, LEAD(day) OVER w AS next_day
            FROM ev
            WINDOW w AS (PARTITION BY {d.partition("task_key")} ORDER BY created_at, id)
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
        SELECT day, pod, status, SUM(delta) AS delta FROM marks
        WHERE pod IS NOT NULL AND status IS NOT NULL
        GROUP BY day, pod, status
    """
