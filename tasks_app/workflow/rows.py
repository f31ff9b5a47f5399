"""Reading and writing task rows inside a rule: lock, save with a new version, refuse."""

from datetime import datetime, timedelta

from django.conf import settings

from ..models import HandoffMode, HandoffNote, Status, Task
from ..prepared import insert_row, prepared, prepared_update, update_row
from .runner import RuleError, not_found


def lease_until(now):
    return now + timedelta(seconds=settings.PODBOARD_LEASE_SECONDS)


def lock(task_id):
    """Return the task locked for update, with its pod; raise ``not_found``."""
    found = _locked(task=task_id)
    if not found:
        raise not_found(task_id)
    return found[0]


@prepared(task=str)
def _locked(task):
    return (
        Task.objects.select_for_update(of=("self",))
        .select_related("pod_owner")
        .filter(pk=task)
        .order_by()[:1]
    )


def save(task, now, *fields):
    """Write ``fields`` of ``task`` and bump its version (boards compare versions)."""
    task.version += 1
    task.updated_at = now
    update_row(task, ("updated_at", *fields), increment=("version",))


def extend_lease(task, now):
    """Extend the holder's lease without a new version (the card shows no change)."""
    task.lease_expires_at = lease_until(now)
    _new_lease(task=task.pk, lease=task.lease_expires_at)


@prepared_update(task=str, lease=datetime)
def _new_lease(task, lease):
    return Task.objects.filter(pk=task), {"lease_expires_at": lease}


def refuse_if_blocked(task):
    waiting = task.blocking_ids()
    if waiting:
        raise RuleError(
            "blocked",
            f"Task {task.pk} waits for {', '.join(waiting)} to be done.",
            blocked_by=waiting,
        )


def check_holder(task, instance, *, verb):
    """Refuse a pod ``instance`` acting on a task another instance holds.

    ``instance=None`` is a person acting (board, admin): people may act on any task.
    """
    if instance is not None and task.claimed_by and instance != task.claimed_by:
        raise RuleError(
            "claimed",
            f"Task {task.pk} is held by {task.claimed_by}; {instance or 'you'} cannot {verb} it.",
            claimed_by=task.claimed_by,
        )


def refuse_unless(task, *statuses, doing):
    if task.status not in statuses:
        raise RuleError(
            "invalid_transition",
            f"Task {task.pk} is {task.status}; {doing}.",
            task_status=task.status,
        )


def pod_event(change, task, kind, *, actor, from_status, to_status=None, **payload):
    """Record ``kind`` for ``task`` staying in its pod, from ``from_status`` to its status."""
    pod = task.pod_owner.name
    return change.record(
        task,
        kind,
        actor=actor,
        from_status=from_status,
        to_status=task.status if to_status is None else to_status,
        from_pod=pod,
        to_pod=pod,
        **payload,
    )


def release(task, now, status=Status.READY):
    """Put ``task`` in ``status`` held by nobody."""
    task.status, task.claimed_by, task.lease_expires_at = status, "", None
    save(task, now, "status", "claimed_by", "lease_expires_at")


def note_from(task, to_task, text, now, *, reason, author, mode=HandoffMode.ASYNC, **fields):
    """Return an unsaved note from ``task`` (with its token count) to ``to_task`` (a task, or
    None when no successor is there to read it). ``fields``: ``author_pod``, ``why``,
    ``handoff_type``."""
    return HandoffNote(
        from_task=task,
        to_task=to_task,
        note=text,
        reason=reason,
        mode=mode,
        token_count=task.token_count or 0,
        author=author,
        created_at=now,
        **fields,
    )


def write_note(*args, **kwargs):
    """Save the note ``note_from(*args, **kwargs)`` returns; return it."""
    return insert_row(note_from(*args, **kwargs))
