"""What the rules answer: typed results that carry everything the API's shapes need."""

from dataclasses import dataclass, field

from ..models import HandoffNote, Task


@dataclass
class StartWork:
    """What a pod needs to begin ``task``: the parts of the start context.

    ``task`` comes with its ``pod_owner``; ``dependencies`` is ``[(id, title, status)]``;
    ``note`` the latest handoff note addressed to the task; ``source`` its ``handoff_from``
    task (at least ``id``, ``outputs`` and ``reasoning_summary``) or None.
    """

    task: Task
    dependencies: list
    note: HandoffNote | None
    source: Task | None

    @classmethod
    def load(cls, task):
        """Read the parts for ``task`` (with ``pod_owner``) from the database."""
        source = None
        if task.handoff_from_id is not None:
            source = (
                Task.objects.filter(pk=task.handoff_from_id)
                .only("id", "outputs", "reasoning_summary")
                .first()
            )
        return cls(
            task=task,
            dependencies=list(task.depends_on.order_by("id").values_list("id", "title", "status")),
            note=HandoffNote.objects.filter(to_task_id=task.pk)
            .order_by("-created_at", "-id")
            .first(),
            source=source,
        )


@dataclass
class Completion:
    """The answer of ``complete`` and ``scale_out``.

    ``dependencies`` is the task's ``[(id, status)]``; ``successors`` ``[{id, status, mode}]``;
    ``started`` the ``StartWork`` of each successor a sync handoff started.
    """

    task: Task
    dependencies: list = field(default_factory=list)
    successors: list = field(default_factory=list)
    started: list = field(default_factory=list)
    continuation: Task | None = None
    repeated: bool = False


@dataclass
class Handoff:
    """The answer of ``auto_handoff``: the task that now carries the baton, and how it starts."""

    task: Task
    mode: str
