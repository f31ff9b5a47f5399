"""The Pod API's human-control routes: review, send back, ask.

Authorisation comes first, before any rule looks at the task's state: a token that may not
act on the task gets 403 even when the task is in the wrong state. ``review`` takes a token of
the task's pod's ``reviewer`` (a pod does not approve its own work); ``send_back`` and ``ask``
a token of the task's pod, as every other action on a task.
"""

from ninja import Router

from .. import workflow
from ..models import Pod, Task
from ..shapes import completion, task_data
from ..workflow import RuleError
from . import schemas as s
from .routes import ERRORS, TaskIdPath, _actor, _consequential, _may_act, ok

router = Router()


def _may_review(token, task_id):
    """Refuse a token that is not the reviewer pod's for the task's pod (403), or no task (404)."""
    row = Task.objects.filter(pk=task_id).values("pod_owner__name", "pod_owner__reviewer_id")
    row = row.first()
    if row is None:
        raise workflow.not_found(task_id)
    if row["pod_owner__reviewer_id"] != token.pod_id:
        reviewer = (
            Pod.objects.filter(pk=row["pod_owner__reviewer_id"]).values_list("name", flat=True)
        ).first()
        who = f"{reviewer}'s token" if reviewer else "a person on the board"
        raise RuleError(
            "forbidden_pod",
            f"Reviews of {row['pod_owner__name']}'s tasks are decided by {who}; this token acts "
            f"for {token.pod.name}.",
        )


@router.post(
    "/tasks/{task_id}/review",
    response={200: s.CompletionOut | s.TaskOut, **ERRORS},
    operation_id="reviewTask",
    summary="Approve a task in review, or request changes",
    description=(
        "For the reviewer pod's token. approve: the task is done and its successors start as if "
        "it had just completed (answers the complete shape). changes_requested: it goes back "
        "to ready for its pod, your note its latest handoff note (answers the task)."
    ),
    openapi_extra=_consequential(True),
)
def review_task(request, payload: s.ReviewIn, task_id: str = TaskIdPath):
    token = request.auth
    _may_review(token, task_id)
    decided = workflow.review(
        task_id=task_id,
        verdict=payload.verdict,
        note=payload.note,
        actor=_actor(token),
        reviewer_pod=token.pod.name,
    )
    if isinstance(decided, workflow.Completion):
        return ok(completion(decided))
    return ok(task_data(decided))


@router.post(
    "/tasks/{task_id}/send_back",
    response={201: s.ReworkOut, **ERRORS},
    operation_id="sendBackTask",
    summary="Send a dependency back for rework",
    description=(
        "As the holder: send `to` (a done dependency, or the task you follow) back with your "
        "findings. A rework task <root>.fix<n> is created for its pod; this task returns to "
        "ready and starts again, with the fix's note and outputs, once the rework is done."
    ),
    openapi_extra=_consequential(True),
)
def send_back_task(request, payload: s.SendBackIn, task_id: str = TaskIdPath):
    _may_act(request.auth, task_id)
    sent = workflow.send_back(
        task_id=task_id,
        instance=payload.instance,
        to=payload.to,
        findings=payload.findings,
        author_pod=request.auth.pod.name,
    )
    return ok({"task": task_data(sent.task), "rework": task_data(sent.rework)}, status=201)


@router.post(
    "/tasks/{task_id}/ask",
    response={200: s.TaskOut, **ERRORS},
    operation_id="askHuman",
    summary="Ask a person a question about your task",
    description=(
        "As the holder: ask a person; the card shows the task waiting on a human and your "
        "lease stops running. The answer arrives in the task's comments (GET the task, or the "
        "next start context). You may still complete; that closes the question."
    ),
    openapi_extra=_consequential(False),
)
def ask_task(request, payload: s.AskIn, task_id: str = TaskIdPath):
    _may_act(request.auth, task_id)
    task = workflow.ask(
        task_id=task_id,
        instance=payload.instance,
        question=payload.question,
        author_pod=request.auth.pod.name,
    )
    return ok(task_data(task))
