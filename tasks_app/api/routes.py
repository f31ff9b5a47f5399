"""The Pod API's routes: validate the body, call ``workflow``, answer with ``shapes``.

Answers are the plain dicts of ``tasks_app.shapes`` serialised directly (the response schemas
document them), so a request pays for no second validation pass.
"""

import json
import os
from typing import Literal

from django.db import transaction
from django.db.models import Count
from django.http import HttpResponse
from django.utils import timezone
from ninja import Path, Query, Router
from pydantic import BaseModel, Field

from .. import workflow
from ..models import TASK_ID_PATTERN, HandoffNote, Pod, PodToken, Task
from ..prepared import prepared
from ..shapes import completion, iso, note_data, start_context, task_data, tasks_data
from ..workflow import RuleError
from ..workflow.control import comment_data
from ..workflow.trace import capacity_advice
from . import schemas as s

router = Router()

ERRORS = {
    400: s.ErrorOut,
    401: s.ErrorOut,
    403: s.ErrorOut,
    404: s.ErrorOut,
    409: s.ErrorOut,
    413: s.ErrorOut,
    422: s.ErrorOut,
}
TaskIdPath = Path(
    ...,
    pattern=rf"^{TASK_ID_PATTERN}$",
    description="The task id, e.g. DEV-101 or DEV-101.2.",
)


def ok(data, status=200):
    return HttpResponse(json.dumps(data), status=status, content_type="application/json")


def _consequential(flag):
    return {"x-openai-isConsequential": flag}


def _actor(token):
    return f"{token.pod.name} token {token.label or token.prefix}"[:150]


def _pod_named(name, token):
    """Return the pod ``name`` when the token may act for it; 422 unknown, 403 another pod."""
    if name == token.pod.name:
        return token.pod
    if not Pod.objects.filter(name=name).exists():
        raise RuleError("validation_error", f"Unknown pod {name!r}.")
    raise RuleError(
        "forbidden_pod", f"This token acts for {token.pod.name}; it cannot pull work for {name}."
    )


@prepared(task=str)
def _owner_of(task):
    return Task.objects.filter(pk=task).order_by().values_list("pod_owner_id", flat=True)[:1]


def _may_act(token, task_id):
    """Refuse a token acting on another pod's task (403) or on no task (404), before any rule
    looks at the task's state."""
    found = _owner_of(task=task_id)
    if not found:
        raise workflow.not_found(task_id)
    pod_id = found[0]
    if pod_id != token.pod_id:
        owner = Pod.objects.filter(pk=pod_id).values_list("name", flat=True).first()
        raise RuleError(
            "forbidden_pod",
            f"Task {task_id} belongs to {owner}; this token acts for {token.pod.name}.",
        )


def _dump_all(items):
    return [item.model_dump() for item in items]


# Pulling and starting work -------------------------------------------------------------------


@router.post(
    "/tasks/next",
    response={200: s.StartContextOut, 204: None, **ERRORS},
    operation_id="nextTask",
    summary="Pull the pod's next task",
    description=(
        "Claim your pod's next task and return its start context. 204 when there is nothing "
        "to do (header PodBoard-Paused or PodBoard-Wip-Limit says why). With wait (0-30 s) it "
        "first holds until a task becomes claimable. Calling again while you hold a task "
        "returns it."
    ),
    openapi_extra=_consequential(False),
)
def next_task(request, payload: s.NextIn):
    pod = _pod_named(payload.pod_owner, request.auth)
    pulled = workflow.pull(pod=pod, instance=payload.instance)
    if pulled.work is None:
        return nothing_to_claim(pulled)
    return ok(start_context(pulled.work))


def nothing_to_claim(pulled):
    """Return the 204 of a ``next`` that claimed nothing; a header says when the pod is paused
    (``PodBoard-Paused: 1``, which wins) or at its WIP limit (``PodBoard-Wip-Limit: <n>``)."""
    response = HttpResponse(status=204)
    if pulled.paused:
        response["PodBoard-Paused"] = "1"
    elif pulled.wip_limit is not None:
        response["PodBoard-Wip-Limit"] = str(pulled.wip_limit)
    return response


@router.post(
    "/tasks/{task_id}/start",
    response={200: s.StartContextOut, **ERRORS},
    operation_id="startTask",
    summary="Start a specific task",
    description=(
        "Claim this task for your instance (if ready and unblocked, or active and unheld) and "
        "return its start context. Repeating it as the holder extends the lease. 409 when "
        "another instance holds it or it is blocked."
    ),
    openapi_extra=_consequential(False),
)
def start_task(request, payload: s.InstanceIn, task_id: str = TaskIdPath):
    _may_act(request.auth, task_id)
    return ok(start_context(workflow.start(task_id=task_id, instance=payload.instance)))


@router.post(
    "/tasks/{task_id}/activate",
    response={200: s.TaskOut, **ERRORS},
    operation_id="activateTask",
    summary="Activate a ready task",
    description=(
        "Move a ready, unblocked task of your pod to active without claiming it; an instance "
        "then starts it. 409 blocked while a dependency is not done."
    ),
    openapi_extra=_consequential(False),
)
def activate_task(request, task_id: str = TaskIdPath):
    token = request.auth
    _may_act(token, task_id)
    task = workflow.activate(task_id=task_id, actor=_actor(token))
    return ok(task_data(task))


@router.post(
    "/tasks/{task_id}/trace",
    response={200: s.TraceOut, **ERRORS},
    operation_id="traceTask",
    summary="Append reasoning and extend the lease",
    description=(
        "Heartbeat while working: append reasoning steps and/or thoughts, optionally set the "
        "summary and token count, and extend your lease on the active task. capacity.advice is "
        "scale_out once token_count reaches 90% of the pod's context limit."
    ),
    openapi_extra=_consequential(False),
)
def trace_task(request, payload: s.TraceIn, task_id: str = TaskIdPath):
    _may_act(request.auth, task_id)
    task = workflow.trace(
        task_id=task_id,
        instance=payload.instance,
        steps=_dump_all(payload.steps),
        thoughts=_dump_all(payload.thoughts),
        summary=payload.summary,
        token_count=payload.token_count,
        author_pod=request.auth.pod.name,
    )
    return ok({**task_data(task), "capacity": capacity_advice(task)})


# Finishing and handing off -------------------------------------------------------------------


@router.post(
    "/tasks/{task_id}/complete",
    response={200: s.CompletionOut, **ERRORS},
    operation_id="completeTask",
    summary="Complete a task and hand off",
    description=(
        "Finish your active task with outputs, a handoff note and your reasoning. Successors "
        "start by the task's handoff mode; sync ones come back in `next`. With "
        "handoff_to_same_pod=true a continuation takes the rest. Repeating it is safe."
    ),
    openapi_extra=_consequential(True),
)
def complete_task(request, payload: s.CompleteIn, task_id: str = TaskIdPath):
    _may_act(request.auth, task_id)
    trace = payload.reasoning_trace
    done = workflow.complete(
        task_id=task_id,
        instance=payload.instance,
        outputs=None if payload.outputs is None else _dump_all(payload.outputs),
        handoff_note=payload.handoff_note,
        reasoning_trace=None
        if trace is None
        else {"summary": trace.summary, "steps": _dump_all(trace.steps)},
        chain_of_thought=_dump_all(payload.chain_of_thought),
        token_count=payload.token_count,
        handoff_to_same_pod=payload.handoff_to_same_pod,
        reason=payload.reason,
        author_pod=request.auth.pod.name,
        next_steps=payload.next_steps,
        mode=payload.mode,
    )
    return ok(completion(done))


@router.post(
    "/tasks/{task_id}/scale_out",
    response={200: s.CompletionOut, **ERRORS},
    operation_id="scaleOutTask",
    summary="Hand the rest of a task to a new instance",
    description=(
        "Mark your active task done and create a continuation (id <root>.<n>) for the next free "
        "instance of the same pod, with a handoff note. Downstream tasks wait for the "
        "continuation."
    ),
    openapi_extra=_consequential(True),
)
def scale_out_task(request, payload: s.ScaleOutIn, task_id: str = TaskIdPath):
    _may_act(request.auth, task_id)
    done = workflow.scale_out(
        task_id=task_id,
        instance=payload.instance,
        reason=payload.reason,
        token_count=payload.token_count,
        note=payload.note,
        author_pod=request.auth.pod.name,
    )
    return ok(completion(done))


@router.post(
    "/tasks/{task_id}/auto_handoff",
    response={200: s.HandoffOut, **ERRORS},
    operation_id="autoHandoffTask",
    summary="Pass this task's baton to another task",
    description=(
        "Make next_task_id carry this task's baton: it depends on this task and gets the note. "
        "If this task is already done, the next task starts now; otherwise when this one "
        "completes."
    ),
    openapi_extra=_consequential(True),
)
def auto_handoff_task(request, payload: s.AutoHandoffIn, task_id: str = TaskIdPath):
    _may_act(request.auth, task_id)
    handoff = workflow.auto_handoff(
        task_id=task_id,
        next_task_id=payload.next_task_id,
        note=payload.note,
        actor=payload.instance or "",
        author_pod=request.auth.pod.name,
    )
    return ok({"task": task_data(handoff.task), "mode": handoff.mode})


# Reading and filing tasks --------------------------------------------------------------------


class TaskFilters(BaseModel):
    pod: s.Text(64) | None = Field(None, description="Only tasks of this pod.")
    status: Literal["ready", "active", "review", "done"] | None = None
    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0, le=s.INT_MAX)


@router.get(
    "/tasks",
    response={200: s.TaskListOut, **ERRORS},
    operation_id="listTasks",
    summary="List tasks",
    description=(
        "List tasks, highest priority first, optionally only one pod's or one status; paginated "
        "with limit (default 50, at most 500) and offset."
    ),
    openapi_extra=_consequential(False),
)
def list_tasks(request, filters: Query[TaskFilters]):
    tasks = Task.objects.select_related("pod_owner")
    if filters.pod:
        tasks = tasks.filter(pod_owner__name=filters.pod)
    if filters.status:
        tasks = tasks.filter(status=filters.status)
    page = tasks[filters.offset : filters.offset + filters.limit]
    return ok(
        {
            "items": tasks_data(page),
            "count": tasks.count(),
            "limit": filters.limit,
            "offset": filters.offset,
        }
    )


@router.get(
    "/tasks/{task_id}",
    response={200: s.TaskDetailOut, **ERRORS},
    operation_id="getTask",
    summary="Get a task with its notes and trace",
    description=(
        "Return one task with the handoff notes it wrote and received, its reasoning trace "
        "and its chain of thought."
    ),
    openapi_extra=_consequential(False),
)
def get_task(request, task_id: str = TaskIdPath):
    task = Task.objects.select_related("pod_owner").filter(pk=task_id).first()
    if task is None:
        raise workflow.not_found(task_id)
    data = task_data(task)
    data["handoff_notes"] = [note_data(n) for n in HandoffNote.objects.filter(from_task=task)]
    data["received_notes"] = [note_data(n) for n in HandoffNote.objects.filter(to_task=task)]
    data["reasoning_trace"] = {
        "summary": task.reasoning_summary,
        "steps": [
            {
                "step": st.step,
                "action": st.action,
                "rationale": st.rationale,
                "tokens": st.tokens,
                "author_pod": st.author_pod or None,
                "at": iso(st.at),
            }
            for st in task.trace_steps.all()
        ],
    }
    data["chain_of_thought"] = [
        {"step": t.step, "thought": t.thought, "at": iso(t.at)} for t in task.thoughts.all()
    ]
    # Questions, answers and comments, oldest first: how a pod that asked reads the answer.
    data["comments"] = [comment_data(c) for c in task.comments.order_by("created_at", "id")]
    return ok(data)


@router.post(
    "/tasks",
    response={201: s.TaskOut, **ERRORS},
    operation_id="createTask",
    summary="File a new task",
    description=(
        "Create a ready task for any pod (e.g. a ProductPod filing DevPod work). 422 for an "
        "unknown pod or dependency, 409 when the id is taken."
    ),
    openapi_extra=_consequential(True),
)
def create_task(request, payload: s.TaskIn):
    pod = Pod.objects.filter(name=payload.pod_owner).first()
    if pod is None:
        raise RuleError("validation_error", f"Unknown pod {payload.pod_owner!r}.")
    fields = payload.model_dump(exclude={"id", "title", "pod_owner", "depends_on", "handoff_from"})
    task = workflow.create_task(
        actor=_actor(request.auth),
        id=payload.id,
        title=payload.title,
        pod_owner=pod,
        depends_on=payload.depends_on,
        handoff_from=payload.handoff_from,
        **fields,
    )
    return ok(task_data(task), status=201)


@router.get(
    "/pods",
    response={200: list[s.PodOut], **ERRORS},
    operation_id="listPods",
    summary="List pods",
    description="List the pods with their WIP limits and how many tasks each has per status.",
    openapi_extra=_consequential(False),
)
def list_pods(request):
    counts = {}
    rows = Task.objects.order_by().values_list("pod_owner_id", "status").annotate(n=Count("pk"))
    for pod_id, status, n in rows:
        counts.setdefault(pod_id, {})[status] = n
    return ok(
        [
            {
                "name": pod.name,
                "description": pod.description,
                "order": pod.order,
                "wip_limit": pod.wip_limit,
                "context_limit": pod.context_limit,
                "webhook_url": pod.webhook_url or None,
                "review_required": pod.review_required,
                "reviewer": pod.reviewer.name if pod.reviewer_id else None,
                "paused": pod.paused,
                "ready": counts.get(pod.pk, {}).get("ready", 0),
                "active": counts.get(pod.pk, {}).get("active", 0),
                "done": counts.get(pod.pk, {}).get("done", 0),
            }
            for pod in Pod.objects.select_related("reviewer")
        ]
    )


# The benchmark's floor -------------------------------------------------------------------------

if os.environ.get("PODBOARD_BENCH_FLOOR") == "1":

    @router.post("/_floor", include_in_schema=False)
    def floor(request):
        """Do the least an authenticated write can: the token lookup and one atomic UPDATE."""
        with transaction.atomic():
            PodToken.objects.filter(pk=request.auth.pk).update(last_used_at=timezone.now())
        return ok({"ok": True})
