"""Claiming a pod's next task: one function, the same result on both engines.

``claim`` picks, locks and claims the task rule 2 names and records its ``claimed`` Event.
On SQLite (and any other engine) it runs as ORM queries; on PostgreSQL as one statement that
also reads the start context, which saves five round trips on the API's busiest call. Both
answer a ``Pull`` (the ``StartWork``, or why there is none) and leave the Event on the change.

Back-pressure, in this order: an instance that already holds a task of the pod gets it back;
a paused pod hands out nothing else; work a sync handoff reserved for the pod is handed out
even at the WIP limit; a ready task is claimed only while the pod's active tasks are under
its ``wip_limit`` (Review does not count).
"""

import json
from datetime import datetime

from django.conf import settings
from django.db import connection
from django.db.models import Case, Count, F, IntegerField, OuterRef, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .. import ordering
from ..graph import blocked_exists
from ..models import EventKind, HandoffNote, Pod, Status, Task
from ..prepared import prepared, prepared_update
from .results import CONTEXT_COMMENT_KINDS, CONTEXT_STEPS, Pull, StartWork
from .rows import extend_lease, lease_until


def claim(change, *, pod, instance):
    """Claim ``pod``'s next task for ``instance``; return a ``Pull``."""
    if connection.vendor == "postgresql":
        return _claim_postgres(change, pod, instance)
    return _claim_orm(change, pod, instance)


def _claimed(change, task, instance, from_status):
    pod = task.pod_owner.name
    return change.record(
        task,
        EventKind.CLAIMED,
        actor=instance,
        from_status=from_status,
        to_status=Status.ACTIVE,
        from_pod=pod,
        to_pod=pod,
        instance=instance,
    )


# The ORM path ----------------------------------------------------------------------------------
#
# Each query is ``prepared``: built by the ORM once, then run with the pod and instance.


def _claimable():
    return Task.objects.select_for_update(skip_locked=True, of=("self",))


@prepared(pod=int)
def _pod_state(pod):
    """The pod's ``(paused, wip_limit, active tasks)``."""
    active = (
        Task.objects.filter(pod_owner_id=OuterRef("pk"), status=Status.ACTIVE)
        .order_by()
        .values("pod_owner_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return (
        Pod.objects.filter(pk=pod).order_by().values_list("paused", "wip_limit", Subquery(active))
    )


def _active(pod, claimed_by, order):
    return (
        _claimable()
        .filter(pod_owner_id=pod, status=Status.ACTIVE, claimed_by__in=claimed_by)
        .order_by(*order, *ordering.column_order(Status.ACTIVE))[:1]
    )


@prepared(pod=int, instance=str)
def _held_or_reserved(pod, instance):
    """The active task ``instance`` holds, else one a sync handoff reserved (locked)."""
    mine_first = Case(
        When(claimed_by=instance, then=Value(0)), default=Value(1), output_field=IntegerField()
    )
    return _active(pod, [instance, ""], [mine_first])


@prepared(pod=int, instance=str)
def _held(pod, instance):
    """The active task ``instance`` holds (locked): all a paused pod hands out."""
    return _active(pod, [instance], [])


@prepared(pod=int)
def _ready_candidate(pod):
    """The best ready, unblocked task of ``pod`` that nobody else is claiming (locked)."""
    return (
        _claimable()
        .filter(pod_owner_id=pod, status=Status.READY)
        .filter(~blocked_exists())
        .order_by(*ordering.column_order(Status.READY))[:1]
    )


def _held_back(state):
    """Return the ``Pull`` that says why a pod in ``state`` may claim no ready task, or None."""
    paused, limit, used = state
    if paused:
        return Pull(paused=True)
    if limit is not None and (used or 0) >= limit:
        return Pull(wip_limit=limit)
    return None


def _first(rows, pod):
    if not rows:
        return None
    rows[0].pod_owner = pod
    return rows[0]


@prepared_update(task=str, from_status=str, instance=str, lease=datetime, now=datetime)
def _claim_row(task, from_status, instance, lease, now):
    """Claim ``task`` for ``instance`` if it is still in ``from_status`` and held by nobody."""
    return Task.objects.filter(pk=task, status=from_status, claimed_by=""), {
        "status": Status.ACTIVE,
        "claimed_by": instance,
        "lease_expires_at": lease,
        "started_at": Coalesce(F("started_at"), Value(now)),
        "version": F("version") + 1,
        "updated_at": now,
    }


def _claim_orm(change, pod, instance):
    states = _pod_state(pod=pod.pk)
    if not states:
        return Pull()  # no such pod
    state = states[0]
    active = _held if state[0] else _held_or_reserved
    for _attempt in range(5):
        task = _first(active(pod=pod.pk, instance=instance), pod)
        if task is not None and task.claimed_by == instance:
            extend_lease(task, timezone.now())
            return Pull(StartWork.load(task))
        if task is None:
            held_back = _held_back(state)
            if held_back is not None:
                return held_back
            task = _first(_ready_candidate(pod=pod.pk), pod)
        if task is None:
            return Pull()
        # The clock is read after the candidate query saw its dependencies done, so started_at
        # is never earlier than a dependency's completed_at.
        now = timezone.now()
        from_status = task.status
        won = _claim_row(
            task=task.pk,
            from_status=from_status,
            instance=instance,
            lease=lease_until(now),
            now=now,
        )
        if not won:
            continue
        task.status, task.claimed_by = Status.ACTIVE, instance
        task.lease_expires_at, task.started_at = lease_until(now), task.started_at or now
        task.version, task.updated_at = task.version + 1, now
        _claimed(change, task, instance, from_status)
        return Pull(StartWork.load(task))
    return Pull()


# The PostgreSQL statement ----------------------------------------------------------------------
#
# - ``pod_state``: the pod's ``paused`` and ``wip_limit``, and its active tasks (counted only
#   when it has a limit). The final SELECT always answers this one row, so a caller that gets
#   no task learns why.
# - ``pick``: the task ``_active_candidate`` would return (the one the instance holds, else,
#   unless the pod is paused, one a sync handoff reserved), else the one ``_ready_candidate``
#   would (unless paused or at the WIP limit), in the same order (``ordering``) and locked FOR
#   UPDATE SKIP LOCKED. The scalar subqueries are init plans, which PostgreSQL runs lazily, so
#   COALESCE never looks at (nor locks) a later candidate when an earlier one is found.
# - ``claimed``: a task the instance already holds only gets a new lease (no event, no version
#   bump); any other is claimed as in the ORM path (``claimed_by = ''`` is re-checked).
# - ``event``: the ``claimed`` Event, only for a new claim.
# - the final SELECT adds the start context: the ``handoff_from`` task's summary, outputs,
#   next steps, last thoughts and trace steps, the dependencies, the latest note addressed to
#   the task, its comments, and the outputs of a scale-out chain the task continues from.
CLAIM_SQL = """
WITH clock AS MATERIALIZED (
    -- Read after the statement's snapshot, so a task never starts before a dependency that
    -- this very snapshot saw done was completed (a clock read in Python could be older).
    SELECT clock_timestamp() AS now
), pod_state AS MATERIALIZED (
    SELECT p.paused, p.wip_limit,
           CASE WHEN p.wip_limit IS NULL THEN 0 ELSE (
               SELECT count(*) FROM tasks_app_task x
               WHERE x.pod_owner_id = p.id AND x.status = 'active') END AS used
    FROM tasks_app_pod p WHERE p.id = %(pod)s
), pick AS (
    SELECT t.id, t.status AS from_status,
           t.status = 'active' AND t.claimed_by = %(instance)s AS held
    FROM tasks_app_task t
    WHERE t.id = COALESCE(
        (SELECT a.id FROM tasks_app_task a
         WHERE a.pod_owner_id = %(pod)s AND a.status = 'active'
           AND a.claimed_by = %(instance)s
         ORDER BY {active_order}
         LIMIT 1 FOR UPDATE SKIP LOCKED),
        (SELECT a.id FROM tasks_app_task a
         WHERE a.pod_owner_id = %(pod)s AND a.status = 'active' AND a.claimed_by = ''
           AND NOT (SELECT paused FROM pod_state)
         ORDER BY {active_order}
         LIMIT 1 FOR UPDATE SKIP LOCKED),
        (SELECT r.id FROM tasks_app_task r
         WHERE r.pod_owner_id = %(pod)s AND r.status = 'ready'
           AND (SELECT NOT paused AND (wip_limit IS NULL OR used < wip_limit) FROM pod_state)
           AND NOT EXISTS (
               SELECT 1 FROM tasks_app_task_depends_on d
               JOIN tasks_app_task dep ON dep.id = d.to_task_id
               WHERE d.from_task_id = r.id AND dep.status <> 'done')
         ORDER BY {ready_order}
         LIMIT 1 FOR UPDATE SKIP LOCKED)
    )
), claimed AS (
    UPDATE tasks_app_task t SET
        status = 'active',
        claimed_by = %(instance)s,
        lease_expires_at = (SELECT now FROM clock) + %(lease_seconds)s * interval '1 second',
        started_at = CASE WHEN pick.held THEN t.started_at
                          ELSE COALESCE(t.started_at, (SELECT now FROM clock)) END,
        version = CASE WHEN pick.held THEN t.version ELSE t.version + 1 END,
        updated_at = CASE WHEN pick.held THEN t.updated_at ELSE (SELECT now FROM clock) END
    FROM pick
    WHERE t.id = pick.id AND (pick.held OR t.claimed_by = '')
    RETURNING {task_columns}, pick.from_status, pick.held
), event AS (
    INSERT INTO tasks_app_event
        (task_id, task_key, kind, actor, from_status, to_status, from_pod, to_pod, payload,
         created_at)
    SELECT c.id, c.id, 'claimed', %(instance)s, c.from_status, 'active', %(pod_name)s,
           %(pod_name)s, %(payload)s::jsonb, (SELECT now FROM clock)
    FROM claimed c WHERE NOT c.held
    RETURNING id
)
SELECT ps.paused, ps.wip_limit, ps.used, c.*,
    (SELECT id FROM event),
    src.reasoning_summary,
    src.outputs::text,
    (SELECT json_agg(json_build_array(dep.id, dep.title, dep.status) ORDER BY dep.id)
     FROM tasks_app_task_depends_on d JOIN tasks_app_task dep ON dep.id = d.to_task_id
     WHERE d.from_task_id = c.id),
    row_to_json(n),
    -- The rest of the start context, as results.StartWork.load reads it with the ORM.
    COALESCE(src.next_steps, (SELECT f.next_steps FROM tasks_app_task f
                              WHERE f.id = n.from_task_id AND f.id <> c.id))::text,
    (SELECT json_agg(json_build_array(t.step, t.thought, t.at) ORDER BY t.step, t.id)
     FROM (SELECT t.step, t.thought, t.at, t.id FROM tasks_app_thought t
           WHERE t.task_id = src.id ORDER BY t.step DESC, t.id DESC LIMIT {context_steps}) t),
    (SELECT json_agg(json_build_array(s.step, s.action, s.rationale, s.tokens, s.author_pod, s.at)
                     ORDER BY s.step, s.id)
     FROM (SELECT s.step, s.action, s.rationale, s.tokens, s.author_pod, s.at, s.id
           FROM tasks_app_tracestep s WHERE s.task_id = src.id
           ORDER BY s.step DESC, s.id DESC LIMIT {context_steps}) s),
    (SELECT json_agg(json_build_array(m.kind, m.body, m.author, m.created_at)
                     ORDER BY m.created_at, m.id)
     FROM tasks_app_comment m WHERE m.task_id = c.id AND m.kind IN {comment_kinds}),
    (SELECT json_agg(json_build_array(ch.id, ch.outputs)
                     ORDER BY ch.id <> src.scale_root, ch.created_at, ch.id)
     FROM tasks_app_task ch
     WHERE src.scale_root <> '' AND (ch.id = src.scale_root OR ch.scale_root = src.scale_root))
FROM pod_state ps
LEFT JOIN claimed c ON TRUE
LEFT JOIN tasks_app_task src ON src.id = c.handoff_from_id
LEFT JOIN LATERAL (
    SELECT n.id, n.from_task_id, n.to_task_id, n.note, n.reason, n.handoff_type, n.mode,
           n.token_count, n.author, n.author_pod, n.why, n.created_at
    FROM tasks_app_handoffnote n WHERE n.to_task_id = c.id
    ORDER BY n.created_at DESC, n.id DESC LIMIT 1) n ON TRUE
"""


def _sql_order(status, alias):
    """Return ``ordering``'s order of ``status`` as SQL over the table alias ``alias``."""

    def column(name):
        if name == "carries_baton":
            return f"CASE WHEN {alias}.handoff_from_id IS NULL THEN 0 ELSE 1 END"
        return f"{alias}.{name}"

    return ordering.sql_order(status, column)


TASK_ATTNAMES = [f.attname for f in Task._meta.concrete_fields]
CLAIM_SQL = CLAIM_SQL.format(
    task_columns=", ".join(f"t.{a}" for a in TASK_ATTNAMES),
    active_order=_sql_order(Status.ACTIVE, "a"),
    ready_order=_sql_order(Status.READY, "r"),
    context_steps=CONTEXT_STEPS,
    comment_kinds="(" + ", ".join(f"'{k}'" for k in CONTEXT_COMMENT_KINDS) + ")",
)
_JSON_ATTNAMES = {"inputs", "outputs"}


def _loaded(model, attnames, values):
    """Return a model instance for a row read by hand, as the ORM would have built it."""
    return model.from_db(connection.alias, attnames, values)


def _claim_postgres(change, pod, instance):
    params = {
        "pod": pod.pk,
        "pod_name": pod.name,
        "instance": instance,
        "lease_seconds": settings.PODBOARD_LEASE_SECONDS,
        "payload": json.dumps({"instance": instance}),
    }
    with connection.cursor() as cursor:
        cursor.execute(CLAIM_SQL, params)
        row = cursor.fetchone()
    if row is None:
        return Pull()  # no such pod
    (paused, wip_limit, used), row = row[:3], row[3:]
    if row[0] is None:
        # Nothing claimed: the pod is paused or at its WIP limit, or there is nothing to do,
        # or the best ready task still names a holder (as the ORM path, which gives up after
        # retrying).
        if paused:
            return Pull(paused=True)
        at_limit = wip_limit is not None and used >= wip_limit
        return Pull(wip_limit=wip_limit if at_limit else None)
    n = len(TASK_ATTNAMES)
    values = [
        json.loads(v) if a in _JSON_ATTNAMES and isinstance(v, str) else v
        for a, v in zip(TASK_ATTNAMES, row[:n], strict=True)
    ]
    (from_status, held, event_id, src_summary, src_outputs, deps, note, next_steps, thoughts,
     steps, comments, chain) = row[n:]  # fmt: skip
    task = _loaded(Task, TASK_ATTNAMES, values)
    task.pod_owner = pod
    source = None
    if task.handoff_from_id is not None:
        source = _loaded(
            Task,
            ["id", "outputs", "reasoning_summary"],
            [task.handoff_from_id, json.loads(src_outputs or "null"), src_summary or ""],
        )
    if note is not None:
        note["created_at"] = parse_datetime(note["created_at"])
        note = _loaded(HandoffNote, list(note), list(note.values()))
    if not held:
        event = _claimed(change, task, instance, from_status)
        event.id, event.created_at = event_id, task.updated_at
        event._state.adding, event._state.db = False, connection.alias
    return Pull(
        StartWork(
            task=task,
            dependencies=[tuple(d) for d in deps or []],
            note=note,
            source=source,
            thoughts=[(st, text, parse_datetime(at)) for st, text, at in thoughts or []],
            steps=[(*step[:5], parse_datetime(step[5])) for step in steps or []],
            next_steps=json.loads(next_steps) if next_steps else [],
            comments=[(k, body, who, parse_datetime(at)) for k, body, who, at in comments or []],
            linked=[tuple(link) for link in chain] if chain else None,
        )
    )
