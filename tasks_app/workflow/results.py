"""What the rules answer: typed results that carry everything the API's shapes need."""

from dataclasses import dataclass, field

from django.db.models import Case, Q, Value, When

from ..models import Comment, HandoffNote, Task, Thought, TraceStep

# How many of the predecessor's last thoughts and trace steps a start context carries.
CONTEXT_STEPS = 20
# Comment kinds a start context shows: what people wrote (the pod's own questions are left out).
CONTEXT_COMMENT_KINDS = ("comment", "answer")


@dataclass
class StartWork:
    """What a pod needs to begin ``task``: the parts of the start context.

    ``task`` comes with its ``pod_owner``; ``dependencies`` is ``[(id, title, status)]``;
    ``note`` the latest handoff note addressed to the task; ``source`` its ``handoff_from``
    task (at least ``id``, ``outputs`` and ``reasoning_summary``) or None.

    From the predecessor (``source``): ``thoughts`` ``[(step, thought, at)]`` and ``steps``
    ``[(step, action, rationale, tokens, author_pod, at)]``, its last ``CONTEXT_STEPS`` each,
    oldest first; ``next_steps`` what it suggested in ``complete`` (the note's writer's, when
    the task carries no baton). ``comments`` ``[(kind, body, author, created_at)]`` on the task
    itself, oldest first. ``linked`` ``[(task id, outputs)]``: whose outputs are linked, in
    order; a scale-out chain gives every task of it, root first (None: just ``source``'s).
    """

    task: Task
    dependencies: list
    note: HandoffNote | None
    source: Task | None
    thoughts: list = field(default_factory=list)
    steps: list = field(default_factory=list)
    next_steps: list = field(default_factory=list)
    comments: list = field(default_factory=list)
    linked: list | None = None

    @classmethod
    def load(cls, task):
        """Read the parts for ``task`` (with ``pod_owner``) from the database."""
        source = None
        if task.handoff_from_id is not None:
            source = (
                Task.objects.filter(pk=task.handoff_from_id)
                .only("id", "outputs", "reasoning_summary", "next_steps", "scale_root")
                .first()
            )
        note = HandoffNote.objects.filter(to_task_id=task.pk).order_by("-created_at", "-id").first()
        work = cls(
            task=task,
            dependencies=list(task.depends_on.order_by("id").values_list("id", "title", "status")),
            note=note,
            source=source,
            comments=list(
                Comment.objects.filter(task_id=task.pk, kind__in=CONTEXT_COMMENT_KINDS)
                .order_by("created_at", "id")
                .values_list("kind", "body", "author", "created_at")
            ),
        )
        if source is not None:
            work.next_steps = list(source.next_steps or [])
            work.thoughts = _last(
                Thought.objects.filter(task_id=source.pk), "step", "thought", "at"
            )
            work.steps = _last(
                TraceStep.objects.filter(task_id=source.pk),
                "step", "action", "rationale", "tokens", "author_pod", "at",
            )  # fmt: skip
            if source.scale_root:
                root = source.scale_root
                chain = (
                    Task.objects.filter(Q(pk=root) | Q(scale_root=root))
                    .order_by(
                        Case(When(pk=root, then=Value(0)), default=Value(1)), "created_at", "id"
                    )
                    .values_list("id", "outputs")
                )
                work.linked = list(chain)
        elif note is not None and note.from_task_id != task.pk:
            steps = (
                Task.objects.filter(pk=note.from_task_id)
                .values_list("next_steps", flat=True)
                .first()
            )
            work.next_steps = list(steps or [])
        return work


def _last(rows, *fields):
    """Return the last ``CONTEXT_STEPS`` of ``rows`` by step, oldest first, as tuples."""
    last = rows.order_by("-step", "-id").values_list(*fields)[:CONTEXT_STEPS]
    return list(reversed(last))


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


@dataclass
class Pull:
    """The answer of ``next``: the claimed task's ``StartWork``, or why nothing was claimed.

    ``paused``: the pod is paused. ``wip_limit``: the pod's active tasks are at this limit.
    Both unset with no ``work``: there was simply nothing to do.
    """

    work: StartWork | None = None
    paused: bool = False
    wip_limit: int | None = None


@dataclass
class Rework:
    """The answer of ``send_back``: the task sent back to Ready, and the rework it waits for."""

    task: Task
    rework: Task
