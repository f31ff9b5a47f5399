"""The workflow rules of DESIGN.md, and the only code that changes a task's state.

Every rule is a keyword-only function that runs in one transaction, locks the rows it changes,
writes its Events and announces them to open boards after commit (``announce``). Views, the
API, admin actions, YAML import and management commands all call these functions.
"""

import json
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, Exists, F, IntegerField, OuterRef, Q, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .models import (
    AutoModeRule,
    Event,
    EventKind,
    HandoffMode,
    HandoffNote,
    HandoffType,
    Pod,
    Status,
    Task,
    Thought,
    TraceStep,
    carries_baton,
    validate_task_id,
)

log = logging.getLogger(__name__)

Depends = Task.depends_on.through


class WorkflowError(Exception):
    """A refused change: nothing was written. ``code`` is stable, ``detail`` is for people."""

    def __init__(self, code, detail, status=409, **extra):
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status
        self.extra = extra


def not_found(task_id):
    return WorkflowError("not_found", f"No task with id {task_id!r}.", status=404)


# Announcements -------------------------------------------------------------------------------


def announce(events):
    """Tell open boards about ``events`` once the current transaction commits."""
    events = [e for e in events if e is not None]
    if not events:
        return

    def send():
        from . import live

        live.publish(events)

    transaction.on_commit(send, robust=True)


def _event(
    task, kind, *, actor="", from_status="", to_status="", from_pod="", to_pod="", **payload
):
    return Event(
        task=task,
        task_key=task.pk if task is not None else payload.get("task_key", ""),
        kind=kind,
        actor=actor or "",
        from_status=from_status,
        to_status=to_status,
        from_pod=from_pod,
        to_pod=to_pod,
        payload=payload,
    )


def _record(*events):
    """Save ``events`` (in one statement where the database allows) and announce them."""
    events = [e for e in events if e is not None]
    if not events:
        return []
    if len(events) == 1 or connection.features.can_return_rows_from_bulk_insert:
        if len(events) == 1:
            events[0].save(force_insert=True)
        else:
            Event.objects.bulk_create(events)
    else:
        for event in events:
            event.save(force_insert=True)
    announce(events)
    return events


# Reading helpers -----------------------------------------------------------------------------


def _lease_until(now):
    return now + timedelta(seconds=settings.PODBOARD_LEASE_SECONDS)


def _blocked_exists():
    """An ``Exists`` that is true while the outer task has a dependency not done."""
    return Exists(
        Depends.objects.filter(from_task_id=OuterRef("pk")).exclude(to_task__status=Status.DONE)
    )


def _lock(task_id, *, as_pod=None):
    """Return the task locked for update, with its pod; raise not_found or forbidden_pod."""
    task = (
        Task.objects.select_for_update(of=("self",))
        .select_related("pod_owner")
        .filter(pk=task_id)
        .first()
    )
    if task is None:
        raise not_found(task_id)
    if as_pod is not None and task.pod_owner_id != as_pod.pk:
        raise WorkflowError(
            "forbidden_pod",
            f"Task {task.pk} belongs to {task.pod_owner.name}; this token acts for {as_pod.name}.",
            status=403,
        )
    return task


def _save(task, now, *fields):
    """Write ``fields`` of ``task`` and bump its version."""
    task.version += 1
    task.updated_at = now
    Task.objects.filter(pk=task.pk).update(
        version=F("version") + 1, updated_at=now, **{f: getattr(task, f) for f in fields}
    )


def _refuse_if_blocked(task):
    waiting = task.blocking_ids()
    if waiting:
        raise WorkflowError(
            "blocked",
            f"Task {task.pk} waits for {', '.join(waiting)} to be done.",
            blocked_by=waiting,
        )


def _check_holder(task, instance, *, verb):
    if task.claimed_by and instance != task.claimed_by:
        raise WorkflowError(
            "claimed",
            f"Task {task.pk} is held by {task.claimed_by}; {instance or 'you'} cannot {verb} it.",
            claimed_by=task.claimed_by,
        )


def _with_context_relations(task_id):
    return Task.objects.select_related("pod_owner", "handoff_from").get(pk=task_id)


def find_cycle(task_id, dependency_ids):
    """Return a path that would close a cycle if ``task_id`` depended on ``dependency_ids``."""
    parents = {dep: None for dep in dependency_ids}
    if task_id in parents:
        return [task_id, task_id]
    frontier = set(dependency_ids)
    while frontier:
        rows = Depends.objects.filter(from_task_id__in=frontier).values_list(
            "from_task_id", "to_task_id"
        )
        nxt = set()
        for src, dst in rows:
            if dst in parents:
                continue
            parents[dst] = src
            if dst == task_id:
                path = [dst]
                while parents[path[-1]] is not None:
                    path.append(parents[path[-1]])
                return [task_id, *reversed(path)]
            nxt.add(dst)
        frontier = nxt
    return None


def _refuse_cycle(task_id, dependency_ids):
    path = find_cycle(task_id, dependency_ids)
    if path:
        raise WorkflowError(
            "validation_error",
            f"{task_id} cannot depend on {path[1]}: that makes a cycle ({' → '.join(path)}).",
            status=422,
        )


# Rule 1: activate ----------------------------------------------------------------------------


def activate(*, task_id, actor="", as_pod=None):
    """Move a ready task to active, held by nobody until a pod starts it."""
    with transaction.atomic():
        task = _lock(task_id, as_pod=as_pod)
        if task.status == Status.ACTIVE:
            return task
        if task.status != Status.READY:
            raise WorkflowError(
                "invalid_transition",
                f"Task {task.pk} is {task.status}; only a ready task can be activated.",
            )
        _refuse_if_blocked(task)
        now = timezone.now()
        task.status, task.started_at, task.claimed_by, task.lease_expires_at = (
            Status.ACTIVE,
            task.started_at or now,
            "",
            None,
        )
        _save(task, now, "status", "started_at", "claimed_by", "lease_expires_at")
        _record(
            _event(
                task,
                EventKind.ACTIVATED,
                actor=actor,
                from_status=Status.READY,
                to_status=Status.ACTIVE,
                from_pod=task.pod_owner.name,
                to_pod=task.pod_owner.name,
            )
        )
        return task


# Rule 2: next --------------------------------------------------------------------------------


def claim_next(*, pod, instance):
    """Claim the pod's next task for ``instance``; return it, or None when there is nothing.

    The task comes with ``pod_owner`` and ``handoff_from`` selected, ready for
    ``shapes.start_context``.
    """
    if not instance:
        raise WorkflowError("validation_error", "An instance name is required.", status=422)
    if connection.vendor == "postgresql":
        return _claim_next_postgres(pod, instance)
    for _attempt in range(5):
        with transaction.atomic():
            task = _active_candidate(pod, instance)
            if task is not None and task.claimed_by == instance:
                task.lease_expires_at = _lease_until(timezone.now())
                Task.objects.filter(pk=task.pk).update(lease_expires_at=task.lease_expires_at)
                return task
            task = task or _ready_candidate(pod)
            if task is None:
                return None
            # Read the clock after the candidate query saw its dependencies done, so started_at
            # is never earlier than a dependency's completed_at.
            now = timezone.now()
            from_status = task.status
            won = Task.objects.filter(pk=task.pk, status=from_status, claimed_by="").update(
                status=Status.ACTIVE,
                claimed_by=instance,
                lease_expires_at=_lease_until(now),
                started_at=Coalesce(F("started_at"), Value(now)),
                version=F("version") + 1,
                updated_at=now,
            )
            if not won:
                continue
            task.status, task.claimed_by = Status.ACTIVE, instance
            task.lease_expires_at, task.started_at = _lease_until(now), task.started_at or now
            task.version, task.updated_at = task.version + 1, now
            _record(_claimed_event(task, instance, from_status))
            return task
    return None


# The same rule as the ORM path above, as one PostgreSQL statement (one round trip instead of
# five, and no query compilation): pick the candidate, claim it, write its ``claimed`` Event and
# read everything ``shapes.start_context`` needs.
#
# - ``pick``: the task ``_active_candidate`` would return (held by this instance first, then one a
#   sync handoff reserved), else the one ``_ready_candidate`` would return, in the same order and
#   locked FOR UPDATE SKIP LOCKED. The two scalar subqueries are init plans, which PostgreSQL runs
#   lazily, so COALESCE never looks at (nor locks) a ready task when an active one is found.
# - ``claimed``: a task the instance already holds only gets a new lease (no event, no version
#   bump); any other is claimed as in the ORM path (``claimed_by = ''`` is re-checked).
# - ``event``: the ``claimed`` Event, only for a new claim.
# - the final SELECT adds the start context: the ``handoff_from`` task's summary and outputs, the
#   dependencies (id, title, status by id) and the latest note addressed to the task.
CLAIM_NEXT_SQL = """
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
         ORDER BY CASE WHEN a.claimed_by = %(instance)s THEN 0 ELSE 1 END,
                  a.priority DESC, a.started_at, a.id
         LIMIT 1 FOR UPDATE SKIP LOCKED),
        (SELECT r.id FROM tasks_app_task r
         WHERE r.pod_owner_id = %(pod)s AND r.status = 'ready'
           AND NOT EXISTS (
               SELECT 1 FROM tasks_app_task_depends_on d
               JOIN tasks_app_task dep ON dep.id = d.to_task_id
               WHERE d.from_task_id = r.id AND dep.status <> 'done')
         ORDER BY r.priority DESC,
                  CASE WHEN r.handoff_from_id IS NULL THEN 0 ELSE 1 END,
                  r.position, r.created_at, r.id
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
TASK_ATTNAMES = [f.attname for f in Task._meta.concrete_fields]
CLAIM_NEXT_SQL = CLAIM_NEXT_SQL.format(task_columns=", ".join(f"t.{a}" for a in TASK_ATTNAMES))
_JSON_ATTNAMES = {"inputs", "outputs"}


def _claim_next_postgres(pod, instance):
    """``claim_next`` on PostgreSQL: one statement (see ``CLAIM_NEXT_SQL``)."""
    # One statement is atomic on its own: outside a transaction it commits at once (saving the
    # BEGIN and COMMIT round trips) and ``announce`` sends right after; inside an outer
    # transaction it waits for that to commit. Times come from the database's clock (see
    # ``clock`` in the statement).
    params = {
        "pod": pod.pk,
        "pod_name": pod.name,
        "instance": instance,
        "lease_seconds": settings.PODBOARD_LEASE_SECONDS,
        "payload": json.dumps({"instance": instance}),
    }
    # Django's cursors bind parameters client-side, so PostgreSQL plans this statement on every
    # call (~0.5 ms); a server-side prepared statement would save that, but Django turns them
    # off by default so that connection poolers (pgbouncer) keep working.
    with connection.cursor() as cursor:
        cursor.execute(CLAIM_NEXT_SQL, params)
        row = cursor.fetchone()
    if row is None:
        # Nothing to claim, or (as in the ORM path, which gives up after retrying) the best
        # ready task still names a holder.
        return None
    n = len(TASK_ATTNAMES)
    values = [
        json.loads(v) if a in _JSON_ATTNAMES and isinstance(v, str) else v
        for a, v in zip(TASK_ATTNAMES, row[:n], strict=True)
    ]
    from_status, held, event_id, src_summary, src_outputs, deps, note = row[n:]
    task = Task.from_db(connection.alias, TASK_ATTNAMES, values)
    task.pod_owner = pod
    if task.handoff_from_id is not None:
        # Only what the start context reads; other fields load on access. (``from_db`` wants
        # the values in the model's field order.)
        task.handoff_from = Task.from_db(
            connection.alias,
            ["id", "outputs", "reasoning_summary"],
            [task.handoff_from_id, json.loads(src_outputs or "null"), src_summary or ""],
        )
    else:
        task.handoff_from = None
    if note is not None:
        note["created_at"] = parse_datetime(note["created_at"])
        note = HandoffNote(**note)
        note._state.adding, note._state.db = False, connection.alias
    # Picked up by shapes.start_context instead of querying again.
    task.start_context_parts = {
        "dependencies": [tuple(d) for d in deps or []],
        "note": note,
    }
    if not held:
        event = _claimed_event(task, instance, from_status)
        event.id, event.created_at = event_id, task.updated_at
        event._state.adding, event._state.db = False, connection.alias
        announce([event])
    return task


def _claimed_event(task, instance, from_status):
    pod = task.pod_owner.name
    return _event(
        task,
        EventKind.CLAIMED,
        actor=instance,
        from_status=from_status,
        to_status=Status.ACTIVE,
        from_pod=pod,
        to_pod=pod,
        instance=instance,
    )


def _claimable():
    return Task.objects.select_for_update(skip_locked=True, of=("self",)).select_related(
        "pod_owner", "handoff_from"
    )


def _active_candidate(pod, instance):
    """Return the active task ``instance`` holds, else one a sync handoff reserved (locked)."""
    return (
        _claimable()
        .filter(pod_owner=pod, status=Status.ACTIVE, claimed_by__in=[instance, ""])
        .annotate(
            not_mine=Case(
                When(claimed_by=instance, then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            )
        )
        .order_by("not_mine", "-priority", "started_at", "id")
        .first()
    )


def _ready_candidate(pod):
    """Return the best ready, unblocked task of ``pod`` that nobody else is claiming (locked)."""
    return (
        _claimable()
        .filter(pod_owner=pod, status=Status.READY)
        .filter(~_blocked_exists())
        .annotate(carries_baton=carries_baton())
        .order_by("-priority", "carries_baton", "position", "created_at", "id")
        .first()
    )


# Rule 3: start -------------------------------------------------------------------------------


def start(*, task_id, instance, as_pod=None):
    """Claim ``task_id`` for ``instance`` (or extend its lease if it already holds it)."""
    if not instance:
        raise WorkflowError("validation_error", "An instance name is required.", status=422)
    with transaction.atomic():
        task = _lock(task_id, as_pod=as_pod)
        now = timezone.now()
        if task.status == Status.DONE:
            raise WorkflowError("invalid_transition", f"Task {task.pk} is already done.")
        if task.status == Status.ACTIVE:
            _check_holder(task, instance, verb="start")
        else:
            _refuse_if_blocked(task)
        if task.claimed_by == instance:
            Task.objects.filter(pk=task.pk).update(lease_expires_at=_lease_until(now))
        else:
            from_status = task.status
            task.status, task.claimed_by = Status.ACTIVE, instance
            task.lease_expires_at, task.started_at = _lease_until(now), task.started_at or now
            _save(task, now, "status", "claimed_by", "lease_expires_at", "started_at")
            _record(_claimed_event(task, instance, from_status))
    return _with_context_relations(task.pk)


# Trace / heartbeat ---------------------------------------------------------------------------


def _append_numbered(model, task, items, build):
    """Append ``items`` to ``task``'s rows of ``model``, numbering any without a ``step``
    after the last one; ``build(item)`` gives the row's other fields."""
    last = (
        model.objects.filter(task=task).order_by("-step").values_list("step", flat=True).first()
        or 0
    )
    rows = []
    for item in items:
        last = item.get("step") or last + 1
        rows.append(model(task=task, step=last, **build(item)))
    model.objects.bulk_create(rows)


def _append_trace(task, now, steps=None, thoughts=None):
    if steps:
        _append_numbered(
            TraceStep,
            task,
            steps,
            lambda item: {
                "action": item.get("action") or "",
                "rationale": item.get("rationale") or "",
                "tokens": item.get("tokens") or 0,
                "at": item.get("at") or now,
            },
        )
    if thoughts:
        _append_numbered(
            Thought,
            task,
            thoughts,
            lambda item: {"thought": item.get("thought") or "", "at": item.get("at") or now},
        )


def trace(*, task_id, instance, steps=(), thoughts=(), summary=None, token_count=None, as_pod=None):
    """Append reasoning steps or thoughts to an active task and extend the holder's lease."""
    with transaction.atomic():
        task = _lock(task_id, as_pod=as_pod)
        if task.status != Status.ACTIVE:
            raise WorkflowError(
                "invalid_transition", f"Task {task.pk} is {task.status}; traces go on active tasks."
            )
        _check_holder(task, instance, verb="trace")
        now = timezone.now()
        _append_trace(task, now, steps, thoughts)
        fields = []
        if task.claimed_by:
            task.lease_expires_at = _lease_until(now)
            fields.append("lease_expires_at")
        if summary is not None:
            task.reasoning_summary = summary
            fields.append("reasoning_summary")
        if token_count is not None:
            task.token_count = token_count
            fields.append("token_count")
        if steps or thoughts or summary is not None or token_count is not None:
            # The card shows the token count and the lease: a new version lets boards take it.
            _save(task, now, *fields)
            _record(
                _event(
                    task,
                    EventKind.TRACED,
                    actor=instance,
                    steps=len(steps or ()),
                    thoughts=len(thoughts or ()),
                    token_count=task.token_count,
                )
            )
        elif fields:
            Task.objects.filter(pk=task.pk).update(lease_expires_at=task.lease_expires_at)
        return task


# Rule 4 and 5: complete ----------------------------------------------------------------------


@dataclass
class Completion:
    task: Task
    successors: list = field(default_factory=list)  # [{"id", "status", "mode"}]
    started: list = field(default_factory=list)  # ids of successors started in sync mode
    continuation: Task | None = None
    repeated: bool = False


def complete(
    *,
    task_id,
    instance="",
    actor="",
    outputs=None,
    handoff_note="",
    reasoning_trace=None,
    chain_of_thought=None,
    token_count=None,
    handoff_to_same_pod=False,
    reason="",
    as_pod=None,
    by_human=False,
):
    """Complete an active task and start its successors by its handoff mode (rule 4), or hand
    the rest of the work to another instance of the same pod (rule 5)."""
    author = instance or actor
    with transaction.atomic():
        task = _lock(task_id, as_pod=as_pod)
        if task.status == Status.DONE:
            return _repeated_completion(task, instance)
        if task.status != Status.ACTIVE:
            raise WorkflowError(
                "invalid_transition",
                f"Task {task.pk} is ready; start or activate it before completing it.",
            )
        if not by_human:
            _check_holder(task, instance, verb="complete")
        now = timezone.now()
        if outputs is not None:
            task.outputs = outputs
        if token_count is not None:
            task.token_count = token_count
        reasoning_trace = reasoning_trace or {}
        if reasoning_trace.get("summary") is not None:
            task.reasoning_summary = reasoning_trace["summary"]
        _append_trace(task, now, reasoning_trace.get("steps"), chain_of_thought)
        task.status, task.completed_at, task.lease_expires_at = Status.DONE, now, None
        task.claimed_by = task.claimed_by or instance
        successor_ids = None
        if connection.vendor == "postgresql" and not handoff_to_same_pod:
            successor_ids = _finish_postgres(task, now)
        else:
            _save(
                task,
                now,
                "outputs",
                "token_count",
                "reasoning_summary",
                "status",
                "completed_at",
                "lease_expires_at",
                "claimed_by",
            )
        if handoff_to_same_pod:
            continuation = _scale_out(
                task,
                now,
                author=author,
                reason=reason or "capacity_reached",
                note=handoff_note,
                token_count=task.token_count,
                from_status=Status.ACTIVE,
            )
            return Completion(task=task, continuation=continuation)
        deferred = [] if successor_ids is not None else None
        successors, started = _hand_off(
            task,
            now,
            author=author,
            note=handoff_note,
            reason=reason or "completed",
            successor_ids=successor_ids,
            deferred_notes=deferred,
        )
        event = _event(
            task,
            EventKind.COMPLETED,
            actor=author,
            from_status=Status.ACTIVE,
            to_status=Status.DONE,
            from_pod=task.pod_owner.name,
            to_pod=task.pod_owner.name,
            successors=successors,
            continuation=None,
            instance=instance,
        )
        if deferred is not None and not successors:
            # PostgreSQL, no successors: the note (if any) and the event in one statement.
            _insert_note_and_event_postgres(deferred[0] if deferred else None, event)
            announce([event])
        else:
            _record(event)
        return Completion(task=task, successors=successors, started=started)


# ``complete``'s write on PostgreSQL, with what comes next read in the same round trip: the same
# UPDATE as ``_save`` (fields, version + 1, updated_at), returning the ids of the successors
# (``_successor_ids``) and the task's dependencies with their status (for the answer's task
# shape). Subqueries in RETURNING see the rows as they were when the statement began, which is
# after this transaction locked the task.
FINISH_SQL = """
UPDATE tasks_app_task SET
    outputs = %(outputs)s::jsonb, token_count = %(token_count)s,
    reasoning_summary = %(reasoning_summary)s, status = %(status)s,
    completed_at = %(completed_at)s, lease_expires_at = %(lease_expires_at)s,
    claimed_by = %(claimed_by)s, version = version + 1, updated_at = %(now)s
WHERE id = %(id)s
RETURNING
    ARRAY(SELECT d.from_task_id FROM tasks_app_task_depends_on d WHERE d.to_task_id = %(id)s
          UNION
          SELECT b.id FROM tasks_app_task b WHERE b.handoff_from_id = %(id)s),
    (SELECT json_agg(json_build_array(dep.id, dep.status) ORDER BY dep.id)
     FROM tasks_app_task_depends_on d JOIN tasks_app_task dep ON dep.id = d.to_task_id
     WHERE d.from_task_id = %(id)s)
"""


def _finish_postgres(task, now):
    """Write the completed ``task`` (see ``FINISH_SQL``); return its successors' ids.

    Leaves the dependencies as ``task.dependency_statuses`` (``[(id, status), …]``) for
    ``shapes.task_data``.
    """
    task.version += 1
    task.updated_at = now
    with connection.cursor() as cursor:
        cursor.execute(
            FINISH_SQL,
            {
                "id": task.pk,
                "outputs": json.dumps(task.outputs),
                "token_count": task.token_count,
                "reasoning_summary": task.reasoning_summary,
                "status": task.status,
                "completed_at": task.completed_at,
                "lease_expires_at": task.lease_expires_at,
                "claimed_by": task.claimed_by,
                "now": now,
            },
        )
        successor_ids, dependencies = cursor.fetchone()
    task.dependency_statuses = [tuple(d) for d in dependencies or []]
    return set(successor_ids)


# A task with no successors writes its note (if any) and its ``completed`` Event; on PostgreSQL
# both go in one statement (a data-modifying CTE runs whether or not the query reads it).
NOTE_AND_EVENT_SQL = """
WITH note AS (
    INSERT INTO tasks_app_handoffnote
        (from_task_id, to_task_id, note, reason, handoff_type, mode, token_count, author,
         created_at)
    SELECT %(n_from)s, NULL, %(n_note)s, %(n_reason)s, %(n_type)s, %(n_mode)s, %(n_tokens)s,
           %(n_author)s, %(n_created_at)s
    WHERE %(with_note)s
)
INSERT INTO tasks_app_event
    (task_id, task_key, kind, actor, from_status, to_status, from_pod, to_pod, payload,
     created_at)
VALUES (%(task_id)s, %(task_key)s, %(kind)s, %(actor)s, %(from_status)s, %(to_status)s,
        %(from_pod)s, %(to_pod)s, %(payload)s::jsonb, %(created_at)s)
RETURNING id
"""


def _insert_note_and_event_postgres(note, event):
    """Insert ``note`` (unsaved, or None) and ``event`` in one statement; set ``event.id``."""
    params = {
        "with_note": note is not None,
        "n_from": None,
        "n_note": "",
        "n_reason": "",
        "n_type": "",
        "n_mode": "",
        "n_tokens": 0,
        "n_author": "",
        "n_created_at": event.created_at,
        "task_id": event.task_id,
        "task_key": event.task_key,
        "kind": event.kind,
        "actor": event.actor,
        "from_status": event.from_status,
        "to_status": event.to_status,
        "from_pod": event.from_pod,
        "to_pod": event.to_pod,
        "payload": json.dumps(event.payload),
        "created_at": event.created_at,
    }
    if note is not None:
        params.update(
            n_from=note.from_task_id,
            n_note=note.note,
            n_reason=note.reason,
            n_type=note.handoff_type,
            n_mode=note.mode,
            n_tokens=note.token_count,
            n_author=note.author,
            n_created_at=note.created_at,
        )
    with connection.cursor() as cursor:
        cursor.execute(NOTE_AND_EVENT_SQL, params)
        (event.id,) = cursor.fetchone()
    event._state.adding, event._state.db = False, connection.alias


def _repeated_completion(task, instance):
    """Answer a repeated completion by the instance that completed the task, changing nothing."""
    if not instance or task.claimed_by != instance:
        raise WorkflowError("invalid_transition", f"Task {task.pk} is already done.")
    event = (
        Event.objects.filter(task=task, kind__in=[EventKind.COMPLETED, EventKind.SCALED_OUT])
        .order_by("-id")
        .first()
    )
    payload = event.payload if event else {}
    successors = payload.get("successors", [])
    continuation = None
    if payload.get("continuation"):
        continuation = (
            Task.objects.select_related("pod_owner").filter(pk=payload["continuation"]).first()
        )
    started = [
        s["id"] for s in successors if s.get("mode") == "sync" and s.get("status") == Status.ACTIVE
    ]
    return Completion(
        task=task, successors=successors, started=started, continuation=continuation, repeated=True
    )


def _successor_ids(task_id):
    """Return the ids of the tasks that depend on ``task_id`` or carry its baton."""
    depending = Depends.objects.filter(to_task_id=task_id).order_by().values_list("from_task_id")
    batons = Task.objects.filter(handoff_from_id=task_id).order_by().values_list("pk")
    return {pk for (pk,) in depending.union(batons)}


def resolve_mode(task, successor, wip_cache):
    """Return ``(mode, why)`` for starting ``successor`` after ``task``."""
    if task.handoff_mode != HandoffMode.AUTO:
        return task.handoff_mode, task.handoff_mode
    rule = (
        AutoModeRule.objects.filter(task_type=successor.task_type).first()
        if successor.task_type
        else None
    )
    if rule is not None:
        return rule.mode, f"auto: rule for task type {successor.task_type!r}"
    pod = successor.pod_owner
    if pod.wip_limit is None:
        return HandoffMode.SYNC, f"auto: {pod.name} has no WIP limit"
    if pod.pk not in wip_cache:
        wip_cache[pod.pk] = Task.objects.filter(pod_owner=pod, status=Status.ACTIVE).count()
    if wip_cache[pod.pk] < pod.wip_limit:
        return (
            HandoffMode.SYNC,
            f"auto: {pod.name} under its WIP limit ({wip_cache[pod.pk]}/{pod.wip_limit})",
        )
    return (
        HandoffMode.ASYNC,
        f"auto: {pod.name} at its WIP limit ({wip_cache[pod.pk]}/{pod.wip_limit})",
    )


def _hand_off(task, now, *, author, note, reason, successor_ids=None, deferred_notes=None):
    """Write notes to ``task``'s ready successors and start the unblocked ones (rule 4).

    ``successor_ids`` is ``_successor_ids(task.pk)`` when the caller already read it. With a
    ``deferred_notes`` list, the note of a task without ready successors is appended to it
    unsaved, for the caller to insert with its event.
    """
    # Find the successors by id first: one query with an OR of the two subqueries left the
    # planner no index but the status one, so it visited every ready task (~10 ms with 20 000
    # ready tasks); two index lookups cost well under a millisecond, and a task with no
    # successors (the common case) needs no locking query at all.
    ids = _successor_ids(task.pk) if successor_ids is None else successor_ids
    successors = []
    if ids:
        successors = list(
            Task.objects.select_for_update(of=("self",))
            .select_related("pod_owner")
            .filter(pk__in=ids, status=Status.READY)
            .order_by("-priority", "created_at", "id")
        )
    if not successors:
        unsaved = None
        if note:
            unsaved = HandoffNote(
                from_task=task,
                to_task=None,
                note=note,
                reason=reason,
                mode=_plain_mode(task),
                token_count=task.token_count,
                author=author,
                created_at=now,
            )
        if unsaved is not None:
            if deferred_notes is not None:
                deferred_notes.append(unsaved)
            else:
                unsaved.save(force_insert=True)
        return [], []
    still_blocked = set(
        Depends.objects.filter(from_task_id__in=[s.pk for s in successors])
        .exclude(to_task__status=Status.DONE)
        .values_list("from_task_id", flat=True)
    )
    wip_cache, answer, started, notes, events = {}, [], [], [], []
    for successor in successors:
        mode, why = resolve_mode(task, successor, wip_cache)
        notes.append(
            HandoffNote(
                from_task=task,
                to_task=successor,
                note=note,
                reason=reason,
                mode=mode,
                token_count=task.token_count,
                author=author,
                created_at=now,
            )
        )
        to_status = Status.READY
        if successor.pk not in still_blocked and mode == HandoffMode.SYNC:
            successor.status, successor.started_at = Status.ACTIVE, successor.started_at or now
            successor.claimed_by, successor.lease_expires_at = "", None
            _save(successor, now, "status", "started_at", "claimed_by", "lease_expires_at")
            wip_cache[successor.pod_owner_id] = wip_cache.get(successor.pod_owner_id, 0) + 1
            started.append(successor.pk)
            to_status = Status.ACTIVE
        answer.append({"id": successor.pk, "status": to_status, "mode": mode})
        events.append(
            _event(
                successor,
                EventKind.HANDOFF,
                actor=author,
                from_status=Status.READY,
                to_status=to_status,
                from_pod=successor.pod_owner.name,
                to_pod=successor.pod_owner.name,
                handoff_from=task.pk,
                mode=mode,
                why=why,
                blocked=successor.pk in still_blocked,
            )
        )
    HandoffNote.objects.bulk_create(notes)
    _record(*events)
    return answer, started


def _plain_mode(task):
    return HandoffMode.SYNC if task.handoff_mode == HandoffMode.SYNC else HandoffMode.ASYNC


def _continuation_id(task):
    root = task.scale_root or task.pk
    taken = set(Task.objects.filter(Q(scale_root=root) | Q(pk=root)).values_list("pk", flat=True))
    n = 2
    for other in taken:
        suffix = other[len(root) + 1 :] if other.startswith(root + ".") else ""
        if suffix.isdigit():
            n = max(n, int(suffix) + 1)
    while f"{root}.{n}" in taken or Task.objects.filter(pk=f"{root}.{n}").exists():
        n += 1
    return root, f"{root}.{n}"


def _scale_out(task, now, *, author, reason, note, token_count, from_status):
    """Finish ``task`` (already marked done) and hand its remaining work to a continuation."""
    root, new_id = _continuation_id(task)
    continuation = Task.objects.create(
        id=new_id,
        title=task.title,
        description=task.description,
        pod_owner=task.pod_owner,
        status=Status.READY,
        task_type=task.task_type,
        priority=task.priority,
        handoff_mode=task.handoff_mode,
        prompt=task.prompt,
        inputs=task.inputs,
        outputs=[],
        handoff_from=task,
        scale_root=root,
        position=task.position,
        created_at=now,
    )
    HandoffNote.objects.create(
        from_task=task,
        to_task=continuation,
        note=note or "",
        reason=reason,
        handoff_type=HandoffType.SCALE,
        mode=HandoffMode.ASYNC,
        token_count=token_count or 0,
        author=author,
        created_at=now,
    )
    # Successors now wait for the continuation, so nothing downstream starts on half-done work.
    waiting = list(
        Depends.objects.filter(to_task_id=task.pk)
        .exclude(from_task__status=Status.DONE)
        .values_list("from_task_id", flat=True)
    )
    Depends.objects.filter(to_task_id=task.pk, from_task_id__in=waiting).update(to_task_id=new_id)
    batons = list(
        Task.objects.filter(handoff_from=task)
        .exclude(status=Status.DONE)
        .exclude(pk=new_id)
        .values_list("pk", flat=True)
    )
    Task.objects.filter(pk__in=batons).update(
        handoff_from_id=new_id, version=F("version") + 1, updated_at=now
    )
    moved = sorted(set(waiting) | set(batons))
    if moved:
        Task.objects.filter(pk__in=waiting).exclude(pk__in=batons).update(
            version=F("version") + 1, updated_at=now
        )
    events = [
        _event(
            task,
            EventKind.SCALED_OUT,
            actor=author,
            from_status=from_status,
            to_status=Status.DONE,
            from_pod=task.pod_owner.name,
            to_pod=task.pod_owner.name,
            continuation=new_id,
            reason=reason,
            token_count=token_count or 0,
            successors=[],
            moved_successors=moved,
        ),
        _event(
            continuation,
            EventKind.CREATED,
            actor=author,
            to_status=Status.READY,
            to_pod=task.pod_owner.name,
            continuation_of=task.pk,
            reason=reason,
        ),
    ]
    for successor_id in moved:
        events.append(
            Event(
                task_id=successor_id,
                task_key=successor_id,
                kind=EventKind.EDITED,
                actor=author,
                payload={"waits_for": new_id, "instead_of": task.pk},
            )
        )
    _record(*events)
    return continuation


# Rule 6: auto_handoff ------------------------------------------------------------------------


def auto_handoff(*, task_id, next_task_id, note="", actor="", as_pod=None):
    """Make ``next_task_id`` carry ``task_id``'s baton; start it now if ``task_id`` is done.

    Return ``(next_task, mode)``.
    """
    if task_id == next_task_id:
        raise WorkflowError("validation_error", "A task cannot hand off to itself.", status=422)
    with transaction.atomic():
        task = _lock(task_id, as_pod=as_pod)
        successor = _lock(next_task_id)
        if successor.status == Status.DONE:
            raise WorkflowError("invalid_transition", f"Task {successor.pk} is already done.")
        _refuse_cycle(successor.pk, [task.pk])
        now = timezone.now()
        successor.handoff_from = task
        successor.depends_on.add(task)
        _save(successor, now, "handoff_from_id")
        from_status = successor.status
        wip_cache = {}
        if task.status == Status.DONE:
            mode, why = resolve_mode(task, successor, wip_cache)
            if successor.status == Status.READY and not successor.blocking_ids():
                # The seed's push model: the successor starts now, whatever the mode says.
                mode = HandoffMode.SYNC
                successor.status, successor.started_at = Status.ACTIVE, successor.started_at or now
                successor.claimed_by, successor.lease_expires_at = "", None
                _save(successor, now, "status", "started_at", "claimed_by", "lease_expires_at")
        else:
            mode, why = resolve_mode(task, successor, wip_cache)
        author = actor or task.claimed_by
        HandoffNote.objects.create(
            from_task=task,
            to_task=successor,
            note=note or "",
            reason="handoff",
            mode=mode,
            token_count=task.token_count,
            author=author,
            created_at=now,
        )
        _record(
            _event(
                successor,
                EventKind.HANDOFF,
                actor=author,
                from_status=from_status,
                to_status=successor.status,
                from_pod=successor.pod_owner.name,
                to_pod=successor.pod_owner.name,
                handoff_from=task.pk,
                mode=mode,
                why=why,
                linked=True,
            )
        )
        return successor, mode


# Rule 7: scale_out ---------------------------------------------------------------------------


def scale_out(
    *,
    task_id,
    instance="",
    actor="",
    reason="",
    token_count=None,
    note="",
    as_pod=None,
    by_human=False,
):
    """Hand an active task's remaining work to a new instance of its pod (rule 5)."""
    with transaction.atomic():
        task = _lock(task_id, as_pod=as_pod)
        if task.status != Status.ACTIVE:
            raise WorkflowError(
                "invalid_transition",
                f"Task {task.pk} is {task.status}; only an active task scales out.",
            )
        if not by_human:
            _check_holder(task, instance, verb="scale out")
        now = timezone.now()
        if token_count is not None:
            task.token_count = token_count
        task.status, task.completed_at, task.lease_expires_at = Status.DONE, now, None
        task.claimed_by = task.claimed_by or instance
        _save(task, now, "token_count", "status", "completed_at", "lease_expires_at", "claimed_by")
        continuation = _scale_out(
            task,
            now,
            author=instance or actor,
            reason=reason or "load_balancing",
            note=note,
            token_count=task.token_count,
            from_status=Status.ACTIVE,
        )
        return Completion(task=task, continuation=continuation)


# Rule 8: move --------------------------------------------------------------------------------


def move(
    *,
    task_id,
    actor,
    to_status=None,
    to_pod=None,
    version=None,
    position=None,
    after_id="",
    before_id="",
):
    """Apply a human's drag: another column and/or pod lane, and an order inside the column.

    The order is ``position``, or the place between the cards ``after_id`` (shown above the
    drop) and ``before_id`` (below it).
    """
    with transaction.atomic():
        task = _lock(task_id)
        if version is not None and int(version) != task.version:
            raise WorkflowError(
                "conflict",
                f"Task {task.pk} changed since you loaded it "
                f"(version {version}, now {task.version}). "
                "The board has been refreshed; try again.",
                version=task.version,
            )
        if to_status and to_status not in Status.values:
            raise WorkflowError("validation_error", f"Unknown column {to_status!r}.", status=422)
        pod = task.pod_owner
        if to_pod and to_pod != pod.name:
            pod = Pod.objects.filter(name=to_pod).first()
            if pod is None:
                raise WorkflowError("validation_error", f"Unknown pod {to_pod!r}.", status=422)
        from_status, from_pod = task.status, task.pod_owner.name
        to_status = to_status or from_status
        now = timezone.now()
        changed = []
        if pod.pk != task.pod_owner_id:
            task.pod_owner, task.claimed_by, task.lease_expires_at = pod, "", None
            changed += ["pod_owner", "claimed_by", "lease_expires_at"]
        if position is not None:
            task.position = float(position)
            changed.append("position")
        if changed:
            _save(task, now, *changed)
        effect = _move_column(task, from_status, to_status, actor, now)
        if position is None and (after_id or before_id):
            position = _position_between(task, pod, to_status, after_id, before_id)
            if position is not None:
                Task.objects.filter(pk=task.pk).update(position=position)
        _record(
            _event(
                task,
                EventKind.MOVED,
                actor=actor,
                from_status=from_status,
                to_status=to_status,
                from_pod=from_pod,
                to_pod=pod.name,
                **effect,
            )
        )
        task.refresh_from_db()
        return task


def _position_between(task, pod, status, after_id, before_id):
    """Return the ``position`` that puts ``task`` between two neighbours of its column.

    Only neighbours with the task's priority count (priority orders the column first); None
    when there is nothing to order against. When the neighbours share a position (every task
    starts at 0), the cards of that priority are spaced out first.
    """
    if status == Status.DONE:  # Done is ordered by completion time, not by hand.
        return None
    band = Task.objects.filter(pod_owner=pod, status=status, priority=task.priority).exclude(
        pk=task.pk
    )
    found = dict(band.filter(pk__in=[after_id, before_id]).values_list("pk", "position"))
    above, below = found.get(after_id), found.get(before_id)
    if above is None and below is None:
        return None
    if above is None:
        return below - 1.0
    if below is None:
        return above + 1.0
    if above < below:
        return (above + below) / 2
    others = list(band.order_by("position", "created_at", "id").only("pk", "position"))
    for index, other in enumerate(others):
        other.position = float(index)
    Task.objects.bulk_update(others, ["position"], batch_size=500)
    spaced = {other.pk: other.position for other in others}
    return (spaced[after_id] + spaced[before_id]) / 2


def _move_column(task, from_status, to_status, actor, now):
    if from_status == to_status:
        return {}
    if to_status == Status.ACTIVE:
        if from_status == Status.DONE:
            _reopen(task, now)
        _refuse_if_blocked(task)
        activate(task_id=task.pk, actor=actor)
        return {}
    if to_status == Status.DONE:
        if from_status == Status.READY:
            activate(task_id=task.pk, actor=actor)
        done = complete(task_id=task.pk, actor=actor, by_human=True)
        return {"successors": done.successors}
    # → ready
    if from_status == Status.DONE:
        _reopen(task, now)
    else:
        task.status, task.claimed_by, task.lease_expires_at = Status.READY, "", None
        _save(task, now, "status", "claimed_by", "lease_expires_at")
    return {}


def _reopen(task, now):
    task.status, task.completed_at, task.claimed_by, task.lease_expires_at = (
        Status.READY,
        None,
        "",
        None,
    )
    _save(task, now, "status", "completed_at", "claimed_by", "lease_expires_at")


# Rule 9: lease expiry ------------------------------------------------------------------------


def expire_leases(*, now=None, batch=500):
    """Return every active task whose lease ran out to ready, with a ``stalled`` note."""
    now = now or timezone.now()
    total = 0
    while True:
        with transaction.atomic():
            tasks = list(
                Task.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("pod_owner")
                .filter(status=Status.ACTIVE, lease_expires_at__lt=now)
                .order_by("lease_expires_at")[:batch]
            )
            if not tasks:
                return total
            notes, events = [], []
            for task in tasks:
                holder, expired_at = task.claimed_by, task.lease_expires_at
                task.status, task.claimed_by, task.lease_expires_at = Status.READY, "", None
                _save(task, now, "status", "claimed_by", "lease_expires_at")
                notes.append(
                    HandoffNote(
                        from_task=task,
                        to_task=task,
                        reason="stalled",
                        mode=HandoffMode.ASYNC,
                        note=f"{holder or 'The holder'} stopped answering; its lease ran out at "
                        f"{expired_at:%Y-%m-%d %H:%M:%S} UTC. The task is back in Ready with its "
                        "trace so far.",
                        token_count=task.token_count,
                        author="podboard",
                        created_at=now,
                    )
                )
                events.append(
                    _event(
                        task,
                        EventKind.LEASE_EXPIRED,
                        actor="podboard",
                        from_status=Status.ACTIVE,
                        to_status=Status.READY,
                        from_pod=task.pod_owner.name,
                        to_pod=task.pod_owner.name,
                        holder=holder,
                    )
                )
            HandoffNote.objects.bulk_create(notes)
            _record(*events)
            total += len(tasks)
            if len(tasks) < batch:
                return total


# Creating and editing ------------------------------------------------------------------------


def create_task(*, actor="", id, title, pod_owner, depends_on=(), handoff_from=None, **fields):
    """Create a task (``pod_owner`` is a Pod); refuse a bad id, an unknown or cyclic dependency."""
    try:
        validate_task_id(id)
    except Exception as exc:
        raise WorkflowError(
            "validation_error", f"Bad task id {id!r}: {exc.messages[0]}", status=422
        ) from None
    depends_on = list(dict.fromkeys(depends_on))
    with transaction.atomic():
        known = set(
            Task.objects.filter(pk__in=[*depends_on, handoff_from or ""]).values_list(
                "pk", flat=True
            )
        )
        missing = [d for d in depends_on if d not in known]
        if handoff_from and handoff_from not in known:
            missing.append(handoff_from)
        if missing:
            raise WorkflowError(
                "validation_error", f"Unknown task(s): {', '.join(missing)}.", status=422
            )
        if id in depends_on or id == handoff_from:
            raise WorkflowError("validation_error", f"{id} cannot depend on itself.", status=422)
        try:
            with transaction.atomic():
                task = Task.objects.create(
                    id=id, title=title, pod_owner=pod_owner, handoff_from_id=handoff_from, **fields
                )
        except IntegrityError:
            raise WorkflowError("conflict", f"A task with id {id!r} already exists.") from None
        if depends_on:
            task.depends_on.add(*depends_on)
        _record(
            _event(
                task, EventKind.CREATED, actor=actor, to_status=task.status, to_pod=pod_owner.name
            )
        )
        return task


def record_edit(*, task, actor, changed=(), from_status="", from_pod=""):
    """Write and announce an ``edited`` event for a change made outside the rules (admin)."""
    with transaction.atomic():
        Task.objects.filter(pk=task.pk).update(version=F("version") + 1)
        task.version += 1
        _record(
            _event(
                task,
                EventKind.EDITED,
                actor=actor,
                from_status=from_status,
                to_status=task.status,
                from_pod=from_pod,
                to_pod=task.pod_owner.name,
                fields=sorted(changed),
            )
        )


def record_import(*, task_ids, actor, created=()):
    """Write one ``imported`` event per task and announce them as one batch."""
    created = set(created)
    events = [
        Event(
            task_id=tid,
            task_key=tid,
            kind=EventKind.IMPORTED,
            actor=actor,
            payload={"created": tid in created},
        )
        for tid in task_ids
    ]
    Event.objects.bulk_create(events, batch_size=1000)
    if events:
        last = Event.objects.order_by("-id").values_list("id", flat=True).first()
        marker = Event(
            id=last,
            kind=EventKind.IMPORTED,
            actor=actor,
            payload={"count": len(events)},
            task_key="",
        )
        announce([marker])
