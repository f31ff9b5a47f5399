"""Rules 4–7: complete, scale out, auto_handoff — how work passes from one task to the next.

Why one module of this size: complete, scale out and auto_handoff share how successors are
found, how a mode is resolved and how a note is written; together they are rule 4's story.
"""

from django.db.models import F, Q
from django.utils import timezone

from ..graph import Depends, dependency_states, find_cycle, neighbours, waiting_for
from ..ids import carried_over, continuation_id, root_of
from ..models import (
    AutoModeRule,
    Event,
    EventKind,
    HandoffMode,
    HandoffNote,
    HandoffType,
    Status,
    Task,
)
from . import control
from .results import Completion, Handoff, StartWork
from .rows import check_holder, lock, note_from, pod_event, refuse_unless, save, write_note
from .runner import RuleError, invalid
from .trace import append_trace


def complete(change, *, task_id, **completion):
    """Complete an active task and start its successors by its handoff mode (rule 4), or hand
    the rest of the work to another instance of the same pod (rule 5). ``completion``: the
    arguments of ``finish``."""
    return finish(change, lock(task_id), **completion)


def finish(
    change,
    task,
    *,
    instance=None,
    actor="",
    outputs=None,
    handoff_note="",
    reasoning_trace=None,
    chain_of_thought=None,
    token_count=None,
    handoff_to_same_pod=False,
    reason="",
    author_pod="",
    next_steps=None,
    mode=None,
):
    """``complete`` for a task already locked (the move and review rules call it too).

    ``instance`` is the pod instance acting; None when a person (``actor``) completes it.
    ``author_pod`` is the pod whose token acts, recorded on the notes and trace steps.
    ``next_steps`` (strings) reach the successors' start contexts; ``mode`` (sync/async) is the
    pod's own choice for an ``auto`` task, instead of the auto rules.
    """
    author = instance or actor
    if task.status == Status.DONE:
        return _repeated_completion(task, instance)
    if task.status == Status.REVIEW:
        return _repeated_submission(task, instance)
    if task.status != Status.ACTIVE:
        raise RuleError(
            "invalid_transition",
            f"Task {task.pk} is {task.status}; start or activate it before completing it.",
            task_status=task.status,
        )
    check_holder(task, instance, verb="complete")
    if mode and task.handoff_mode != HandoffMode.AUTO:
        raise invalid(
            f"mode is the pod's choice for an auto task only; {task.pk}'s handoff mode is "
            f"{task.handoff_mode}.",
            handoff_mode=task.handoff_mode,
        )
    now = timezone.now()
    if outputs is not None:
        task.outputs = outputs
    if next_steps is not None:
        task.next_steps = list(next_steps)
    if token_count is not None:
        task.token_count = token_count
    reasoning_trace = reasoning_trace or {}
    if reasoning_trace.get("summary") is not None:
        task.reasoning_summary = reasoning_trace["summary"]
    append_trace(task, now, reasoning_trace.get("steps"), chain_of_thought, author_pod=author_pod)
    # A scale-out is not reviewed: its continuation is, when it completes.
    into_review = task.pod_owner.review_required and not handoff_to_same_pod
    holder = task.claimed_by or instance or ""
    question = control.close_question(task)  # finishing closes it unanswered
    if into_review:
        task.status, task.completed_at, task.claimed_by = Status.REVIEW, None, ""
    else:
        task.status, task.completed_at, task.claimed_by = Status.DONE, now, holder
    task.lease_expires_at = None
    save(
        task,
        now,
        "outputs",
        "token_count",
        "reasoning_summary",
        "status",
        "completed_at",
        "lease_expires_at",
        "claimed_by",
        "next_steps",
        "question",
        "asked_at",
    )
    dependencies, following = neighbours(task.pk)
    closed = {"question_closed": question} if question else {}
    if into_review:
        return control.submit(
            change,
            task,
            now,
            instance=holder,
            author=author,
            note=handoff_note,
            reason=reason or "completed",
            author_pod=author_pod,
            dependencies=dependencies,
            chosen_mode=mode,
            **closed,
        )
    if handoff_to_same_pod:
        continuation = _continue(
            change,
            task,
            now,
            author=author,
            reason=reason or "capacity_reached",
            note=handoff_note,
            author_pod=author_pod,
        )
        return Completion(task=task, dependencies=dependencies, continuation=continuation)
    successors, started = _hand_off(
        change,
        task,
        following,
        now,
        author=author,
        note=handoff_note,
        reason=reason or "completed",
        author_pod=author_pod,
        chosen=mode,
    )
    pod_event(
        change,
        task,
        EventKind.COMPLETED,
        actor=author,
        from_status=Status.ACTIVE,
        successors=successors,
        continuation=None,
        instance=instance or "",
        **closed,
    )
    return Completion(
        task=task,
        dependencies=dependencies,
        successors=successors,
        started=[StartWork.load(s) for s in started],
    )


def _repeated_submission(task, instance):
    """Answer a repeated completion of a task waiting in Review by the instance that completed
    it (entering Review cleared its holder), changing nothing."""
    if not instance or control.submission(task).get("instance") != instance:
        raise RuleError(
            "invalid_transition",
            f"Task {task.pk} is in review; a person or its reviewer decides it now.",
            task_status=task.status,
        )
    return Completion(
        task=task,
        dependencies=dependency_states(task.pk),
        repeated=True,
    )


def _repeated_completion(task, instance):
    """Answer a repeated completion by the instance that completed the task, changing nothing."""
    if not instance or task.claimed_by != instance:
        raise RuleError(
            "invalid_transition", f"Task {task.pk} is already done.", task_status="done"
        )
    event = (
        Event.objects.filter(task=task, kind__in=[EventKind.COMPLETED, EventKind.SCALED_OUT])
        .order_by("-id")
        .first()
    )
    payload = event.payload if event else {}
    successors = payload.get("successors", [])
    continuation = None
    if payload.get("continuation"):
        continuation = (
            Task.objects.select_related("pod_owner").filter(pk=payload["continuation"]).first()
        )
    started_ids = [
        s["id"] for s in successors if s.get("mode") == "sync" and s.get("status") == Status.ACTIVE
    ]
    started = Task.objects.select_related("pod_owner").in_bulk(started_ids)
    return Completion(
        task=task,
        dependencies=dependency_states(task.pk),
        successors=successors,
        started=[StartWork.load(started[pk]) for pk in started_ids if pk in started],
        continuation=continuation,
        repeated=True,
    )


CHOSEN_BY_POD = "auto: chosen by the pod"


def resolve_mode(task, successor, wip_cache, chosen=None):
    """Return ``(mode, why)`` for starting ``successor`` after ``task``.

    ``chosen`` is the completing pod's own choice (sync/async) for an ``auto`` task.
    """
    if task.handoff_mode != HandoffMode.AUTO:
        return task.handoff_mode, task.handoff_mode
    if chosen:
        return chosen, CHOSEN_BY_POD
    rule_for_type = (
        AutoModeRule.objects.filter(task_type=successor.task_type).first()
        if successor.task_type
        else None
    )
    if rule_for_type is not None:
        return rule_for_type.mode, f"auto: rule for task type {successor.task_type!r}"
    pod = successor.pod_owner
    if pod.wip_limit is None:
        return HandoffMode.SYNC, f"auto: {pod.name} has no WIP limit"
    if pod.pk not in wip_cache:
        wip_cache[pod.pk] = Task.objects.filter(pod_owner=pod, status=Status.ACTIVE).count()
    used = f"({wip_cache[pod.pk]}/{pod.wip_limit})"
    if wip_cache[pod.pk] < pod.wip_limit:
        return HandoffMode.SYNC, f"auto: {pod.name} under its WIP limit {used}"
    return HandoffMode.ASYNC, f"auto: {pod.name} at its WIP limit {used}"


def _plain_mode(task):
    return HandoffMode.SYNC if task.handoff_mode == HandoffMode.SYNC else HandoffMode.ASYNC


def _hand_off(change, task, ids, now, *, author, note, reason, author_pod="", chosen=None):
    """Write notes to ``task``'s ready successors (``ids``: all its successors) and start the
    unblocked ones (rule 4).

    Return ``(answer, started)``: ``[{id, status, mode}]`` and the successors started now.
    """
    successors = []
    if ids:
        successors = list(
            Task.objects.select_for_update(of=("self",))
            .select_related("pod_owner")
            .filter(pk__in=ids, status=Status.READY)
            .order_by("-priority", "created_at", "id")
        )
    if not successors:
        if note:
            write_note(
                task,
                None,
                note,
                now,
                reason=reason,
                mode=_plain_mode(task),
                author=author,
                author_pod=author_pod,
            )
        return [], []
    still_blocked = waiting_for([s.pk for s in successors])
    wip_cache, answer, started, notes = {}, [], [], []
    for successor in successors:
        mode, why = resolve_mode(task, successor, wip_cache, chosen)
        mode, why, remark = control.paused_mode(successor, mode, why)
        notes.append(
            note_from(
                task,
                successor,
                f"{note.rstrip()}\n\n{remark}" if note and remark else note or remark,
                now,
                reason=reason,
                mode=mode,
                why=why,
                author=author,
                author_pod=author_pod,
            )
        )
        blocked = successor.pk in still_blocked
        if not blocked and mode == HandoffMode.SYNC:
            _reserve(successor, now)
            wip_cache[successor.pod_owner_id] = wip_cache.get(successor.pod_owner_id, 0) + 1
            started.append(successor)
        answer.append({"id": successor.pk, "status": successor.status, "mode": mode})
        pod_event(
            change,
            successor,
            EventKind.HANDOFF,
            actor=author,
            from_status=Status.READY,
            handoff_from=task.pk,
            mode=mode,
            why=why,
            blocked=blocked,
        )
    HandoffNote.objects.bulk_create(notes)
    # A successor left waiting in Ready now shows one blocker fewer: a new version lets open
    # boards take its card (a reserved one got its version from ``_reserve``).
    waiting = [s.pk for s in successors if s not in started]
    if waiting:
        Task.objects.filter(pk__in=waiting).update(version=F("version") + 1, updated_at=now)
    return answer, started


def _reserve(successor, now):
    """Make ``successor`` active for its pod, held by no instance yet (a sync handoff)."""
    successor.status, successor.started_at = Status.ACTIVE, successor.started_at or now
    successor.claimed_by, successor.lease_expires_at = "", None
    save(successor, now, "status", "started_at", "claimed_by", "lease_expires_at")


def _continue(change, task, now, *, author, reason, note, author_pod=""):
    """Hand the remaining work of ``task`` (already done) to a continuation (rule 5)."""
    # The chain's first task, and the root its id is built on (``DEV-1`` for ``DEV-1.fix1``
    # too, so a derived id never grows past 64 characters).
    chain, root = task.scale_root or task.pk, root_of(task.pk, task.scale_root)
    taken = Task.objects.filter(
        Q(scale_root=chain) | Q(pk=root) | Q(pk__startswith=root + ".")
    ).values_list("pk", flat=True)
    new_id = continuation_id(root, taken)
    continuation = Task.objects.create(
        id=new_id,
        **carried_over(task),
        status=Status.READY,
        outputs=[],
        handoff_from=task,
        scale_root=chain,
        position=task.position,
        created_at=now,
    )
    write_note(
        task,
        continuation,
        note or "",
        now,
        reason=reason,
        handoff_type=HandoffType.SCALE,
        author=author,
        author_pod=author_pod,
    )
    # Successors now wait for the continuation, so nothing downstream starts on half-done work.
    waiting = list(
        Depends.objects.filter(to_task_id=task.pk)
        .exclude(from_task__status=Status.DONE)
        .values_list("from_task_id", flat=True)
    )
    Depends.objects.filter(to_task_id=task.pk, from_task_id__in=waiting).update(to_task_id=new_id)
    batons = list(
        Task.objects.filter(handoff_from=task)
        .exclude(status=Status.DONE)
        .exclude(pk=new_id)
        .values_list("pk", flat=True)
    )
    Task.objects.filter(pk__in=batons).update(handoff_from_id=new_id)
    moved = sorted(set(waiting) | set(batons))
    Task.objects.filter(pk__in=moved).update(version=F("version") + 1, updated_at=now)
    pod_event(
        change,
        task,
        EventKind.SCALED_OUT,
        actor=author,
        from_status=Status.ACTIVE,
        continuation=new_id,
        reason=reason,
        token_count=task.token_count or 0,
        successors=[],
        moved_successors=moved,
    )
    change.record(
        continuation,
        EventKind.CREATED,
        actor=author,
        to_status=Status.READY,
        to_pod=task.pod_owner.name,
        continuation_of=task.pk,
        reason=reason,
    )
    for successor_id in moved:
        change.record(
            successor_id,
            EventKind.EDITED,
            actor=author,
            waits_for=new_id,
            instead_of=task.pk,
        )
    return continuation


def scale_out(
    change,
    *,
    task_id,
    instance=None,
    actor="",
    reason="",
    token_count=None,
    note="",
    author_pod="",
):
    """Hand an active task's remaining work to a new instance of its pod (rule 7).

    ``instance`` is the pod instance acting; None when a person (``actor``) asks.
    """
    task = lock(task_id)
    refuse_unless(task, Status.ACTIVE, doing="only an active task scales out")
    check_holder(task, instance, verb="scale out")
    now = timezone.now()
    if token_count is not None:
        task.token_count = token_count
    task.status, task.completed_at, task.lease_expires_at = Status.DONE, now, None
    task.claimed_by = task.claimed_by or instance or ""
    control.close_question(task)
    save(
        task,
        now,
        "token_count",
        "status",
        "completed_at",
        "lease_expires_at",
        "claimed_by",
        "question",
        "asked_at",
    )
    continuation = _continue(
        change,
        task,
        now,
        author=instance or actor,
        reason=reason or "load_balancing",
        note=note,
        author_pod=author_pod,
    )
    return Completion(
        task=task,
        dependencies=dependency_states(task.pk),
        continuation=continuation,
    )


def auto_handoff(change, *, task_id, next_task_id, note="", actor="", author_pod=""):
    """Make ``next_task_id`` carry ``task_id``'s baton; start it now if ``task_id`` is done
    (rule 6). The next task must be ready and carry no other task's baton."""
    if task_id == next_task_id:
        raise invalid("A task cannot hand off to itself.")
    task = lock(task_id)
    successor = lock(next_task_id)
    if successor.status != Status.READY:
        raise RuleError(
            "invalid_transition",
            f"Task {successor.pk} is {successor.status}; a baton goes only to a ready task.",
            task_status=successor.status,
        )
    if successor.handoff_from_id not in (None, task.pk):
        raise RuleError(
            "conflict",
            f"Task {successor.pk} already carries {successor.handoff_from_id}'s baton.",
            handoff_from=successor.handoff_from_id,
        )
    path = find_cycle(successor.pk, [task.pk])
    if path:
        raise invalid(
            f"{successor.pk} cannot depend on {path[1]}: that makes a cycle ({' → '.join(path)})."
        )
    now = timezone.now()
    successor.handoff_from = task
    successor.depends_on.add(task)
    save(successor, now, "handoff_from_id")
    mode, why = resolve_mode(task, successor, {})
    paused = successor.pod_owner.paused
    if task.status == Status.DONE and not successor.blocking_ids():
        # The seed's push model: the successor starts now, whatever the mode says (unless its
        # pod is paused: then it waits in Ready).
        mode, why = HandoffMode.SYNC, f"{task.pk} is already done: starts now"
        mode, why, remark = control.paused_mode(successor, mode, why)
        if not paused:
            _reserve(successor, now)
    elif paused:
        mode, why, _remark = control.paused_mode(successor, mode, why)
    author = actor or task.claimed_by
    write_note(
        task,
        successor,
        note or "",
        now,
        reason="handoff",
        mode=mode,
        why=why,
        author=author,
        author_pod=author_pod,
    )
    pod_event(
        change,
        successor,
        EventKind.HANDOFF,
        actor=author,
        from_status=Status.READY,
        handoff_from=task.pk,
        mode=mode,
        why=why,
        linked=True,
    )
    return Handoff(task=successor, mode=mode)
