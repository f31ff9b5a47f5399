"""Human control at rule level: review gate, send back, ask/answer, comments, pause, WIP."""

import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tasks_app import board, workflow
from tasks_app.api.errors import status_for
from tasks_app.models import Comment, Event, HandoffNote, Pod, Task
from tasks_app.shapes import completion, start_context, task_data
from tasks_app.workflow import RuleError


def fresh(task_id):
    return Task.objects.select_related("pod_owner").get(pk=task_id)


def kinds(task_id):
    return list(
        Event.objects.filter(task_key=task_id).order_by("id").values_list("kind", flat=True)
    )


def refused(code, fn, **kwargs):
    """Run a rule that must refuse with ``code``; return the error. Nothing may change."""
    before = (Event.objects.count(), HandoffNote.objects.count(), Comment.objects.count())
    versions = dict(Task.objects.values_list("pk", "version"))
    with pytest.raises(RuleError) as err:
        fn(**kwargs)
    assert err.value.code == code, err.value.detail
    assert (Event.objects.count(), HandoffNote.objects.count(), Comment.objects.count()) == before
    assert dict(Task.objects.values_list("pk", "version")) == versions
    return err.value


@pytest.fixture
def review_pod(pods):
    """DevPod's completions wait in Review; QAPod is its reviewer."""
    dev = pods["DevPod"]
    dev.review_required, dev.reviewer = True, pods["QAPod"]
    dev.save()
    return dev


@pytest.fixture
def chain(make_task):
    """PROD-1 (done) → DEV-1 (active, held by DevPod#1, sync) → QA-1 (ready)."""
    prod = make_task(
        "PROD-1",
        pod="ProductPod",
        status="done",
        outputs=[{"name": "spec", "uri": "docs/spec.md", "summary": "The spec"}],
    )
    dev = make_task(
        "DEV-1",
        status="active",
        claimed_by="DevPod#1",
        handoff_mode="sync",
        depends_on=["PROD-1"],
        handoff_from=prod,
        prompt="Build it",
        inputs={"spec": "docs/spec.md"},
        task_type="build",
        priority=2,
        lease_expires_at=timezone.now() + timedelta(minutes=5),
    )
    make_task(
        "QA-1",
        pod="QAPod",
        depends_on=["DEV-1"],
        handoff_from=dev,
        priority=3,
        task_type="qa",
        handoff_mode="async",
    )


def complete_dev(**extra):
    return workflow.complete(
        task_id="DEV-1",
        instance="DevPod#1",
        outputs=[{"name": "branch", "uri": "git://dev-1"}],
        handoff_note="Built; QA please.",
        author_pod="DevPod",
        **extra,
    )


# Review gate ---------------------------------------------------------------------------------


def test_completing_a_task_of_a_review_pod_puts_it_in_review_and_successors_wait(review_pod, chain):
    done = complete_dev()
    dev = fresh("DEV-1")
    assert (dev.status, dev.claimed_by, dev.completed_at, dev.lease_expires_at) == (
        "review",
        "",
        None,
        None,
    )
    assert dev.outputs == [{"name": "branch", "uri": "git://dev-1"}]
    assert done.successors == [] and done.started == []
    assert completion(done)["task"]["status"] == "review"
    assert fresh("QA-1").status == "ready" and fresh("QA-1").blocking_ids() == ["DEV-1"]
    # The note waits for the approval: no successor got one yet.
    assert not HandoffNote.objects.filter(from_task_id="DEV-1").exists()
    submitted = Event.objects.get(task_key="DEV-1", kind="submitted")
    assert (submitted.from_status, submitted.to_status, submitted.actor) == (
        "active",
        "review",
        "DevPod#1",
    )
    assert submitted.payload["note"] == "Built; QA please."


def test_a_repeated_completion_in_review_answers_the_same_and_changes_nothing(review_pod, chain):
    complete_dev()
    version = fresh("DEV-1").version
    again = complete_dev()
    assert again.repeated and again.task.status == "review" and again.successors == []
    assert fresh("DEV-1").version == version
    err = refused("invalid_transition", workflow.complete, task_id="DEV-1", instance="DevPod#2")
    assert "review" in err.detail


def test_approve_runs_rule_4_with_the_completion_note(review_pod, chain, make_task):
    Task.objects.filter(pk="QA-1").update(handoff_mode="async")
    Task.objects.filter(pk="DEV-1").update(handoff_mode="sync")
    complete_dev()
    done = workflow.review(task_id="DEV-1", verdict="approve", note="LGTM", actor="lead")
    dev, qa = fresh("DEV-1"), fresh("QA-1")
    assert (dev.status, dev.claimed_by) == ("done", "DevPod#1")
    assert dev.completed_at is not None
    assert (qa.status, qa.claimed_by) == ("active", "")  # sync: reserved for QAPod
    assert done.successors == [{"id": "QA-1", "status": "active", "mode": "sync"}]
    assert [w.task.pk for w in done.started] == ["QA-1"]
    note = HandoffNote.objects.get(from_task_id="DEV-1", to_task_id="QA-1")
    assert (note.note, note.reason, note.mode, note.author, note.author_pod) == (
        "Built; QA please.",
        "completed",
        "sync",
        "DevPod#1",
        "DevPod",
    )
    reviewed = Event.objects.get(task_key="DEV-1", kind="reviewed")
    assert (reviewed.actor, reviewed.from_status, reviewed.to_status) == ("lead", "review", "done")
    assert (reviewed.payload["verdict"], reviewed.payload["note"]) == ("approve", "LGTM")
    assert kinds("DEV-1")[-3:] == ["submitted", "reviewed", "completed"]
    # A repeated completion by the instance that did the work answers the approval's outcome.
    again = complete_dev()
    assert again.repeated and again.successors == done.successors


def test_a_person_may_rewrite_the_note_before_approving(review_pod, chain):
    complete_dev()
    workflow.review(
        task_id="DEV-1", verdict="approve", actor="lead", handoff_note="Built. Watch the cache."
    )
    note = HandoffNote.objects.get(from_task_id="DEV-1", to_task_id="QA-1")
    assert (note.note, note.author, note.author_pod) == ("Built. Watch the cache.", "lead", "")
    assert Event.objects.get(task_key="DEV-1", kind="reviewed").payload["edited_note"] is True


def test_changes_requested_sends_it_back_to_ready_with_the_note_as_latest(review_pod, chain):
    complete_dev()
    task = workflow.review(
        task_id="DEV-1",
        verdict="changes_requested",
        note="Add the missing test.",
        actor="QAPod token",
        reviewer_pod="QAPod",
    )
    assert (task.status, task.claimed_by) == ("ready", "")
    assert fresh("QA-1").status == "ready"
    work = workflow.claim_next(pod=review_pod, instance="DevPod#3")
    assert work.task.pk == "DEV-1"
    note = start_context(work)["handoff_note"]
    assert (note["from"], note["to"], note["reason"], note["note"], note["author_pod"]) == (
        "DEV-1",
        "DEV-1",
        "changes_requested",
        "Add the missing test.",
        "QAPod",
    )
    reviewed = Event.objects.get(task_key="DEV-1", kind="reviewed")
    assert (reviewed.to_status, reviewed.payload["verdict"]) == ("ready", "changes_requested")


def test_bad_reviews_are_refused_and_change_nothing(review_pod, chain):
    refused("invalid_transition", workflow.review, task_id="DEV-1", verdict="approve")
    refused("not_found", workflow.review, task_id="NOPE", verdict="approve")
    complete_dev()
    refused("validation_error", workflow.review, task_id="DEV-1", verdict="maybe")
    stale = refused(
        "conflict", workflow.review, task_id="DEV-1", verdict="approve", version=1, actor="b"
    )
    assert status_for(stale) == 409
    workflow.review(task_id="DEV-1", verdict="approve", actor="alice")
    # The second person to decide loses with a conflict that names the winner.
    err = refused("conflict", workflow.review, task_id="DEV-1", verdict="approve", actor="bob")
    assert "alice" in err.detail


def test_a_scale_out_is_not_reviewed_but_its_continuation_is(review_pod, chain):
    done = workflow.complete(task_id="DEV-1", instance="DevPod#1", handoff_to_same_pod=True)
    assert fresh("DEV-1").status == "done"
    cont = done.continuation.pk
    assert cont == "DEV-1.2"
    workflow.start(task_id=cont, instance="DevPod#2")
    workflow.complete(task_id=cont, instance="DevPod#2")
    assert fresh(cont).status == "review"
    assert fresh("QA-1").blocking_ids() == [cont]


def test_review_does_not_count_toward_the_wip_limit(review_pod, chain, make_task):
    Pod.objects.filter(pk=review_pod.pk).update(wip_limit=1)
    make_task("DEV-2")
    complete_dev()
    work = workflow.claim_next(pod=fresh("DEV-1").pod_owner, instance="DevPod#2")
    assert work.task.pk == "DEV-2"


def test_moves_through_the_review_column(review_pod, chain):
    moved = workflow.move(task_id="DEV-1", actor="lead", to_status="done")
    assert moved.status == "review"
    assert Event.objects.filter(task_key="DEV-1", kind="moved").last().to_status == "review"
    refused("invalid_transition", workflow.move, task_id="DEV-1", actor="lead", to_status="active")
    refused(
        "invalid_transition",
        workflow.move,
        task_id="DEV-1",
        actor="lead",
        to_status="review",
        to_pod="QAPod",
    )
    back = workflow.move(task_id="DEV-1", actor="lead", to_status="ready")
    assert back.status == "ready"
    assert HandoffNote.objects.filter(to_task_id="DEV-1", reason="changes_requested").exists()
    workflow.move(task_id="DEV-1", actor="lead", to_status="review")  # Ready → Review completes
    approved = workflow.move(task_id="DEV-1", actor="lead", to_status="done")
    assert approved.status == "done" and fresh("QA-1").status == "active"  # DEV-1 is sync
    verdicts = [
        e.payload["verdict"] for e in Event.objects.filter(task_key="DEV-1", kind="reviewed")
    ]
    assert verdicts == ["changes_requested", "approve"]
    # A pod that reviews nothing has no Review column to drop on.
    refused("invalid_transition", workflow.move, task_id="QA-1", actor="lead", to_status="review")


# Send back -----------------------------------------------------------------------------------


@pytest.fixture
def qa_holding(chain):
    """DEV-1 done with outputs; QA-1 held by QAPod#1."""
    Task.objects.filter(pk="DEV-1").update(
        status="done", outputs=[{"name": "branch", "uri": "git://dev-1"}], claimed_by="DevPod#1"
    )
    workflow.start(task_id="QA-1", instance="QAPod#1")


def test_send_back_creates_the_rework_task_and_returns_the_sender_to_ready(qa_holding):
    sent = workflow.send_back(
        task_id="QA-1",
        instance="QAPod#1",
        to="DEV-1",
        findings="Login fails on Safari.",
        author_pod="QAPod",
    )
    rework, qa = fresh("DEV-1.fix1"), fresh("QA-1")
    assert sent.rework.pk == "DEV-1.fix1" and sent.task.pk == "QA-1"
    assert (rework.title, rework.pod_owner.name, rework.status, rework.priority) == (
        "Fix: Task DEV-1",
        "DevPod",
        "ready",
        3,  # QA-1's priority
    )
    assert (rework.task_type, rework.handoff_mode, rework.prompt, rework.handoff_from_id) == (
        "build",
        "sync",
        "Build it",
        None,
    )
    assert rework.inputs == {"spec": "docs/spec.md", "findings": "Login fails on Safari."}
    note = HandoffNote.objects.get(to_task=rework)
    assert (note.from_task_id, note.reason, note.note, note.author, note.author_pod) == (
        "QA-1",
        "changes_requested",
        "Login fails on Safari.",
        "QAPod#1",
        "QAPod",
    )
    assert (qa.status, qa.claimed_by, qa.lease_expires_at) == ("ready", "", None)
    assert sorted(qa.depends_on.values_list("pk", flat=True)) == ["DEV-1", "DEV-1.fix1"]
    assert qa.blocking_ids() == ["DEV-1.fix1"]
    sent_back = Event.objects.get(task_key="QA-1", kind="sent_back")
    assert (sent_back.from_status, sent_back.to_status) == ("active", "ready")
    assert sent_back.payload == {
        "to": "DEV-1",
        "rework": "DEV-1.fix1",
        "findings": "Login fails on Safari.",
    }
    created = Event.objects.get(task_key="DEV-1.fix1", kind="created")
    assert created.payload == {"rework_of": "DEV-1", "sent_back_by": "QA-1"}


def test_a_completed_rework_restarts_the_sender_with_its_note_and_outputs(qa_holding, pods):
    workflow.send_back(task_id="QA-1", instance="QAPod#1", to="DEV-1", findings="Broken.")
    work = workflow.claim_next(pod=pods["DevPod"], instance="DevPod#5")
    assert work.task.pk == "DEV-1.fix1"
    assert start_context(work)["inputs"]["findings"] == "Broken."
    done = workflow.complete(
        task_id="DEV-1.fix1",
        instance="DevPod#5",
        outputs=[{"name": "patch", "uri": "git://fix1"}],
        handoff_note="Fixed the Safari login.",
    )
    # The rework's handoff mode (DEV-1's: sync) starts QA-1 at once.
    assert done.successors == [{"id": "QA-1", "status": "active", "mode": "sync"}]
    context = start_context(done.started[0])
    assert context["handoff_note"]["note"] == "Fixed the Safari login."
    assert context["handoff_note"]["from"] == "DEV-1.fix1"
    assert [(o["task"], o["name"]) for o in context["linked_outputs"]] == [
        ("DEV-1", "branch"),
        ("DEV-1.fix1", "patch"),
    ]


def test_rework_ids_count_up_on_the_root(qa_holding, make_task, pods):
    for n in (1, 2):
        workflow.send_back(task_id="QA-1", instance="QAPod#1", to="DEV-1", findings=f"Round {n}")
        workflow.start(task_id=f"DEV-1.fix{n}", instance="DevPod#9")
        workflow.complete(task_id=f"DEV-1.fix{n}", instance="DevPod#9")
        Task.objects.filter(pk="QA-1").update(status="active", claimed_by="QAPod#1")
    # A rework of a rework or of a continuation is still named on the root.
    make_task("DEV-1.2", status="done", scale_root="DEV-1")
    Task.objects.get(pk="QA-1").depends_on.add("DEV-1.2")
    assert (
        workflow.send_back(
            task_id="QA-1", instance="QAPod#1", to="DEV-1.fix2", findings="Again"
        ).rework.pk
        == "DEV-1.fix3"
    )
    Task.objects.filter(pk="QA-1").update(status="active", claimed_by="QAPod#1")
    assert (
        workflow.send_back(
            task_id="QA-1", instance="QAPod#1", to="DEV-1.2", findings="And again"
        ).rework.pk
        == "DEV-1.fix4"
    )
    assert fresh("DEV-1.fix3").title == "Fix: Fix: Task DEV-1"


def test_bad_send_backs_are_refused_and_change_nothing(qa_holding, make_task):
    make_task("OTHER-1", status="done")
    make_task("DEV-9", status="ready")
    Task.objects.get(pk="QA-1").depends_on.add("DEV-9")
    base = {"task_id": "QA-1", "instance": "QAPod#1", "findings": "Broken"}
    refused("invalid_transition", workflow.send_back, **base, to="OTHER-1")  # not a dependency
    refused("invalid_transition", workflow.send_back, **base, to="DEV-9")  # not done
    refused("validation_error", workflow.send_back, **base, to="NOPE")
    refused("validation_error", workflow.send_back, **{**base, "findings": "  \n"}, to="DEV-1")
    refused("claimed", workflow.send_back, **{**base, "instance": "QAPod#2"}, to="DEV-1")
    refused("not_found", workflow.send_back, **{**base, "task_id": "NOPE"}, to="DEV-1")
    Task.objects.filter(pk="QA-1").update(claimed_by="")  # reserved, held by nobody
    refused("invalid_transition", workflow.send_back, **base, to="DEV-1")
    Task.objects.filter(pk="QA-1").update(status="done")
    refused("invalid_transition", workflow.send_back, **base, to="DEV-1")


def test_a_person_may_send_back_a_ready_task(qa_holding):
    Task.objects.filter(pk="QA-1").update(status="ready", claimed_by="")
    sent = workflow.send_back(task_id="QA-1", to="DEV-1", findings="Seen in prod", actor="lead")
    assert sent.rework.pk == "DEV-1.fix1"
    assert HandoffNote.objects.get(to_task_id="DEV-1.fix1").author == "lead"


def test_twenty_send_backs_stay_fast_and_the_cards_render(qa_holding, pods):
    started = time.monotonic()
    for n in range(1, 21):
        workflow.send_back(task_id="QA-1", instance="QAPod#1", to="DEV-1", findings=f"#{n}")
        workflow.start(task_id=f"DEV-1.fix{n}", instance="DevPod#1")
        workflow.complete(task_id=f"DEV-1.fix{n}", instance="DevPod#1", handoff_note=f"fix {n}")
        workflow.start(task_id="QA-1", instance="QAPod#1")
    assert time.monotonic() - started < 20
    assert fresh("QA-1").depends_on.count() == 21
    with CaptureQueriesContext(connection) as queries:
        cards = board.render_cards(["QA-1", "DEV-1.fix20", "DEV-1"])
    assert len(queries) <= 4
    assert "sent back ×20" in cards["QA-1"] and "DEV-1.fix20" in cards["QA-1"]
    assert "fix for" in cards["DEV-1.fix20"] and "QA-1" in cards["DEV-1.fix20"]
    context = start_context(workflow.start(task_id="QA-1", instance="QAPod#1"))
    assert context["handoff_note"]["note"] == "fix 20"
    # The fixes output nothing here: only the baton giver's outputs are linked.
    assert [o["task"] for o in context["linked_outputs"]] == ["DEV-1"]


# Ask a human, answer, comment ------------------------------------------------------------------


def test_the_holder_asks_and_its_lease_stops_running(chain):
    task = workflow.ask(
        task_id="DEV-1", instance="DevPod#1", question="OAuth or passwords?", author_pod="DevPod"
    )
    assert (task.question, task.lease_expires_at) == ("OAuth or passwords?", None)
    data = task_data(fresh("DEV-1"))
    assert (data["question"], data["waiting_on_human"]) == ("OAuth or passwords?", True)
    question = Comment.objects.get(task_id="DEV-1")
    assert (question.kind, question.body, question.author) == (
        "question",
        "OAuth or passwords?",
        "DevPod#1",
    )
    assert kinds("DEV-1") == ["asked"]
    # A heartbeat while waiting does not make the lease run out on it.
    workflow.trace(task_id="DEV-1", instance="DevPod#1", steps=[{"action": "wait"}])
    Task.objects.filter(pk="DEV-1").update(lease_expires_at=timezone.now() - timedelta(hours=1))
    assert workflow.expire_leases() == 0
    assert fresh("DEV-1").status == "active"
    # Asking the same again is a harmless retry; another question is refused.
    workflow.ask(task_id="DEV-1", instance="DevPod#1", question="OAuth or passwords?")
    refused(
        "invalid_transition", workflow.ask, task_id="DEV-1", instance="DevPod#1", question="Why?"
    )


def test_an_answer_closes_the_question_and_reaches_the_start_context(chain):
    workflow.ask(task_id="DEV-1", instance="DevPod#1", question="OAuth or passwords?")
    answered = workflow.answer(task_id="DEV-1", answer="OAuth only.", actor="lead")
    dev = fresh("DEV-1")
    assert (dev.question, dev.asked_at) == ("", None)
    assert dev.lease_expires_at > timezone.now()
    assert (answered.kind, answered.body, answered.author) == ("answer", "OAuth only.", "lead")
    event = Event.objects.get(task_key="DEV-1", kind="answered")
    assert (event.actor, event.payload["question"]) == ("lead", "OAuth or passwords?")
    workflow.comment(task_id="DEV-1", body="Ship it **today**.", actor="lead")
    context = start_context(workflow.start(task_id="DEV-1", instance="DevPod#1"))
    assert [(c["kind"], c["body"], c["author"]) for c in context["comments"]] == [
        ("answer", "OAuth only.", "lead"),
        ("comment", "Ship it **today**.", "lead"),
    ]
    assert all(c["created_at"].endswith("Z") for c in context["comments"])


def test_the_holder_may_complete_and_the_question_closes_unanswered(chain):
    workflow.ask(task_id="DEV-1", instance="DevPod#1", question="Which database?")
    complete_dev()
    dev = fresh("DEV-1")
    assert (dev.status, dev.question) == ("done", "")
    assert Event.objects.get(task_key="DEV-1", kind="completed").payload["question_closed"] == (
        "Which database?"
    )
    refused("invalid_transition", workflow.answer, task_id="DEV-1", answer="Late", actor="lead")


def test_bad_questions_answers_and_comments_are_refused(chain):
    ask = {"task_id": "DEV-1", "question": "Which?"}
    refused("claimed", workflow.ask, **ask, instance="DevPod#2")
    refused("validation_error", workflow.ask, task_id="DEV-1", instance="DevPod#1", question=" ")
    refused("invalid_transition", workflow.ask, **{**ask, "task_id": "QA-1"}, instance="Q#1")
    refused("invalid_transition", workflow.answer, task_id="DEV-1", answer="x", actor="lead")
    refused("validation_error", workflow.comment, task_id="DEV-1", body="\n", actor="lead")
    refused("not_found", workflow.comment, task_id="NOPE", body="Hi", actor="lead")
    Task.objects.filter(pk="DEV-1").update(claimed_by="")  # reserved by a sync handoff
    err = refused("invalid_transition", workflow.ask, **ask, instance="DevPod#1")
    assert "start it" in err.detail
    Task.objects.filter(pk="DEV-1").update(claimed_by="DevPod#1", question="Which?")
    refused("validation_error", workflow.answer, task_id="DEV-1", answer="", actor="lead")


def test_people_comment_on_any_task(chain):
    made = workflow.comment(task_id="PROD-1", body="Nice spec.", actor="lead")
    assert (made.kind, made.task_id) == ("comment", "PROD-1")
    event = Event.objects.get(task_key="PROD-1", kind="commented")
    assert (event.actor, event.to_status) == ("lead", "done")


# Pause and WIP back-pressure -------------------------------------------------------------------


def test_a_paused_pod_claims_nothing_but_its_holders_keep_their_tasks(make_task, pods):
    make_task("DEV-HELD", status="active", claimed_by="DevPod#1")
    make_task("DEV-RES", status="active")  # reserved by a sync handoff
    make_task("DEV-READY")
    workflow.pause(pod="DevPod", actor="lead")
    workflow.pause(pod="DevPod", actor="lead")  # already paused: nothing recorded
    assert list(Event.objects.values_list("kind", "from_pod", "task_key", "task")) == [
        ("paused", "DevPod", "pod:DevPod", None)
    ]
    dev = pods["DevPod"]
    pulled = workflow.pull(pod=dev, instance="DevPod#2")
    assert (pulled.work, pulled.paused, pulled.wip_limit) == (None, True, None)
    assert workflow.pull(pod=dev, instance="DevPod#1").work.task.pk == "DEV-HELD"
    assert fresh("DEV-RES").claimed_by == "" and fresh("DEV-READY").status == "ready"
    workflow.resume(pod="DevPod", actor="lead")
    assert workflow.pull(pod=dev, instance="DevPod#2").work.task.pk == "DEV-RES"
    assert workflow.pull(pod=dev, instance="DevPod#3").work.task.pk == "DEV-READY"
    assert Event.objects.filter(kind="resumed", actor="lead").count() == 1


def test_wip_back_pressure_holds_ready_work_but_hands_out_reserved_work(make_task, pods):
    Pod.objects.filter(name="DevPod").update(wip_limit=2)
    dev = Pod.objects.get(name="DevPod")
    make_task("DEV-A", status="active", claimed_by="DevPod#1")
    make_task("DEV-RES", status="active")
    make_task("DEV-READY")
    assert workflow.pull(pod=dev, instance="DevPod#2").work.task.pk == "DEV-RES"
    pulled = workflow.pull(pod=dev, instance="DevPod#3")
    assert (pulled.work, pulled.paused, pulled.wip_limit) == (None, False, 2)
    assert workflow.pull(pod=dev, instance="DevPod#1").work.task.pk == "DEV-A"
    assert fresh("DEV-READY").status == "ready"
    # Pause wins over the WIP limit.
    workflow.pause(pod="DevPod", actor="lead")
    pulled = workflow.pull(pod=dev, instance="DevPod#3")
    assert (pulled.paused, pulled.wip_limit) == (True, None)
    workflow.resume(pod="DevPod", actor="lead")
    workflow.complete(task_id="DEV-A", instance="DevPod#1")
    assert workflow.pull(pod=dev, instance="DevPod#3").work.task.pk == "DEV-READY"
    assert workflow.pull(pod=dev, instance="DevPod#4").work is None


def test_sync_handoffs_to_a_paused_pod_resolve_as_async(chain, pods):
    Task.objects.filter(pk="QA-1").update(handoff_mode="async")
    workflow.pause(pod="QAPod", actor="lead")
    done = complete_dev()
    assert done.successors == [{"id": "QA-1", "status": "ready", "mode": "async"}]
    assert done.started == []
    note = HandoffNote.objects.get(from_task_id="DEV-1", to_task_id="QA-1")
    assert note.mode == "async"
    assert "QAPod is paused" in note.why and "QAPod is paused" in note.note
    assert note.note.startswith("Built; QA please.")
    workflow.resume(pod="QAPod", actor="lead")
    assert workflow.claim_next(pod=pods["QAPod"], instance="QAPod#1").task.pk == "QA-1"


# YAML: statuses, pod controls, questions and comments round-trip -----------------------------


def _files(root):
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_review_pods_questions_and_comments_round_trip_through_yaml(review_pod, chain, tmp_path):
    from tasks_app import yamlio

    Pod.objects.filter(name="QAPod").update(paused=True)
    workflow.ask(task_id="DEV-1", instance="DevPod#1", question="OAuth or SAML?")
    workflow.answer(task_id="DEV-1", answer="OAuth.", actor="lead")
    workflow.ask(task_id="DEV-1", instance="DevPod#1", question="Which provider?")
    workflow.comment(task_id="PROD-1", body="Multi-line\n\n**comment**", actor="lead")
    complete_dev()  # into review; closes the open question
    Task.objects.filter(pk="QA-1").update(
        status="active", claimed_by="QAPod#1", question="Is staging up?", asked_at=timezone.now()
    )
    yamlio.export_directory(tmp_path / "a")
    files = _files(tmp_path / "a")
    pods_yaml = files["pods.yaml"].decode()
    assert "review_required: true" in pods_yaml and "reviewer: QAPod" in pods_yaml
    assert "paused: true" in pods_yaml
    assert pods_yaml.count("review_required") == 1  # defaults are not written
    assert b"status: review" in files["tasks/DEV-1/task.yaml"]
    assert b"question: Is staging up?" in files["tasks/QA-1/task.yaml"]
    comments = files["tasks/DEV-1/comments.yaml"].decode()
    assert comments.index("OAuth or SAML?") < comments.index("OAuth.") < comments.index("Which")
    assert "kind: answer" in comments and "kind: question" in comments

    Task.objects.all().delete()
    Pod.objects.all().delete()
    yamlio.import_directory(tmp_path / "a")
    dev, qa = Pod.objects.get(name="DevPod"), Pod.objects.get(name="QAPod")
    assert (dev.review_required, dev.reviewer_id, qa.paused) == (True, qa.pk, True)
    assert fresh("DEV-1").status == "review"
    assert (fresh("QA-1").question, fresh("QA-1").asked_at is not None) == ("Is staging up?", True)
    assert list(Comment.objects.filter(task_id="DEV-1").values_list("kind", flat=True)) == [
        "question",
        "answer",
        "question",
    ]
    yamlio.export_directory(tmp_path / "b")
    assert _files(tmp_path / "b") == files


def test_an_unknown_reviewer_is_an_import_error(db, tmp_path):
    from tasks_app import yamlio

    (tmp_path / "pods.yaml").write_text(
        "- name: DevPod\n  review_required: true\n  reviewer: NoSuchPod\n"
        "- name: QAPod\n  paused: maybe\n"
    )
    with pytest.raises(yamlio.ImportErrors) as err:
        yamlio.import_directory(tmp_path)
    text = str(err.value)
    assert "pods.yaml:3: reviewer: NoSuchPod is neither a pod" in text
    assert "pods.yaml:5: paused: expected true or false" in text
    assert not Pod.objects.exists()


# The demo's simulated pods use the controls ------------------------------------------------------


@pytest.fixture
def http():
    """An httpx client that calls Django in this thread, inside the test's transaction."""
    import httpx
    from django.core import signals
    from django.core.wsgi import get_wsgi_application
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    client = httpx.Client(
        transport=httpx.WSGITransport(app=get_wsgi_application()), base_url="http://testserver"
    )
    yield client
    client.close()
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def test_simulated_pods_send_back_ask_and_review(http, review_pod, pod_tokens):
    from tasks_app.simulator import Chances, PodApi, Simulator, VirtualClock

    simulator = Simulator(
        PodApi(http, pod_tokens),
        seed=11,
        clock=VirtualClock(),
        speed=0,
        chances=Chances(0, 0.05, 0, send_back=0.5, ask=0.3, request_changes=0.6),
    )
    stats = simulator.run(max_actions=150)
    assert stats.sent_back >= 1 and stats.asked >= 1, stats.line()
    assert stats.reviewed >= 2 and stats.changes_requested >= 1, stats.line()
    assert Task.objects.filter(pk__contains=".fix").exists()
    assert Event.objects.filter(kind="sent_back").count() == stats.sent_back
    assert Event.objects.filter(kind="asked").count() == stats.asked
    assert Event.objects.filter(kind="reviewed", actor__startswith="QAPod").count() == (
        stats.reviewed
    )
    transcript = "\n".join(simulator.transcript)
    assert "sent DEV-" in transcript and "asked a human" in transcript
    assert "approved DEV-" in transcript and "requested changes on DEV-" in transcript
