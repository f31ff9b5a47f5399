"""The JSON shapes of DESIGN.md: a task, a handoff note, a start context, a completion.

Plain dicts of JSON-ready values, built from models and the rules' results (``workflow``).
"""

from datetime import UTC

from .graph import dependency_states
from .ids import is_rework_id
from .models import Status, Task


def iso(value):
    """Return ``value`` as ``2026-11-20T09:00:00Z`` (UTC), or None."""
    if value is None:
        return None
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


def task_data(task, dependencies=None):
    """Return the task shape. ``dependencies`` is ``[(id, status), …]`` when already known."""
    if dependencies is None:
        dependencies = dependency_states(task.pk)
    return {
        "id": task.id,
        "title": task.title,
        "description": task.description,
        "pod_owner": task.pod_owner.name,
        "status": task.status,
        "task_type": task.task_type,
        "priority": task.priority,
        "handoff_mode": task.handoff_mode,
        "depends_on": [dep_id for dep_id, _ in dependencies],
        "handoff_from": task.handoff_from_id,
        "prompt": task.prompt,
        "inputs": task.inputs,
        "outputs": task.outputs,
        "claimed_by": task.claimed_by,
        "lease_expires_at": iso(task.lease_expires_at),
        "token_count": task.token_count,
        "version": task.version,
        "blocked": any(status != Status.DONE for _, status in dependencies),
        "reasoning_summary": task.reasoning_summary,
        "continuation_of": task.scale_root or None,
        # The holder's open question to a person (``ask``): the task waits on a human.
        "question": task.question or None,
        "waiting_on_human": bool(task.question),
        "created_at": iso(task.created_at),
        "started_at": iso(task.started_at),
        "completed_at": iso(task.completed_at),
    }


def tasks_data(tasks):
    """Return the task shape for many tasks with one query for all their dependencies."""
    tasks = list(tasks)
    through = Task.depends_on.through
    deps = {}
    rows = (
        through.objects.filter(from_task_id__in=[t.pk for t in tasks])
        .order_by("from_task_id", "to_task_id")
        .values_list("from_task_id", "to_task_id", "to_task__status")
    )
    for from_id, to_id, status in rows:
        deps.setdefault(from_id, []).append((to_id, status))
    return [task_data(t, deps.get(t.pk, [])) for t in tasks]


def note_data(note):
    return {
        "from": note.from_task_id,
        "to": note.to_task_id,
        "note": note.note,
        "reason": note.reason,
        "handoff_type": note.handoff_type,
        "mode": note.mode,
        "token_count": note.token_count,
        "author": note.author,
        # Who really wrote it: the pod whose token acted (None for a person or the system).
        "author_pod": note.author_pod or None,
        # Why the mode was resolved so ("auto: chosen by the pod", a WIP figure, …).
        "why": note.why,
        "created_at": iso(note.created_at),
    }


def _linked_outputs(task_id, outputs):
    return [
        {
            "task": task_id,
            "name": output.get("name", ""),
            "uri": output.get("uri", ""),
            "summary": output.get("summary", ""),
        }
        for output in outputs or []
        if isinstance(output, dict)
    ]


def rework_outputs(dependencies):
    """Return ``[(id, outputs)]`` of the rework tasks among ``dependencies`` (``[(id, …)]``),
    oldest first: a task that sent work back starts again with the fixes' outputs linked after
    those of its ``handoff_from``. No query unless a dependency is a rework (``<root>.fix<n>``).
    """
    ids = [dep[0] for dep in dependencies if is_rework_id(dep[0])]
    if not ids:
        return []
    return list(
        Task.objects.filter(pk__in=ids).order_by("created_at", "id").values_list("id", "outputs")
    )


def capacity(task):
    """Return ``{limit, used}``: the pod's context limit and the tokens the task has used."""
    return {"limit": task.pod_owner.context_limit, "used": task.token_count}


def start_context(work):
    """Return everything a pod needs to begin a task, from a ``workflow.StartWork``."""
    dependencies, source = work.dependencies, work.source
    linked = []
    if work.linked is not None:
        for task_id, outputs in work.linked:
            linked += _linked_outputs(task_id, outputs)
    elif source is not None:
        linked = _linked_outputs(source.id, source.outputs)
    for task_id, outputs in rework_outputs(dependencies):
        linked += _linked_outputs(task_id, outputs)
    return {
        "task": task_data(work.task, [(d, s) for d, _, s in dependencies]),
        "prompt": work.task.prompt,
        "inputs": work.task.inputs,
        "handoff_note": note_data(work.note) if work.note else None,
        "reasoning_summary": source.reasoning_summary if source is not None else "",
        "linked_outputs": linked,
        "dependencies": [{"id": d, "title": t, "status": s} for d, t, s in dependencies],
        "chain_of_thought": [
            {"step": step, "thought": thought, "at": iso(at)} for step, thought, at in work.thoughts
        ],
        "trace_steps": [
            {
                "step": step,
                "action": action,
                "rationale": rationale,
                "tokens": tokens,
                "author_pod": author_pod or None,
                "at": iso(at),
            }
            for step, action, rationale, tokens, author_pod, at in work.steps
        ],
        "next_steps": list(work.next_steps),
        "comments": [
            {"kind": kind, "body": body, "author": author, "created_at": iso(at)}
            for kind, body, author, at in work.comments
        ],
        "capacity": capacity(work.task),
    }


def completion(done):
    """Return the ``complete`` answer for a ``workflow.Completion``."""
    return {
        "task": task_data(done.task, done.dependencies),
        "successors": done.successors,
        "next": [start_context(work) for work in done.started],
        "continuation": task_data(done.continuation) if done.continuation else None,
        "repeated": done.repeated,
    }
