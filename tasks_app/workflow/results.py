"""What the rules answer: typed results that carry everything the API's shapes need."""

from dataclasses import dataclass, field

from django.db.models import Case, Q, Value, When

from ..models import Comment, HandoffNote, Task, Thought, TraceStep
from ..prepared import prepared

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
            source = next(iter(_source(task=task.handoff_from_id)), None)
        note = next(iter(_latest_note(task=task.pk)), None)
        work = cls(
            task=task,
            dependencies=_dependencies(task=task.pk),
            note=note,
            source=source,
            comments=_comments(task=task.pk),
        )
        if source is not None:
            work.next_steps = list(source.next_steps or [])
            work.thoughts = _last_thoughts(task=source.pk)[::-1]
            work.steps = _last_steps(task=source.pk)[::-1]
            if source.scale_root:
                work.linked = _chain(root=source.scale_root)
        elif note is not None and note.from_task_id != task.pk:
            steps = _next_steps(task=note.from_task_id)
            work.next_steps = list(steps[0] if steps and steps[0] else [])
        return work


# The start context's queries, ``prepared``: the API runs them on every claim.


@prepared(task=str)
def _source(task):
    return Task.objects.filter(pk=task).only(
        "id", "outputs", "reasoning_summary", "next_steps", "scale_root"
    )[:1]


@prepared(task=str)
def _latest_note(task):
    return HandoffNote.objects.filter(to_task_id=task).order_by("-created_at", "-id")[:1]


@prepared(task=str)
def _dependencies(task):
    return (
        Task.objects.filter(dependents__pk=task).order_by("id").values_list("id", "title", "status")
    )


@prepared(task=str)
def _comments(task):
    return (
        Comment.objects.filter(task_id=task, kind__in=CONTEXT_COMMENT_KINDS)
        .order_by("created_at", "id")
        .values_list("kind", "body", "author", "created_at")
    )


@prepared(task=str)
def _last_thoughts(task):
    """The last ``CONTEXT_STEPS`` thoughts, newest first."""
    rows = Thought.objects.filter(task_id=task).order_by("-step", "-id")
    return rows.values_list("step", "thought", "at")[:CONTEXT_STEPS]


@prepared(task=str)
def _last_steps(task):
    """The last ``CONTEXT_STEPS`` trace steps, newest first."""
    rows = TraceStep.objects.filter(task_id=task).order_by("-step", "-id")
    fields = ("step", "action", "rationale", "tokens", "author_pod", "at")
    return rows.values_list(*fields)[:CONTEXT_STEPS]


@prepared(root=str)
def _chain(root):
    """Every task of the scale-out chain from ``root``, root first."""
    return (
        Task.objects.filter(Q(pk=root) | Q(scale_root=root))
        .order_by(Case(When(pk=root, then=Value(0)), default=Value(1)), "created_at", "id")
        .values_list("id", "outputs")
    )


@prepared(task=str)
def _next_steps(task):
    return Task.objects.filter(pk=task).values_list("next_steps", flat=True)[:1]


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
