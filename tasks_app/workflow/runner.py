"""The rule runner: every change of task state runs through ``rule``.

A rule is a function ``fn(change, **arguments)``. ``rule`` runs it in one transaction with a
fresh ``Change``; the rule locks what it changes, writes its rows and records its Events on the
change. When the rule returns, the runner saves the Events it recorded (one statement) and
the webhook deliveries they call for (``push.outbox``, same transaction) and, after commit,
announces all of them to open boards once (``live.publish``). A refusal is a
``RuleError`` (a stable ``code`` and a ``detail`` for people): nothing was written. Which HTTP
status a refusal gets is decided at the edge (the API, the views), never here.
"""

import functools

from django.db import transaction

from ..models import Event
from ..prepared import insert_row
from ..push import outbox


class RuleError(Exception):
    """A refused change: nothing was written. ``code`` is stable, ``detail`` is for people."""

    def __init__(self, code, detail, **extra):
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.extra = extra


def not_found(task_id):
    return RuleError("not_found", f"No task with id {task_id!r}.")


def invalid(detail, **extra):
    return RuleError("validation_error", detail, **extra)


class Change:
    """The Events one rule writes, saved together and announced once after commit."""

    def __init__(self):
        self.events = []

    def record(
        self,
        task,
        kind,
        *,
        actor="",
        from_status="",
        to_status="",
        from_pod="",
        to_pod="",
        task_key=None,
        **payload,
    ):
        """Record an Event about ``task``; return it.

        ``task`` is a Task, the id of a stored task, or None with ``task_key`` for a task that
        is gone (``deleted``).
        """
        if isinstance(task, str):
            task_key, task = task, None
            task_ref = {"task_id": task_key}
        else:
            task_ref = {"task": task}
        event = Event(
            **task_ref,
            task_key=task_key if task_key is not None else task.pk,
            kind=kind,
            actor=actor or "",
            from_status=from_status,
            to_status=to_status,
            from_pod=from_pod,
            to_pod=to_pod,
            payload=payload,
        )
        self.events.append(event)
        return event

    def add(self, *events):
        """Record Events built elsewhere (saved already, or to save with the others)."""
        self.events.extend(events)

    def save(self):
        unsaved = [e for e in self.events if e.pk is None]
        if len(unsaved) == 1:
            insert_row(unsaved[0])
        elif unsaved:
            Event.objects.bulk_create(unsaved, batch_size=1000)
        # Webhook deliveries commit with the change (the outbox); waiters wake after commit.
        outbox.write_for(self.events)

    def announce_on_commit(self):
        if not self.events:
            return
        events = list(self.events)

        def send():
            from .. import live

            live.publish(events)

        transaction.on_commit(send, robust=True)


def rule(fn):
    """Run ``fn(change, **arguments)`` as one rule (see the module docstring)."""

    @functools.wraps(fn)
    def run(**arguments):
        change = Change()
        with transaction.atomic():
            result = fn(change, **arguments)
            change.save()
            change.announce_on_commit()
        return result

    return run
