"""Reasoning traces: numbered steps and thoughts appended to a task, and the heartbeat rule."""

from django.utils import timezone

from ..models import MAX_STEP, EventKind, Status, Thought, TraceStep
from .rows import check_holder, extend_lease, lease_until, lock, refuse_unless, save
from .runner import invalid


def _append_numbered(model, task, items, build):
    """Append ``items`` to ``task``'s rows of ``model``, numbering any without a ``step``
    after the last one; ``build(item)`` gives the row's other fields."""
    last = (
        model.objects.filter(task=task).order_by("-step").values_list("step", flat=True).first()
        or 0
    )
    rows = []
    for item in items:
        last = item.get("step") or last + 1
        if not 1 <= last <= MAX_STEP:
            raise invalid(
                f"Step {last} of task {task.pk} is out of range: steps are numbered 1 to "
                f"{MAX_STEP:,}.",
                step=last,
            )
        rows.append(model(task=task, step=last, **build(item)))
    model.objects.bulk_create(rows)


# A trace at this share of the pod's context limit is advised to scale out (DESIGN.md).
ADVICE_AT = 0.9


def capacity_advice(task):
    """Return ``{limit, used, advice}`` for ``task`` (with its pod): ``advice`` is
    ``"scale_out"`` once its tokens reach ``ADVICE_AT`` of the pod's ``context_limit``."""
    limit, used = task.pod_owner.context_limit, task.token_count
    advice = "scale_out" if limit and used >= ADVICE_AT * limit else None
    return {"limit": limit, "used": used, "advice": advice}


def append_trace(task, now, steps=None, thoughts=None, *, author_pod=""):
    if steps:
        _append_numbered(
            TraceStep,
            task,
            steps,
            lambda item: {
                "action": item.get("action") or "",
                "rationale": item.get("rationale") or "",
                "tokens": item.get("tokens") or 0,
                "at": item.get("at") or now,
                "author_pod": author_pod,
            },
        )
    if thoughts:
        _append_numbered(
            Thought,
            task,
            thoughts,
            lambda item: {"thought": item.get("thought") or "", "at": item.get("at") or now},
        )


def trace(
    change,
    *,
    task_id,
    instance,
    steps=(),
    thoughts=(),
    summary=None,
    token_count=None,
    author_pod="",
):
    """Append reasoning steps or thoughts to an active task and extend the holder's lease."""
    task = lock(task_id)
    refuse_unless(task, Status.ACTIVE, doing="traces go on active tasks")
    check_holder(task, instance, verb="trace")
    now = timezone.now()
    append_trace(task, now, steps, thoughts, author_pod=author_pod)
    if not (steps or thoughts or summary is not None or token_count is not None):
        if task.claimed_by:
            extend_lease(task, now)
        return task
    fields = []
    if task.claimed_by:
        task.lease_expires_at = lease_until(now)
        fields.append("lease_expires_at")
    if summary is not None:
        task.reasoning_summary = summary
        fields.append("reasoning_summary")
    if token_count is not None:
        task.token_count = token_count
        fields.append("token_count")
    # The card shows the token count and the lease: a new version lets boards take it.
    save(task, now, *fields)
    change.record(
        task,
        EventKind.TRACED,
        actor=instance,
        steps=len(steps or ()),
        thoughts=len(thoughts or ()),
        token_count=task.token_count,
    )
    return task
