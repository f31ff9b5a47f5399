"""Human control: the review gate, rework, questions to people, comments, pausing a pod.

- ``submit`` (called by ``handoff.finish``): a completed task of a pod with
  ``review_required`` waits in Review, held by nobody; its successors keep waiting.
- ``review``: a person or the reviewer pod decides. Approve → done, and rule 4 runs as if the
  task had just completed, with the completion's handoff note; changes requested → ready for
  the same pod, the reviewer's note (reason ``changes_requested``) its latest note.
- ``send_back``: the holder of a task sends a done dependency (or its baton giver) back for
  rework: a new task ``<root>.fix<n>`` for that task's pod, which the sender now waits for.
- ``ask`` / ``answer``: the holder asks a person; the lease stops running until the answer
  (or the holder's completion, which closes the question unanswered).
- ``comment``: a person's remark on any task; comments and answers reach the start context.
- ``pause`` / ``resume``: a paused pod's ``next`` hands out nothing (``claims``), and sync
  handoffs to it resolve as async (``paused_mode``).

People act with ``instance=None`` (the board, the detail page, the admin); pods with their
instance name. Who may act at all is decided at the edge (API token, board permission).

Why one module of this size: every human control is a short rule; they share the review and
rework bookkeeping, and one place to read them all is what a person changing them needs.
"""

from django.db import IntegrityError, transaction
from django.utils import timezone

from ..graph import dependency_states, successor_ids
from ..ids import rework_id as next_rework_id
from ..ids import root_of
from ..models import (
    Comment,
    Event,
    EventKind,
    HandoffMode,
    Pod,
    Status,
    Task,
)
from ..shapes import iso
from .results import Completion, Rework, StartWork
from .rows import (
    check_holder,
    lease_until,
    lock,
    pod_event,
    refuse_unless,
    release,
    save,
    write_note,
)
from .runner import RuleError, invalid

CHANGES_REQUESTED = "changes_requested"
APPROVE = "approve"
VERDICTS = (APPROVE, CHANGES_REQUESTED)
# Bounds on what people and pods write here (the API's schemas say the same).
MAX_TEXT = 20_000


def _text(value, what):
    """Return ``value`` when it has something besides white space; refuse it otherwise."""
    value = value or ""
    if not value.strip():
        raise invalid(f"{what} is required and must not be empty.")
    if len(value) > MAX_TEXT:
        raise invalid(f"{what} is {len(value):,} characters long; the limit is {MAX_TEXT:,}.")
    if "\x00" in value:
        raise invalid(f"{what} contains a NUL character.")
    return value


# Review --------------------------------------------------------------------------------------


def submit(change, task, now, *, instance, author, note, reason, author_pod, dependencies, **more):
    """Put a completed ``task`` (already saved as ``review``) in front of its reviewers.

    The completion's note, reason and author travel in the ``submitted`` Event: an approval
    hands them to the successors as if the task had completed then (``more``: anything else
    the completion decided, such as a mode the pod chose).
    """
    pod_event(
        change,
        task,
        EventKind.SUBMITTED,
        actor=author,
        from_status=Status.ACTIVE,
        instance=instance or "",
        note=note or "",
        reason=reason,
        author=author,
        author_pod=author_pod,
        **more,
    )
    return Completion(task=task, dependencies=dependencies, successors=[], started=[])


def submission(task):
    """Return the payload of ``task``'s latest ``submitted`` Event (``{}`` when none)."""
    event = (
        Event.objects.filter(task_key=task.pk, kind=EventKind.SUBMITTED)
        .order_by("-id")
        .values_list("payload", flat=True)
        .first()
    )
    return event or {}


def _refuse_decided(task):
    """Refuse a review of a task that is not in Review: ``conflict`` when its latest
    submission was decided meanwhile (somebody else won), ``invalid_transition`` otherwise."""
    last = (
        Event.objects.filter(task_key=task.pk, kind__in=[EventKind.SUBMITTED, EventKind.REVIEWED])
        .order_by("-id")
        .values("kind", "actor", "payload")
        .first()
    )
    if last and last["kind"] == EventKind.REVIEWED:
        verdict = (last["payload"] or {}).get("verdict", "decided")
        raise RuleError(
            "conflict",
            f"Task {task.pk} was already reviewed by {last['actor'] or 'someone'} "
            f"({verdict.replace('_', ' ')}); it is {task.status} now.",
            task_status=task.status,
            version=task.version,
        )
    raise RuleError(
        "invalid_transition",
        f"Task {task.pk} is {task.status}; only a task in review can be reviewed.",
        task_status=task.status,
    )


def review(
    change,
    *,
    task_id,
    verdict,
    note="",
    actor="",
    reviewer_pod="",
    version=None,
    handoff_note=None,
):
    """Decide a task in Review: ``approve`` (→ done, rule 4) or ``changes_requested``.

    Answers a ``Completion`` for an approval, the task when changes are requested. ``version``: the
    version the person saw (stale → ``conflict``). ``handoff_note``: the completion's note as
    a person edited it before approving (None keeps the pod's).
    """
    if verdict not in VERDICTS:
        raise invalid(f"Unknown verdict {verdict!r}: use approve or changes_requested.")
    if len(note or "") > MAX_TEXT:
        raise invalid(f"The note is longer than {MAX_TEXT:,} characters.")
    task = lock(task_id)
    _check_version(task, version)
    return decide(
        change,
        task,
        verdict,
        note=note,
        actor=actor,
        reviewer_pod=reviewer_pod,
        handoff_note=handoff_note,
    )


def decide(change, task, verdict, *, note="", actor="", reviewer_pod="", handoff_note=None):
    """``review`` for a task already locked (the move rule calls it too)."""
    if task.status != Status.REVIEW:
        _refuse_decided(task)
    if verdict == APPROVE:
        return _approve(change, task, actor, reviewer_pod, note or "", handoff_note)
    return _request_changes(change, task, actor, reviewer_pod, note or "")


def _approve(change, task, actor, reviewer_pod, note, handoff_note):
    from .handoff import _hand_off

    submitted = submission(task)
    now = timezone.now()
    task.status, task.completed_at = Status.DONE, now
    # The card and a repeated completion name the instance that did the work.
    task.claimed_by, task.lease_expires_at = submitted.get("instance", ""), None
    save(task, now, "status", "completed_at", "claimed_by", "lease_expires_at")
    pod_event(
        change,
        task,
        EventKind.REVIEWED,
        actor=actor,
        from_status=Status.REVIEW,
        verdict=APPROVE,
        note=note,
        reviewer_pod=reviewer_pod,
        edited_note=handoff_note is not None and handoff_note != submitted.get("note", ""),
    )
    author, author_pod = submitted.get("author", ""), submitted.get("author_pod", "")
    text = submitted.get("note", "")
    if handoff_note is not None and handoff_note != text:
        # A person rewrote the note before approving: it is theirs now.
        text, author, author_pod = handoff_note, actor, ""
    successors, started = _hand_off(
        change,
        task,
        successor_ids(task.pk),
        now,
        author=author,
        note=text,
        reason=submitted.get("reason") or "completed",
        author_pod=author_pod,
        chosen=submitted.get("chosen_mode"),
    )
    pod_event(
        change,
        task,
        EventKind.COMPLETED,
        actor=actor,
        from_status=Status.REVIEW,
        successors=successors,
        continuation=None,
        instance=submitted.get("instance", ""),
        approved_by=actor,
    )
    return Completion(
        task=task,
        dependencies=dependency_states(task.pk),
        successors=successors,
        started=[StartWork.load(s) for s in started],
    )


def _request_changes(change, task, actor, reviewer_pod, note):
    now = timezone.now()
    text = note.strip() and note or f"Changes requested by {actor or 'a reviewer'}."
    release(task, now)
    write_note(
        task, task, text, now, reason=CHANGES_REQUESTED, author=actor, author_pod=reviewer_pod
    )
    pod_event(
        change,
        task,
        EventKind.REVIEWED,
        actor=actor,
        from_status=Status.REVIEW,
        verdict=CHANGES_REQUESTED,
        note=text,
        reviewer_pod=reviewer_pod,
    )
    return task


def may_review(pod, reviewer_pod):
    """Return True when a token of ``reviewer_pod`` may decide reviews of ``pod``'s tasks."""
    return pod.reviewer_id is not None and pod.reviewer_id == reviewer_pod.pk


# Send back -----------------------------------------------------------------------------------


def _check_asking_holder(task, instance, verb):
    """Refuse a pod ``instance`` acting on a task it does not hold (reserved or another's)."""
    if instance is None:
        return
    if not task.claimed_by:
        raise RuleError(
            "invalid_transition",
            f"Task {task.pk} is reserved for {task.pod_owner.name} but nobody holds it; "
            f"start it before you {verb}.",
            task_status=task.status,
        )
    check_holder(task, instance, verb=verb)


def _check_version(task, version):
    if version is not None and int(version) != task.version:
        raise RuleError(
            "conflict",
            f"Task {task.pk} changed since you loaded it (version {version}, now {task.version}).",
            version=task.version,
            task_status=task.status,
        )


def send_back(
    change, *, task_id, to, findings, instance=None, actor="", author_pod="", version=None
):
    """Send ``to`` (a done dependency of ``task_id`` or its baton giver) back for rework.

    Creates the rework task ``<root>.fix<n>`` for ``to``'s pod with the findings, makes
    ``task_id`` wait for it and returns ``task_id`` to Ready. ``instance`` must hold the task;
    None is a person, who may send back any ready or active task (``version``: the one the
    person saw; stale → ``conflict``).
    """
    findings = _text(findings, "Findings")
    if not to:
        raise invalid("Name the task to send back (to).")
    task = lock(task_id)
    _check_version(task, version)
    if instance is None:
        refuse_unless(task, Status.READY, Status.ACTIVE, doing="only open work is sent back")
    else:
        refuse_unless(task, Status.ACTIVE, doing="only its holder sends work back")
        _check_asking_holder(task, instance, "send work back")
    target = Task.objects.select_related("pod_owner").filter(pk=to).first()
    if target is None:
        raise invalid(f"No task with id {to!r} to send back to.")
    if target.pk != task.handoff_from_id and not task.depends_on.filter(pk=target.pk).exists():
        raise RuleError(
            "invalid_transition",
            f"{target.pk} is neither a dependency of {task.pk} nor its baton giver: work goes "
            "back only to where it came from.",
            to=target.pk,
        )
    if target.status != Status.DONE:
        raise RuleError(
            "invalid_transition",
            f"{target.pk} is {target.status}; only done work is sent back.",
            to=target.pk,
            task_status=target.status,
        )
    now = timezone.now()
    author = instance or actor
    rework = _create_rework(task, target, findings, now)
    write_note(
        task, rework, findings, now, reason=CHANGES_REQUESTED, author=author, author_pod=author_pod
    )
    task.depends_on.add(rework)
    from_status = task.status
    task.question, task.asked_at = "", None
    task.status, task.claimed_by, task.lease_expires_at = Status.READY, "", None
    save(task, now, "status", "claimed_by", "lease_expires_at", "question", "asked_at")
    pod_event(
        change,
        task,
        EventKind.SENT_BACK,
        actor=author,
        from_status=from_status,
        to=target.pk,
        rework=rework.pk,
        findings=findings,
    )
    change.record(
        rework,
        EventKind.CREATED,
        actor=author,
        to_status=Status.READY,
        to_pod=rework.pod_owner.name,
        rework_of=target.pk,
        sent_back_by=task.pk,
    )
    return Rework(task=task, rework=rework)


def _create_rework(task, target, findings, now):
    """Create the rework task for ``target``; the next free ``<root>.fix<n>`` names it."""
    root = root_of(target.pk, target.scale_root)
    inputs = dict(target.inputs) if isinstance(target.inputs, dict) else {"inputs": target.inputs}
    inputs["findings"] = findings
    taken = set(Task.objects.filter(pk__startswith=f"{root}.fix").values_list("pk", flat=True))
    for _attempt in range(20):
        new_id = next_rework_id(root, taken)
        try:
            with transaction.atomic():
                return Task.objects.create(
                    id=new_id,
                    title=f"Fix: {target.title}"[:300],
                    description=(
                        f"Rework of {target.pk}, sent back by {task.pk}. The findings are in "
                        "the handoff note and in `inputs.findings`."
                    ),
                    pod_owner=target.pod_owner,
                    status=Status.READY,
                    task_type=target.task_type,
                    priority=task.priority,
                    handoff_mode=target.handoff_mode,
                    prompt=target.prompt,
                    inputs=inputs,
                    created_at=now,
                )
        except IntegrityError:
            taken.add(new_id)  # another send-back took it a moment ago
    raise RuleError("conflict", f"Could not find a free rework id for {root}; try again.")


# Questions and comments ----------------------------------------------------------------------


def ask(change, *, task_id, instance, question, author_pod=""):
    """The holder asks a person ``question``; its lease stops running until the answer.

    Asking the same open question again is a harmless retry; another question while one is
    open is refused.
    """
    if not instance:
        raise invalid("An instance name is required.")
    question = _text(question, "The question")
    task = lock(task_id)
    refuse_unless(task, Status.ACTIVE, doing="only the holder of an active task asks")
    _check_asking_holder(task, instance, "ask about it")
    if task.question:
        if task.question == question:
            return task
        raise RuleError(
            "invalid_transition",
            f"Task {task.pk} already waits for an answer to: {task.question}",
            question=task.question,
        )
    now = timezone.now()
    task.question, task.asked_at, task.lease_expires_at = question, now, None
    save(task, now, "question", "asked_at", "lease_expires_at")
    Comment.objects.create(
        task=task, kind=Comment.Kind.QUESTION, body=question, author=instance, created_at=now
    )
    pod_event(
        change,
        task,
        EventKind.ASKED,
        actor=instance,
        from_status=task.status,
        question=question,
        author_pod=author_pod,
    )
    return task


def close_question(task):
    """Close ``task``'s open question unanswered (its holder finished without the answer);
    return the question, or "" when none was open. The caller saves the task."""
    question = task.question
    task.question, task.asked_at = "", None
    return question


def answer(change, *, task_id, answer, actor):
    """A person answers the task's open question; the holder's lease runs again."""
    answer = _text(answer, "The answer")
    task = lock(task_id)
    if not task.question:
        raise RuleError(
            "invalid_transition",
            f"Task {task.pk} has no open question to answer; add a comment instead.",
            task_status=task.status,
        )
    now = timezone.now()
    question = task.question
    task.question, task.asked_at = "", None
    fields = ["question", "asked_at"]
    if task.status == Status.ACTIVE and task.claimed_by:
        task.lease_expires_at = lease_until(now)
        fields.append("lease_expires_at")
    save(task, now, *fields)
    made = Comment.objects.create(
        task=task, kind=Comment.Kind.ANSWER, body=answer, author=actor, created_at=now
    )
    pod_event(
        change,
        task,
        EventKind.ANSWERED,
        actor=actor,
        from_status=task.status,
        question=question,
        comment=made.pk,
    )
    return made


def comment(change, *, task_id, body, actor):
    """A person comments on any task; the comment reaches its next start context."""
    body = _text(body, "The comment")
    task = lock(task_id)
    made = Comment.objects.create(
        task=task, kind=Comment.Kind.COMMENT, body=body, author=actor, created_at=timezone.now()
    )
    pod_event(
        change, task, EventKind.COMMENTED, actor=actor, from_status=task.status, comment=made.pk
    )
    return made


def comment_data(comment):
    return {
        "kind": comment.kind,
        "body": comment.body,
        "author": comment.author,
        "created_at": iso(comment.created_at),
    }


# Pause ---------------------------------------------------------------------------------------


def pod_key(name):
    """Return the ``task_key`` of an Event about a pod rather than a task (``pod:DevPod``).

    No task id has a colon, so the key never names a task; boards still get the lane's
    counts and badges pushed, as for any change that names its pods.
    """
    return f"pod:{name}"


def pause(change, *, pod, actor, paused=True):
    """Pause (or resume, ``paused=False``) the pod named ``pod``; return the Pod.

    Pausing an already paused pod changes nothing and records nothing.
    """
    found = Pod.objects.select_for_update().filter(name=pod).first()
    if found is None:
        raise invalid(f"Unknown pod {pod!r}.")
    if found.paused == paused:
        return found
    found.paused = paused
    Pod.objects.filter(pk=found.pk).update(paused=paused)
    change.record(
        None,
        EventKind.PAUSED if paused else EventKind.RESUMED,
        task_key=pod_key(found.name),
        actor=actor,
        from_pod=found.name,
        to_pod=found.name,
    )
    return found


def paused_mode(successor, mode, why):
    """Return ``(mode, why, remark)``: a sync handoff to a paused pod resolves as async, and
    ``remark`` (appended to the handoff note) says so; otherwise ``remark`` is ""."""
    if mode == HandoffMode.SYNC and successor.pod_owner.paused:
        pod = successor.pod_owner.name
        return (
            HandoffMode.ASYNC,
            f"{why}; {pod} is paused: waits in Ready"[:200],
            f"(PodBoard: {pod} is paused, so this sync handoff waits in Ready as async.)",
        )
    return mode, why, ""
