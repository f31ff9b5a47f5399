"""Rules 1–3, 8 and 9 and the record-keeping rules: activate, next, start, move, lease
expiry, create, edit, delete, import."""

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from .. import ordering
from ..graph import successor_ids
from ..models import (
    EventKind,
    HandoffNote,
    Pod,
    Status,
    Task,
    validate_created_task_id,
    validate_task_id,
)
from . import claims, control
from .handoff import finish
from .results import StartWork
from .rows import (
    check_holder,
    lease_until,
    lock,
    note_from,
    pod_event,
    refuse_if_blocked,
    refuse_unless,
    release,
    save,
)
from .runner import RuleError, invalid


def _activate(change, task, actor):
    if task.status == Status.ACTIVE:
        return task
    refuse_unless(task, Status.READY, doing="only a ready task can be activated")
    refuse_if_blocked(task)
    now = timezone.now()
    task.status, task.started_at = Status.ACTIVE, task.started_at or now
    task.claimed_by, task.lease_expires_at = "", None
    save(task, now, "status", "started_at", "claimed_by", "lease_expires_at")
    pod_event(change, task, EventKind.ACTIVATED, actor=actor, from_status=Status.READY)
    return task


def activate(change, *, task_id, actor=""):
    """Move a ready task to active, held by nobody until a pod starts it (rule 1)."""
    return _activate(change, lock(task_id), actor)


def pull(change, *, pod, instance):
    """Claim the pod's next task for ``instance`` (rule 2); a ``Pull``: its ``StartWork``, or
    why there is none (the pod is paused, or at its WIP limit)."""
    if not instance:
        raise invalid("An instance name is required.")
    return claims.claim(change, pod=pod, instance=instance)


def claim_next(change, *, pod, instance):
    """Claim the pod's next task for ``instance`` (rule 2); its ``StartWork``, or None."""
    return pull(change, pod=pod, instance=instance).work


def start(change, *, task_id, instance):
    """Claim ``task_id`` for ``instance`` or extend its lease if it holds it (rule 3)."""
    if not instance:
        raise invalid("An instance name is required.")
    task = lock(task_id)
    if task.status == Status.DONE:
        raise RuleError(
            "invalid_transition", f"Task {task.pk} is already done.", task_status="done"
        )
    if task.status == Status.ACTIVE:
        check_holder(task, instance, verb="start")
    else:
        refuse_if_blocked(task)
    now = timezone.now()
    if task.claimed_by == instance:
        task.lease_expires_at = lease_until(now)
        Task.objects.filter(pk=task.pk).update(lease_expires_at=task.lease_expires_at)
    else:
        from_status = task.status
        task.status, task.claimed_by = Status.ACTIVE, instance
        task.lease_expires_at, task.started_at = lease_until(now), task.started_at or now
        save(task, now, "status", "claimed_by", "lease_expires_at", "started_at")
        pod_event(
            change,
            task,
            EventKind.CLAIMED,
            actor=instance,
            from_status=from_status,
            instance=instance,
        )
    return StartWork.load(task)


# Rule 8: move ----------------------------------------------------------------------------------


def move(
    change,
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
    """Apply a person's move: another column and/or pod lane, and a place in the column.

    The place is ``position``, or between the cards ``after_id`` (above) and ``before_id``
    (below). A stale ``version`` is a ``conflict``.
    """
    task = lock(task_id)
    if version is not None and int(version) != task.version:
        raise RuleError(
            "conflict",
            f"Task {task.pk} changed since you loaded it (version {version}, now {task.version}).",
            version=task.version,
        )
    if to_status and to_status not in Status.values:
        raise invalid(f"Unknown column {to_status!r}.")
    pod = task.pod_owner
    if to_pod and to_pod != pod.name:
        pod = Pod.objects.filter(name=to_pod).first()
        if pod is None:
            raise invalid(f"Unknown pod {to_pod!r}.")
    from_status, from_pod = task.status, task.pod_owner.name
    to_status = to_status or from_status
    _check_review_move(task, pod, from_status, to_status)
    now = timezone.now()
    changed = []
    if pod.pk != task.pod_owner_id:
        task.pod_owner, task.claimed_by, task.lease_expires_at = pod, "", None
        changed += ["pod_owner", "claimed_by", "lease_expires_at"]
    if position is not None:
        task.position = float(position)
        changed.append("position")
    if changed:
        save(task, now, *changed)
    effect = _move_column(change, task, from_status, to_status, actor, now)
    to_status = task.status  # Active → Done on a review pod lands in Review
    if position is None and (after_id or before_id):
        position = ordering.position_between(task, to_status, after_id, before_id)
        if position is not None:
            Task.objects.filter(pk=task.pk).update(position=position)
    change.record(
        task,
        EventKind.MOVED,
        actor=actor,
        from_status=from_status,
        to_status=to_status,
        from_pod=from_pod,
        to_pod=pod.name,
        **effect,
    )
    task.refresh_from_db()
    return task


def _check_review_move(task, pod, from_status, to_status):
    """Refuse the moves that would skip the review gate or leave a review undecided."""
    if from_status == Status.REVIEW:
        if pod.pk != task.pod_owner_id and to_status != Status.READY:
            raise RuleError(
                "invalid_transition",
                f"Task {task.pk} is in review: approve it or request changes before it moves "
                "to another pod.",
                task_status=from_status,
            )
        if to_status == Status.ACTIVE:
            raise RuleError(
                "invalid_transition",
                f"Task {task.pk} is in review: drop it on Done to approve it, or on Ready to "
                "request changes.",
                task_status=from_status,
            )
    elif to_status == Status.REVIEW and (from_status == Status.DONE or not pod.review_required):
        why = "is done" if from_status == Status.DONE else f"'s pod {pod.name} reviews nothing"
        raise RuleError(
            "invalid_transition",
            f"Task {task.pk} {why}: only the completion of a task whose pod requires review "
            "puts it in Review.",
            task_status=from_status,
        )


def _move_column(change, task, from_status, to_status, actor, now):
    if from_status == to_status:
        return {}
    if from_status == Status.REVIEW:
        # Review → Done approves; Review → Ready requests changes (``_check_review_move``).
        verdict = control.APPROVE if to_status == Status.DONE else control.CHANGES_REQUESTED
        note = "" if verdict == control.APPROVE else f"Changes requested by {actor} on the board."
        decided = control.decide(change, task, verdict, note=note, actor=actor)
        return {"verdict": verdict, "successors": getattr(decided, "successors", [])}
    if to_status == Status.REVIEW:
        to_status = Status.DONE  # a completion, which puts a task of a review pod in Review
    if to_status == Status.ACTIVE:
        if from_status == Status.DONE:
            _reopen(task, now)
        _activate(change, task, actor)
        return {}
    if to_status == Status.DONE:
        if from_status == Status.READY:
            _activate(change, task, actor)
        done = finish(change, task, actor=actor)
        if done.task.status == Status.REVIEW:
            return {"successors": [], "review": True}
        return {"successors": done.successors}
    if from_status == Status.DONE:
        _reopen(task, now)
    else:
        release(task, now)
    return {}


def _reopen(task, now):
    task.completed_at = None
    release(task, now)
    Task.objects.filter(pk=task.pk).update(completed_at=None)


# Rule 9: lease expiry --------------------------------------------------------------------------


def expire_leases(change, *, now=None, batch=500):
    """Return up to ``batch`` active tasks whose lease ran out to ready, with a ``stalled``
    note each; return how many (call again while it returns ``batch``)."""
    now = now or timezone.now()
    tasks = list(
        Task.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("pod_owner")
        # A task waiting for a person's answer keeps its lease (``control.ask``).
        .filter(status=Status.ACTIVE, lease_expires_at__lt=now, asked_at__isnull=True)
        .order_by("lease_expires_at")[:batch]
    )
    notes = []
    for task in tasks:
        holder, expired_at = task.claimed_by, task.lease_expires_at
        release(task, now)
        notes.append(
            note_from(
                task,
                task,
                f"{holder or 'The holder'} stopped answering; its lease ran out at "
                f"{expired_at:%Y-%m-%d %H:%M:%S} UTC. The task is back in Ready with its "
                "trace so far.",
                now,
                reason="stalled",
                author="podboard",
            )
        )
        pod_event(
            change,
            task,
            EventKind.LEASE_EXPIRED,
            actor="podboard",
            from_status=Status.ACTIVE,
            holder=holder,
        )
    HandoffNote.objects.bulk_create(notes)
    return len(tasks)


# Creating, editing, deleting, importing --------------------------------------------------------


def create_task(
    change, *, actor="", id, title, pod_owner, depends_on=(), handoff_from=None, **fields
):
    """Create a task (``pod_owner`` is a Pod); refuse a bad id, an unknown or cyclic dependency."""
    try:
        validate_task_id(id)
        validate_created_task_id(id)
    except Exception as exc:
        raise invalid(f"Bad task id {id!r}: {exc.messages[0]}") from None
    depends_on = list(dict.fromkeys(depends_on))
    known = set(
        Task.objects.filter(pk__in=[*depends_on, handoff_from or ""]).values_list("pk", flat=True)
    )
    missing = [d for d in depends_on if d not in known]
    if handoff_from and handoff_from not in known:
        missing.append(handoff_from)
    if missing:
        raise invalid(f"Unknown task(s): {', '.join(missing)}.")
    if id in depends_on or id == handoff_from:
        raise invalid(f"{id} cannot depend on itself.")
    try:
        with transaction.atomic():
            task = Task.objects.create(
                id=id, title=title, pod_owner=pod_owner, handoff_from_id=handoff_from, **fields
            )
    except IntegrityError:
        raise RuleError("conflict", f"A task with id {id!r} already exists.") from None
    if depends_on:
        task.depends_on.add(*depends_on)
    change.record(
        task, EventKind.CREATED, actor=actor, to_status=task.status, to_pod=pod_owner.name
    )
    return task


def edit_task(change, *, task_id, actor, apply, changed=()):
    """Apply a person's free edit of a task (the admin's form): ``apply()`` writes the rows.

    The task is locked first; the edit gets a new version and an ``edited`` Event that names
    the ``changed`` fields, its status and pod before and after.
    """
    before = lock(task_id)
    apply()
    now = timezone.now()
    Task.objects.filter(pk=task_id).update(version=F("version") + 1, updated_at=now)
    task = Task.objects.select_related("pod_owner").get(pk=task_id)
    change.record(
        task,
        EventKind.EDITED,
        actor=actor,
        from_status=before.status,
        to_status=task.status,
        from_pod=before.pod_owner.name,
        to_pod=task.pod_owner.name,
        fields=sorted(changed),
    )
    return task


def delete_tasks(change, *, task_ids, actor):
    """Delete tasks; each gets a ``deleted`` Event naming it, and its successors a new
    version (a dependency that is gone no longer blocks them)."""
    tasks = list(
        Task.objects.select_for_update(of=("self",))
        .select_related("pod_owner")
        .filter(pk__in=list(task_ids))
        .order_by("pk")
    )
    now = timezone.now()
    touched = set()
    for task in tasks:
        successors = sorted(successor_ids(task.pk) - set(task_ids))
        touched.update(successors)
        change.record(
            None,
            EventKind.DELETED,
            task_key=task.pk,
            actor=actor,
            from_status=task.status,
            from_pod=task.pod_owner.name,
            title=task.title,
            successors=successors,
        )
    Task.objects.filter(pk__in=[t.pk for t in tasks]).delete()
    Task.objects.filter(pk__in=touched).update(version=F("version") + 1, updated_at=now)
    return len(tasks)


def import_plan(change, *, plan, actor, progress=None):
    """Write a checked YAML import ``plan``; one ``imported`` Event per task it wrote."""
    from ..yamlio import write_plan

    change.add(*write_plan(plan, actor=actor, progress=progress))
    return plan.summary()
