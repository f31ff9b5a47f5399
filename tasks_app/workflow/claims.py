"""Claiming a pod's next task: one function, the same result on both engines.

``claim`` picks, locks and claims the task rule 2 names and records its ``claimed`` Event.
On SQLite (and any other engine) it runs as ORM queries; on PostgreSQL as one statement that
also reads the start context, which saves five round trips on the API's busiest call. Both
answer a ``StartWork`` (or None) and leave the Event on the change.
"""

import json

from django.conf import settings
from django.db import connection
from django.db.models import Case, F, IntegerField, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .. import ordering
from ..graph import blocked_exists
from ..models import EventKind, HandoffNote, Status, Task
from .results import StartWork
from .rows import lease_until


def claim(change, *, pod, instance):
    """Claim ``pod``'s next task for ``instance``; return its ``StartWork`` or None."""
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


def _claimable():
    return Task.objects.select_for_update(skip_locked=True, of=("self",)).select_related(
        "pod_owner"
    )


def _active_candidate(pod, instance):
    """Return the active task ``instance`` holds, else one a sync handoff reserved (locked)."""
    mine_first = Case(
        When(claimed_by=instance, then=Value(0)), default=Value(1), output_field=IntegerField()
    )
    return (
        _claimable()
        .filter(pod_owner=pod, status=Status.ACTIVE, claimed_by__in=[instance, ""])
        .order_by(mine_first, *ordering.column_order(Status.ACTIVE))
        .first()
    )


def _ready_candidate(pod):
    """Return the best ready, unblocked task of ``pod`` that nobody else is claiming (locked)."""
    return (
        _claimable()
        .filter(pod_owner=pod, status=Status.READY)
        .filter(~blocked_exists())
        .order_by(*ordering.column_order(Status.READY))
        .first()
    )


def _claim_orm(change, pod, instance):
    for _attempt in range(5):
        task = _active_candidate(pod, instance)
        if task is not None and task.claimed_by == instance:
            task.lease_expires_at = lease_until(timezone.now())
            Task.objects.filter(pk=task.pk).update(lease_expires_at=task.lease_expires_at)
            return StartWork.load(task)
        task = task or _ready_candidate(pod)
        if task is None:
            return None
        # The clock is read after the candidate query saw its dependencies done, so started_at
        # is never earlier than a dependency's completed_at.
        now = timezone.now()
        from_status = task.status
        won = Task.objects.filter(pk=task.pk, status=from_status, claimed_by="").update(
            status=Status.ACTIVE,
            claimed_by=instance,
            lease_expires_at=lease_until(now),
            started_at=Coalesce(F("started_at"), Value(now)),
            version=F("version") + 1,
            updated_at=now,
        )
        if not won:
            continue
        task.status, task.claimed_by = Status.ACTIVE, instance
        task.lease_expires_at, task.started_at = lease_until(now), task.started_at or now
        task.version, task.updated_at = task.version + 1, now
        _claimed(change, task, instance, from_status)
        return StartWork.load(task)
    return None


# The PostgreSQL statement ----------------------------------------------------------------------
#
# - ``pick``: the task ``_active_candidate`` would return, else the one ``_ready_candidate``
#   would, in the same order (``ordering``) and locked FOR UPDATE SKIP LOCKED. The two scalar
#   subqueries are init plans, which PostgreSQL runs lazily, so COALESCE never looks at (nor
#   locks) a ready task when an active one is found.
# - ``claimed``: a task the instance already holds only gets a new lease (no event, no version
#   bump); any other is claimed as in the ORM path (``claimed_by = ''`` is re-checked).
# - ``event``: the ``claimed`` Event, only for a new claim.
# - the final SELECT adds the start context: the ``handoff_from`` task's summary and outputs,
#   the dependencies and the latest note addressed to the task.
CLAIM_SQL = """
WITH clock AS MATERIALIZED (
    -- Read after the statement's snapshot, so a task never starts before a dependency that
    -- this very snapshot saw done was completed (a clock read in Python could be older).
    SELECT clock_timestamp() AS now
), pick AS (
    SELECT t.id, t.status AS from_status,
           t.status = 'active' AND t.claimed_by = %(instance)s AS held
    FROM tasks_app_task t
    WHERE t.id = COALESCE(
        (SELECT a.id FROM tasks_app_task a
         WHERE a.pod_owner_id = %(pod)s AND a.status = 'active'
           AND a.claimed_by IN (%(instance)s, '')
         ORDER BY CASE WHEN a.claimed_by = %(instance)s THEN 0 ELSE 1 END, {active_order}
         LIMIT 1 FOR UPDATE SKIP LOCKED),
        (SELECT r.id FROM tasks_app_task r
         WHERE r.pod_owner_id = %(pod)s AND r.status = 'ready'
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
SELECT c.*,
    (SELECT id FROM event),
    src.reasoning_summary,
    src.outputs::text,
    (SELECT json_agg(json_build_array(dep.id, dep.title, dep.status) ORDER BY dep.id)
     FROM tasks_app_task_depends_on d JOIN tasks_app_task dep ON dep.id = d.to_task_id
     WHERE d.from_task_id = c.id),
    (SELECT row_to_json(n) FROM (
        SELECT n.id, n.from_task_id, n.to_task_id, n.note, n.reason, n.handoff_type, n.mode,
               n.token_count, n.author, n.created_at
        FROM tasks_app_handoffnote n WHERE n.to_task_id = c.id
        ORDER BY n.created_at DESC, n.id DESC LIMIT 1) n)
FROM claimed c LEFT JOIN tasks_app_task src ON src.id = c.handoff_from_id
"""


def _sql_order(status, alias):
    """Return ``ordering.COLUMN_KEYS[status]`` as an SQL ORDER BY list over ``alias``."""
    terms = []
    for name, desc in ordering.COLUMN_KEYS[status]:
        column = (
            f"CASE WHEN {alias}.handoff_from_id IS NULL THEN 0 ELSE 1 END"
            if name == "carries_baton"
            else f"{alias}.{name}"
        )
        terms.append(f"{column} {'DESC' if desc else 'ASC'} NULLS LAST")
    return ", ".join(terms)


TASK_ATTNAMES = [f.attname for f in Task._meta.concrete_fields]
CLAIM_SQL = CLAIM_SQL.format(
    task_columns=", ".join(f"t.{a}" for a in TASK_ATTNAMES),
    active_order=_sql_order(Status.ACTIVE, "a"),
    ready_order=_sql_order(Status.READY, "r"),
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
        # Nothing to claim, or the best ready task still names a holder (as the ORM path,
        # which gives up after retrying).
        return None
    n = len(TASK_ATTNAMES)
    values = [
        json.loads(v) if a in _JSON_ATTNAMES and isinstance(v, str) else v
        for a, v in zip(TASK_ATTNAMES, row[:n], strict=True)
    ]
    from_status, held, event_id, src_summary, src_outputs, deps, note = row[n:]
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
    return StartWork(
        task=task, dependencies=[tuple(d) for d in deps or []], note=note, source=source
    )

