"""What the task page shows of human control: the review waiting, the question, comments,
the rework loop and the decisions taken. A fixed number of queries, whatever the history."""

from .models import Comment, Event, EventKind, HandoffNote, Status, Task
from .workflow.control import CHANGES_REQUESTED, submission

REVIEW_HISTORY = 50


def detail_context(task):
    """Return the task page's human-control parts for ``task`` (with ``pod_owner``)."""
    context = {
        "comments": list(Comment.objects.filter(task=task).order_by("created_at", "id")),
        "review_history": list(
            Event.objects.filter(task_key=task.pk, kind=EventKind.REVIEWED).order_by("-id")[
                :REVIEW_HISTORY
            ]
        ),
        "send_back_options": [],
        "submission": {},
        "reworks_sent": [],
        "rework_of": None,
    }
    if task.status == Status.REVIEW:
        context["submission"] = submission(task)
    if task.status in (Status.READY, Status.ACTIVE):
        options = list(
            task.depends_on.filter(status=Status.DONE).order_by("id").values_list("pk", flat=True)
        )
        baton = task.handoff_from if task.handoff_from_id else None
        if baton is not None and baton.status == Status.DONE and baton.pk not in options:
            options.insert(0, baton.pk)
        context["send_back_options"] = options
    # The reworks this task sent back, with the findings it wrote each, oldest first.
    notes = (
        HandoffNote.objects.filter(from_task=task, reason=CHANGES_REQUESTED)
        .exclude(to_task=task)
        .exclude(to_task=None)
        .select_related("to_task__pod_owner")
        .order_by("created_at", "id")
    )
    context["reworks_sent"] = [{"rework": n.to_task, "note": n} for n in notes]
    created = (
        Event.objects.filter(task_key=task.pk, kind=EventKind.CREATED)
        .order_by("id")
        .values_list("payload", flat=True)
        .first()
    )
    if created and created.get("rework_of"):
        ids = [created["rework_of"], created.get("sent_back_by") or ""]
        found = Task.objects.select_related("pod_owner").in_bulk([i for i in ids if i])
        context["rework_of"] = {
            "to": found.get(ids[0]),
            "to_id": ids[0],
            "sender": found.get(ids[1]),
            "sender_id": ids[1],
        }
    return context
