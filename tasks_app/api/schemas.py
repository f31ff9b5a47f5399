"""Request and response schemas of the Pod API.

Requests are validated here, before any workflow call: lengths and integer ranges match the
database columns, and text may not hold NUL bytes or lone surrogates (PostgreSQL refuses both),
so bad input is a 422 with a field path, never a 500. Responses are the plain dicts of
``tasks_app.shapes``; the output schemas below document them for OpenAPI and GPT Actions.
"""

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, Strict, StringConstraints
from pydantic import BaseModel as _BaseModel

from ..models import CREATED_ID_MAX, MAX_STEP, TASK_ID_PATTERN

INT_MAX = 2_147_483_647
JSON_MAX_DEPTH = 20


def _check_text(value):
    if "\x00" in value:
        raise ValueError("text may not contain NUL (\\u0000) characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from None
    return value


def _check_json(value, depth=0):
    """Refuse what a JSON column cannot store: NUL, lone surrogates, NaN/Infinity, deep nests."""
    if depth > JSON_MAX_DEPTH:
        raise ValueError(f"nested deeper than {JSON_MAX_DEPTH} levels")
    if isinstance(value, str):
        _check_text(value)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite (no NaN or Infinity)")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)
    return value


def _aware(value):
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def Text(max_length=None, min_length=0):  # noqa: N802 - reads as a type in annotations
    """Return a ``str`` type limited to ``max_length`` that a database can always store."""
    return Annotated[
        str,
        StringConstraints(max_length=max_length, min_length=min_length),
        AfterValidator(_check_text),
    ]


TaskId = Annotated[str, StringConstraints(pattern=rf"^{TASK_ID_PATTERN}$")]
# A new task's id: the last 8 of 64 characters are kept for derived ids (DESIGN.md, "Ids").
NewTaskId = Annotated[
    str, StringConstraints(pattern=rf"^{TASK_ID_PATTERN}$", max_length=CREATED_ID_MAX)
]
PodName = Text(64, 1)
Instance = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128),
    AfterValidator(_check_text),
    Field(description="The calling pod instance, e.g. DevPod#2.", examples=["DevPod#1"]),
]
# Integers are strict: JSON ``true`` is not 1 and ``2.0`` or ``"2"`` is not 2, so a client's
# type mistake is a 422 rather than a silently different value.
Count = Annotated[int, Strict(), Field(ge=0, le=INT_MAX)]
Step = Annotated[int, Strict(), Field(ge=1, le=MAX_STEP)]
Priority = Annotated[int, Strict(), Field(ge=-INT_MAX - 1, le=INT_MAX)]
JsonObject = Annotated[dict[str, Any], AfterValidator(_check_json)]
Moment = Annotated[datetime, AfterValidator(_aware)]


class Schema(_BaseModel):
    """A request body: unknown fields are refused, so a typo is an error, not a silent no-op."""

    model_config = ConfigDict(extra="forbid")


class Out(_BaseModel):
    """A documented response shape."""


# Requests ------------------------------------------------------------------------------------


class NextIn(Schema):
    pod_owner: PodName = Field(description="The pod to pull work for; must be the token's pod.")
    instance: Instance
    wait: Annotated[float, Strict(), Field(ge=0, le=30)] = Field(
        0,
        description="Long-poll: with nothing to claim, hold the request up to this many seconds "
        "(0-30) until a task becomes claimable; 204 when the wait ends empty.",
    )


class InstanceIn(Schema):
    instance: Instance


class OutputIn(Schema):
    name: Text(300, 1)
    uri: Text(2000) = ""
    summary: Text(10_000) = ""


class TraceStepIn(Schema):
    step: Step | None = Field(
        None, description="Step number, 1 to 1,000,000; defaults to the next one."
    )
    action: Text(10_000) = ""
    rationale: Text(10_000) = ""
    tokens: Count = 0
    at: Moment | None = None


class ThoughtIn(Schema):
    step: Step | None = Field(
        None, description="Step number, 1 to 1,000,000; defaults to the next one."
    )
    thought: Text(20_000, 1)
    at: Moment | None = None


class ReasoningTraceIn(Schema):
    summary: Text(20_000) | None = Field(None, description="Replaces the task's summary.")
    steps: list[TraceStepIn] = Field(default_factory=list, max_length=500)


class CompleteIn(Schema):
    instance: Instance
    outputs: list[OutputIn] | None = Field(None, max_length=200)
    handoff_note: Text(50_000) = ""
    reasoning_trace: ReasoningTraceIn | None = None
    chain_of_thought: list[ThoughtIn] = Field(default_factory=list, max_length=500)
    token_count: Count | None = None
    handoff_to_same_pod: Annotated[bool, Strict()] = Field(
        False, description="True = scale out: a continuation task takes the rest of the work."
    )
    reason: Text(64) = Field("", description="Why: completed (default), capacity_reached, …")
    next_steps: list[Text(2_000, 1)] | None = Field(
        None,
        max_length=50,
        description="Suggested next steps, shown in the successors' start contexts.",
    )
    mode: Literal["sync", "async"] | None = Field(
        None,
        description="For an auto task only: start the successors sync or async, your choice "
        "(the note records it as chosen by the pod).",
    )


class AutoHandoffIn(Schema):
    next_task_id: TaskId
    note: Text(50_000) = ""
    instance: Text(128) = Field("", description="Your instance, written as the note's author.")


class ScaleOutIn(Schema):
    instance: Instance
    reason: Text(64) = ""
    token_count: Count | None = None
    note: Text(50_000) = ""


class TraceIn(Schema):
    instance: Instance
    steps: list[TraceStepIn] = Field(default_factory=list, max_length=500)
    thoughts: list[ThoughtIn] = Field(default_factory=list, max_length=500)
    summary: Text(20_000) | None = None
    token_count: Count | None = None


class TaskIn(Schema):
    id: NewTaskId = Field(description="At most 56 characters: derived ids add a suffix.")
    title: Text(300, 1)
    pod_owner: PodName
    description: Text(50_000) = ""
    task_type: Text(64) = ""
    priority: Priority = 0
    handoff_mode: Literal["sync", "async", "auto"] = "async"
    depends_on: list[TaskId] = Field(default_factory=list, max_length=200)
    handoff_from: TaskId | None = None
    prompt: Text(200_000) = ""
    inputs: JsonObject = Field(default_factory=dict)
    outputs: list[OutputIn] = Field(default_factory=list, max_length=200)


class ReviewIn(Schema):
    verdict: Literal["approve", "changes_requested"] = Field(
        description="approve: done, successors start; changes_requested: back to ready."
    )
    note: Text(20_000) = Field("", description="Why; with changes_requested, what to change.")


class SendBackIn(Schema):
    instance: Instance
    to: TaskId = Field(description="A done dependency of this task, or its handoff_from task.")
    findings: Text(20_000, 1) = Field(description="What is wrong: the rework's instructions.")


class AskIn(Schema):
    instance: Instance
    question: Text(20_000, 1) = Field(description="What you need a person to decide or tell.")


# Responses -----------------------------------------------------------------------------------


class TaskOut(Out):
    id: str
    title: str
    description: str
    pod_owner: str
    status: Literal["ready", "active", "review", "done"]
    task_type: str
    priority: int
    handoff_mode: Literal["sync", "async", "auto"]
    depends_on: list[str]
    handoff_from: str | None
    prompt: str
    inputs: dict[str, Any]
    outputs: list[dict[str, Any]]
    claimed_by: str
    lease_expires_at: str | None
    token_count: int
    version: int
    blocked: bool
    reasoning_summary: str
    continuation_of: str | None = Field(description="The scale-out chain's first task, if any.")
    question: str | None = Field(description="The holder's open question to a person, or null.")
    waiting_on_human: bool = Field(description="True while the open question waits for an answer.")
    created_at: str | None
    started_at: str | None
    completed_at: str | None


class NoteOut(Out):
    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from")
    to: str | None
    note: str
    reason: str
    handoff_type: Literal["normal", "scale"]
    mode: Literal["sync", "async"]
    token_count: int
    author: str = Field(description="Free text the writer chose (an instance or a user name).")
    author_pod: str | None = Field(
        description="The pod whose token wrote the note; null for a person or the system."
    )
    why: str = Field("", description="Why the mode was resolved so, e.g. chosen by the pod.")
    created_at: str | None


class LinkedOutputOut(Out):
    task: str
    name: str
    uri: str
    summary: str


class DependencyOut(Out):
    id: str
    title: str
    status: Literal["ready", "active", "done"]


class TraceStepOut(Out):
    step: int
    action: str
    rationale: str
    tokens: int
    author_pod: str | None = Field(description="The pod whose token appended the step.")
    at: str | None


class ThoughtOut(Out):
    step: int
    thought: str
    at: str | None


class CommentOut(Out):
    kind: Literal["comment", "answer"]
    body: str
    author: str
    created_at: str | None


class CapacityOut(Out):
    limit: int = Field(description="The pod's context limit in tokens.")
    used: int = Field(description="Tokens the task has used so far.")


class CapacityAdviceOut(CapacityOut):
    advice: Literal["scale_out"] | None = Field(
        description="scale_out once used reaches 90% of the limit, else null."
    )


class StartContextOut(Out):
    task: TaskOut
    prompt: str
    inputs: dict[str, Any]
    handoff_note: NoteOut | None
    reasoning_summary: str
    linked_outputs: list[LinkedOutputOut] = Field(
        description="Outputs of the task it follows (of its whole scale-out chain, in order)."
    )
    dependencies: list[DependencyOut]
    chain_of_thought: list[ThoughtOut] = Field(description="The predecessor's last 20 thoughts.")
    trace_steps: list[TraceStepOut] = Field(description="The predecessor's last 20 trace steps.")
    next_steps: list[str] = Field(description="Next steps the predecessor suggested.")
    comments: list[CommentOut] = Field(description="People's comments and answers, oldest first.")
    capacity: CapacityOut


class SuccessorOut(Out):
    id: str
    status: Literal["ready", "active", "review", "done"]
    mode: Literal["sync", "async"]


class CompletionOut(Out):
    task: TaskOut
    successors: list[SuccessorOut]
    next: list[StartContextOut] = Field(description="Start contexts of successors started sync.")
    continuation: TaskOut | None
    repeated: bool = Field(description="True when this answers a repeated completion.")


class ReworkOut(Out):
    task: TaskOut = Field(description="This task, back in ready, now waiting for the rework.")
    rework: TaskOut = Field(description="The rework task <root>.fix<n> for the sent-back pod.")


class HandoffOut(Out):
    task: TaskOut
    mode: Literal["sync", "async"]


class ReasoningTraceOut(Out):
    summary: str
    steps: list[TraceStepOut]


class TraceOut(TaskOut):
    capacity: CapacityAdviceOut


class CommentOut(Out):
    kind: Literal["comment", "question", "answer"]
    body: str
    author: str
    created_at: str | None


class TaskDetailOut(TaskOut):
    handoff_notes: list[NoteOut] = Field(description="Notes this task wrote.")
    received_notes: list[NoteOut] = Field(description="Notes addressed to this task.")
    reasoning_trace: ReasoningTraceOut
    chain_of_thought: list[ThoughtOut]
    comments: list[CommentOut] = Field(description="Questions, answers and comments, oldest first.")


class TaskListOut(Out):
    items: list[TaskOut]
    count: int
    limit: int
    offset: int


class PodOut(Out):
    name: str
    description: str
    order: int
    wip_limit: int | None
    review_required: bool = Field(description="Completed tasks wait in review for a decision.")
    reviewer: str | None = Field(description="The pod whose token may decide its reviews.")
    paused: bool = Field(description="A paused pod's next hands out nothing.")
    context_limit: int = Field(description="Tokens an instance may use before scaling out.")
    webhook_url: str | None = Field(description="Where work notices are POSTed; null if none.")
    ready: int
    active: int
    done: int


class FieldErrorOut(Out):
    field: str
    message: str
    type: str


class ErrorOut(Out):
    code: str = Field(description="Stable: not_found, forbidden_pod, claimed, blocked, …")
    detail: str
    errors: list[FieldErrorOut] | None = None
