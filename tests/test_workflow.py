"""The workflow rules of DESIGN.md, proven on the models (the API and board call these)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tasks_app import workflow
from tasks_app.api.errors import status_for
from tasks_app.models import AutoModeRule, Event, HandoffNote, Task
from tasks_app.workflow import RuleError


def fresh(task):
    return Task.objects.get(pk=task.pk)


@pytest.fixture
def published(monkeypatch):
    """Collect what the workflow announces to boards after commit."""
    sent = []
    monkeypatch.setattr("tasks_app.live.publish", lambda events: sent.append(events))
    return sent


# Rule 1: activate ------------------------------------------------------------------------------


def test_blocked_task_cannot_be_activated(make_task):
    make_task("PROD-1", pod="ProductPod")
    dev = make_task("DEV-1", depends_on=["PROD-1"])
    with pytest.raises(RuleError) as err:
        workflow.activate(task_id="DEV-1")
    assert err.value.code == "blocked"
    assert "PROD-1" in err.value.detail
    assert fresh(dev).status == "ready"
    assert not Event.objects.filter(task=dev).exists()


def test_activate_sets_started_at_and_leaves_task_unclaimed(make_task):
    make_task("DEV-1")
    task = workflow.activate(task_id="DEV-1", actor="lead")
    task = fresh(task)
    assert task.status == "active"
    assert task.started_at is not None
    assert task.claimed_by == ""
    assert Event.objects.get(task=task).kind == "activated"


def test_done_task_cannot_be_activated(make_task):
    make_task("DEV-1", status="done")
    with pytest.raises(RuleError) as err:
        workflow.activate(task_id="DEV-1")
    assert err.value.code == "invalid_transition"


def test_unknown_task_is_not_found(db):
    with pytest.raises(RuleError) as err:
        workflow.activate(task_id="NOPE-1")
    assert (err.value.code, status_for(err.value)) == ("not_found", 404)


# Rule 2: next ----------------------------------------------------------------------------------


def test_next_prefers_priority_then_fresh_work_then_oldest(make_task, pods):
    now = timezone.now()
    make_task("BATON", priority=1, created_at=now - timedelta(hours=3))
    make_task("OLD", priority=1, created_at=now - timedelta(hours=2))
    make_task("NEW", priority=1, created_at=now - timedelta(hours=1))
    make_task("LOW", priority=0, created_at=now - timedelta(hours=9))
    make_task("SRC", pod="ProductPod", status="done")
    Task.objects.filter(pk="BATON").update(handoff_from="SRC")
    order = [
        workflow.claim_next(pod=pods["DevPod"], instance=f"DevPod#{i}").task.pk for i in range(4)
    ]
    assert order == ["OLD", "NEW", "BATON", "LOW"]


def test_next_skips_blocked_tasks_and_other_pods(make_task, pods):
    make_task("PROD-1", pod="ProductPod")
    make_task("DEV-BLOCKED", priority=5, depends_on=["PROD-1"])
    make_task("DEV-FREE")
    task = workflow.claim_next(pod=pods["DevPod"], instance="DevPod#1").task
    assert task.pk == "DEV-FREE"
    assert workflow.claim_next(pod=pods["DevPod"], instance="DevPod#2") is None


def test_next_takes_a_sync_reserved_task_first(make_task, pods):
    make_task("DEV-READY", priority=9)
    make_task("DEV-RESERVED", status="active", started_at=timezone.now())
    assert workflow.claim_next(pod=pods["DevPod"], instance="DevPod#1").task.pk == "DEV-RESERVED"


def test_next_claims_with_a_lease_and_records_it(make_task, pods, settings):
    settings.PODBOARD_LEASE_SECONDS = 60
    make_task("DEV-1")
    task = workflow.claim_next(pod=pods["DevPod"], instance="DevPod#1").task
    task = fresh(task)
    assert task.status == "active"
    assert task.claimed_by == "DevPod#1"
    assert 50 < (task.lease_expires_at - timezone.now()).total_seconds() <= 60
    assert task.version == 2
    event = Event.objects.get(task=task)
    assert (event.kind, event.from_status, event.to_status) == ("claimed", "ready", "active")


def test_instance_holding_a_task_gets_it_back_from_next(make_task, pods):
    make_task("DEV-1", priority=1)
    make_task("DEV-2")
    first = workflow.claim_next(pod=pods["DevPod"], instance="DevPod#1").task
    again = workflow.claim_next(pod=pods["DevPod"], instance="DevPod#1").task
    assert first.pk == again.pk == "DEV-1"
    assert fresh(Task(pk="DEV-2")).status == "ready"


def test_next_with_nothing_to_do_returns_none(pods):
    assert workflow.claim_next(pod=pods["QAPod"], instance="QAPod#1") is None


# Rule 3: start ---------------------------------------------------------------------------------


def test_start_claims_a_ready_task_and_is_idempotent_for_its_holder(make_task):
    make_task("DEV-1")
    workflow.start(task_id="DEV-1", instance="DevPod#1")
    workflow.start(task_id="DEV-1", instance="DevPod#1")
    task = Task.objects.get(pk="DEV-1")
    assert (task.status, task.claimed_by) == ("active", "DevPod#1")
    assert Event.objects.filter(task=task, kind="claimed").count() == 1


def test_start_by_another_instance_is_refused(make_task):
    make_task("DEV-1")
    workflow.start(task_id="DEV-1", instance="DevPod#1")
    with pytest.raises(RuleError) as err:
        workflow.start(task_id="DEV-1", instance="DevPod#2")
    assert err.value.code == "claimed"
    assert Task.objects.get(pk="DEV-1").claimed_by == "DevPod#1"


def test_start_claims_an_active_task_nobody_holds(make_task):
    make_task("DEV-1", status="active")
    task = workflow.start(task_id="DEV-1", instance="DevPod#3").task
    assert task.claimed_by == "DevPod#3"


def test_start_refuses_blocked_task(make_task):
    make_task("PROD-1", pod="ProductPod")
    make_task("DEV-1", depends_on=["PROD-1"])
    with pytest.raises(RuleError) as err:
        workflow.start(task_id="DEV-1", instance="DevPod#1")
    assert err.value.code == "blocked"


def test_acting_for_another_pod_is_forbidden_before_any_rule_runs(make_task, pods, client):
    from tasks_app.models import PodToken

    make_task("QA-1", pod="QAPod")
    _token, raw = PodToken.issue(pod=pods["DevPod"])
    response = client.post(
        "/api/tasks/QA-1/start",
        {"instance": "DevPod#1"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {raw}"},
    )
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden_pod"
    assert Task.objects.get(pk="QA-1").status == "ready"
    assert not Event.objects.filter(task_key="QA-1").exists()


# Rule 4: complete ------------------------------------------------------------------------------


def _chain(make_task, mode, succ_pod="QAPod", succ_type="qa"):
    make_task("DEV-1", handoff_mode=mode, status="active", claimed_by="DevPod#1")
    make_task(
        "QA-1",
        pod=succ_pod,
        task_type=succ_type,
        depends_on=["DEV-1"],
        handoff_from=Task(pk="DEV-1"),
    )


def test_sync_completion_activates_successor(make_task):
    _chain(make_task, "sync")
    done = workflow.complete(task_id="DEV-1", instance="DevPod#1", handoff_note="Ready for QA.")
    assert done.successors == [{"id": "QA-1", "status": "active", "mode": "sync"}]
    assert [work.task.pk for work in done.started] == ["QA-1"]
    qa = Task.objects.get(pk="QA-1")
    assert (qa.status, qa.claimed_by) == ("active", "")
    note = HandoffNote.objects.get(to_task=qa)
    assert (note.from_task_id, note.note, note.mode, note.reason, note.author) == (
        "DEV-1",
        "Ready for QA.",
        "sync",
        "completed",
        "DevPod#1",
    )


def test_async_completion_leaves_successor_ready_for_its_pod(make_task, pods):
    _chain(make_task, "async")
    done = workflow.complete(task_id="DEV-1", instance="DevPod#1", handoff_note="Over to you.")
    assert done.successors == [{"id": "QA-1", "status": "ready", "mode": "async"}]
    assert Task.objects.get(pk="QA-1").status == "ready"
    assert workflow.claim_next(pod=pods["QAPod"], instance="QAPod#1").task.pk == "QA-1"


def test_auto_mode_uses_the_rule_for_the_successor_type(make_task):
    AutoModeRule.objects.create(task_type="qa", mode="async")
    _chain(make_task, "auto")
    done = workflow.complete(task_id="DEV-1", instance="DevPod#1")
    assert done.successors[0]["mode"] == "async"
    assert HandoffNote.objects.get(to_task_id="QA-1").mode == "async"


def test_auto_mode_is_sync_under_the_wip_limit_and_async_at_it(make_task, pods):
    pods["QAPod"].wip_limit = 1
    pods["QAPod"].save()
    _chain(make_task, "auto")
    make_task("DEV-2", handoff_mode="auto", status="active", claimed_by="DevPod#2")
    make_task("QA-2", pod="QAPod", depends_on=["DEV-2"])
    first = workflow.complete(task_id="DEV-1", instance="DevPod#1")
    second = workflow.complete(task_id="DEV-2", instance="DevPod#2")
    assert first.successors[0]["mode"] == "sync"
    assert second.successors[0]["mode"] == "async"
    assert Task.objects.get(pk="QA-2").status == "ready"


def test_successor_waiting_on_other_dependencies_is_not_started(make_task):
    _chain(make_task, "sync")
    make_task("DOC-1", pod="ProductPod")
    Task.objects.get(pk="QA-1").depends_on.add("DOC-1")
    done = workflow.complete(task_id="DEV-1", instance="DevPod#1", handoff_note="Done")
    assert done.successors == [{"id": "QA-1", "status": "ready", "mode": "sync"}]
    assert Task.objects.get(pk="QA-1").status == "ready"
    # One note per successor, even one still waiting.
    assert HandoffNote.objects.filter(to_task_id="QA-1").count() == 1


def test_completion_without_successors_writes_one_note_with_empty_to(make_task):
    make_task("DEV-1", status="active", claimed_by="DevPod#1")
    workflow.complete(
        task_id="DEV-1", instance="DevPod#1", handoff_note="Shipped.", token_count=321
    )
    note = HandoffNote.objects.get(from_task_id="DEV-1")
    assert (note.to_task_id, note.note, note.token_count) == (None, "Shipped.", 321)


def test_completion_stores_outputs_trace_and_thoughts(make_task):
    task = make_task("DEV-1", status="active", claimed_by="DevPod#1", reasoning_summary="old")
    workflow.trace(
        task_id="DEV-1", instance="DevPod#1", steps=[{"action": "Read", "rationale": "first"}]
    )
    workflow.complete(
        task_id="DEV-1",
        instance="DevPod#1",
        outputs=[{"name": "pr", "uri": "git://pr/1", "summary": "The form"}],
        reasoning_trace={
            "summary": "Kept it small.",
            "steps": [{"action": "Wrote", "rationale": "then", "tokens": 40}],
        },
        chain_of_thought=[{"thought": "Small is good."}],
        token_count=900,
    )
    task = fresh(task)
    assert task.outputs[0]["uri"] == "git://pr/1"
    assert task.reasoning_summary == "Kept it small."
    assert [(s.step, s.action) for s in task.trace_steps.all()] == [(1, "Read"), (2, "Wrote")]
    assert [t.thought for t in task.thoughts.all()] == ["Small is good."]
    assert (task.token_count, task.status, task.lease_expires_at) == (900, "done", None)


def test_completion_by_another_instance_is_refused_and_changes_nothing(make_task):
    _chain(make_task, "sync")
    with pytest.raises(RuleError) as err:
        workflow.complete(task_id="DEV-1", instance="DevPod#2", handoff_note="mine")
    assert err.value.code == "claimed"
    assert Task.objects.get(pk="DEV-1").status == "active"
    assert Task.objects.get(pk="QA-1").status == "ready"
    assert not HandoffNote.objects.exists()


def test_repeated_completion_returns_the_same_answer_and_changes_nothing(make_task):
    _chain(make_task, "sync")
    first = workflow.complete(task_id="DEV-1", instance="DevPod#1", handoff_note="x")
    counts = (Event.objects.count(), HandoffNote.objects.count(), fresh(first.task).version)
    again = workflow.complete(task_id="DEV-1", instance="DevPod#1", handoff_note="x")
    assert again.repeated
    assert (again.successors, again.started) == (first.successors, first.started)
    assert (Event.objects.count(), HandoffNote.objects.count(), fresh(first.task).version) == counts


def test_ready_task_cannot_be_completed(make_task):
    make_task("DEV-1")
    with pytest.raises(RuleError) as err:
        workflow.complete(task_id="DEV-1", instance="DevPod#1")
    assert err.value.code == "invalid_transition"


# Rule 5 and 7: scale out -----------------------------------------------------------------------


def test_scale_out_creates_a_continuation_and_moves_successors_to_it(make_task):
    make_task(
        "DEV-101",
        status="active",
        claimed_by="DevPod#1",
        priority=3,
        handoff_mode="sync",
        prompt="Build it",
        inputs={"spec": "a.md"},
        task_type="build",
    )
    make_task("QA-1", pod="QAPod", depends_on=["DEV-101"], handoff_from=Task(pk="DEV-101"))
    done = workflow.complete(
        task_id="DEV-101",
        instance="DevPod#1",
        handoff_to_same_pod=True,
        token_count=15000,
        handoff_note="Half the form is done; validation left.",
        outputs=[{"name": "wip", "uri": "git://branch", "summary": "half"}],
    )
    cont = Task.objects.get(pk="DEV-101.2")
    assert done.continuation.pk == "DEV-101.2"
    assert done.successors == []
    assert Task.objects.get(pk="DEV-101").status == "done"
    assert (
        cont.status,
        cont.pod_owner.name,
        cont.priority,
        cont.handoff_mode,
        cont.prompt,
        cont.inputs,
        cont.handoff_from_id,
        cont.scale_root,
    ) == (
        "ready",
        "DevPod",
        3,
        "sync",
        "Build it",
        {"spec": "a.md"},
        "DEV-101",
        "DEV-101",
    )
    note = HandoffNote.objects.get(to_task=cont)
    assert (note.reason, note.handoff_type, note.token_count, note.from_task_id) == (
        "capacity_reached",
        "scale",
        15000,
        "DEV-101",
    )
    qa = Task.objects.get(pk="QA-1")
    assert qa.status == "ready"  # rule 4 did not run
    assert list(qa.depends_on.values_list("pk", flat=True)) == ["DEV-101.2"]
    assert qa.handoff_from_id == "DEV-101.2"
    assert qa.is_blocked()
    assert Event.objects.filter(task_id="DEV-101", kind="scaled_out").exists()


def test_successors_start_only_when_the_continuation_completes(make_task, pods):
    make_task("DEV-101", status="active", claimed_by="DevPod#1", handoff_mode="sync")
    make_task("QA-1", pod="QAPod", depends_on=["DEV-101"])
    workflow.complete(task_id="DEV-101", instance="DevPod#1", handoff_to_same_pod=True)
    assert workflow.claim_next(pod=pods["QAPod"], instance="QAPod#1") is None
    cont = workflow.claim_next(pod=pods["DevPod"], instance="DevPod#2").task
    assert cont.pk == "DEV-101.2"
    done = workflow.complete(task_id=cont.pk, instance="DevPod#2", handoff_note="All done")
    assert done.successors == [{"id": "QA-1", "status": "active", "mode": "sync"}]


def test_continuations_are_numbered_from_the_root(make_task):
    make_task("DEV-101", status="active", claimed_by="A")
    workflow.scale_out(task_id="DEV-101", instance="A", reason="stalled")
    workflow.start(task_id="DEV-101.2", instance="B")
    third = workflow.scale_out(task_id="DEV-101.2", instance="B").continuation
    assert third.pk == "DEV-101.3"
    assert third.scale_root == "DEV-101"
    assert HandoffNote.objects.get(to_task_id="DEV-101.2").reason == "stalled"


def test_scale_out_of_a_task_that_is_not_active_is_refused(make_task):
    make_task("DEV-1")
    with pytest.raises(RuleError) as err:
        workflow.scale_out(task_id="DEV-1", instance="DevPod#1")
    assert err.value.code == "invalid_transition"
    assert Task.objects.count() == 1


# Rule 6: auto_handoff --------------------------------------------------------------------------


def test_auto_handoff_links_and_activates_when_task_is_done(make_task):
    make_task("DEV-1", status="done")
    make_task("QA-9", pod="QAPod")
    handoff = workflow.auto_handoff(task_id="DEV-1", next_task_id="QA-9", note="Please test.")
    mode = handoff.mode
    qa = Task.objects.get(pk="QA-9")
    assert (qa.status, qa.handoff_from_id, mode) == ("active", "DEV-1", "sync")
    assert list(qa.depends_on.values_list("pk", flat=True)) == ["DEV-1"]
    assert HandoffNote.objects.get(to_task=qa).note == "Please test."


def test_auto_handoff_before_completion_starts_successor_on_completion(make_task):
    make_task("DEV-1", status="active", claimed_by="DevPod#1", handoff_mode="sync")
    make_task("QA-9", pod="QAPod")
    workflow.auto_handoff(task_id="DEV-1", next_task_id="QA-9")
    assert Task.objects.get(pk="QA-9").status == "ready"
    workflow.complete(task_id="DEV-1", instance="DevPod#1")
    assert Task.objects.get(pk="QA-9").status == "active"


def test_auto_handoff_refuses_a_cycle(make_task):
    make_task("A-1")
    make_task("B-1", depends_on=["A-1"])
    with pytest.raises(RuleError) as err:
        workflow.auto_handoff(task_id="B-1", next_task_id="A-1")
    assert err.value.code == "validation_error"
    assert "cycle" in err.value.detail
    assert Task.objects.get(pk="A-1").handoff_from_id is None


# Rule 8: move ----------------------------------------------------------------------------------


def test_move_of_blocked_task_to_active_is_refused(make_task):
    make_task("PROD-1", pod="ProductPod")
    dev = make_task("DEV-1", depends_on=["PROD-1"])
    with pytest.raises(RuleError) as err:
        workflow.move(task_id="DEV-1", actor="lead", to_status="active", version=dev.version)
    assert err.value.code == "blocked"
    assert fresh(dev).status == "ready"
    assert not Event.objects.exists()


def test_move_with_stale_version_is_a_conflict(make_task):
    dev = make_task("DEV-1")
    workflow.activate(task_id="DEV-1")
    with pytest.raises(RuleError) as err:
        workflow.move(task_id="DEV-1", actor="lead", to_status="done", version=dev.version)
    assert err.value.code == "conflict"
    assert fresh(dev).status == "active"


def test_lane_change_reassigns_pod_and_releases_the_claim(make_task):
    make_task("DEV-1")
    workflow.start(task_id="DEV-1", instance="DevPod#1")
    task = workflow.move(task_id="DEV-1", actor="lead", to_pod="QAPod")
    assert (task.pod_owner.name, task.status, task.claimed_by) == ("QAPod", "active", "")
    event = Event.objects.filter(kind="moved").get()
    assert (event.from_pod, event.to_pod, event.actor) == ("DevPod", "QAPod", "lead")


def test_move_active_to_done_completes_with_the_user_as_author(make_task):
    _chain(make_task, "sync")
    workflow.move(task_id="DEV-1", actor="lead", to_status="done")
    assert Task.objects.get(pk="QA-1").status == "active"
    assert HandoffNote.objects.get(to_task_id="QA-1").author == "lead"


def test_move_done_to_ready_reopens(make_task):
    make_task("DEV-1", status="done", completed_at=timezone.now(), claimed_by="x")
    task = workflow.move(task_id="DEV-1", actor="lead", to_status="ready")
    assert (task.status, task.completed_at, task.claimed_by) == ("ready", None, "")


def test_move_active_to_ready_releases_claim(make_task):
    make_task("DEV-1")
    workflow.start(task_id="DEV-1", instance="DevPod#1")
    task = workflow.move(task_id="DEV-1", actor="lead", to_status="ready")
    assert (task.status, task.claimed_by, task.lease_expires_at) == ("ready", "", None)


# Rule 9: leases --------------------------------------------------------------------------------


def test_expired_lease_returns_task_with_a_stalled_note(make_task):
    make_task("DEV-1")
    workflow.start(task_id="DEV-1", instance="DevPod#1")
    Task.objects.filter(pk="DEV-1").update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    make_task("DEV-2")
    workflow.start(task_id="DEV-2", instance="DevPod#2")  # lease still good
    assert workflow.expire_leases() == 1
    task = Task.objects.get(pk="DEV-1")
    assert (task.status, task.claimed_by) == ("ready", "")
    note = HandoffNote.objects.get(to_task=task)
    assert note.reason == "stalled"
    assert "DevPod#1" in note.note
    assert Task.objects.get(pk="DEV-2").status == "active"
    assert Event.objects.filter(task=task, kind="lease_expired").exists()


def test_trace_extends_the_holders_lease(make_task, settings):
    make_task("DEV-1")
    workflow.start(task_id="DEV-1", instance="DevPod#1")
    Task.objects.filter(pk="DEV-1").update(lease_expires_at=timezone.now() + timedelta(seconds=5))
    workflow.trace(task_id="DEV-1", instance="DevPod#1", thoughts=[{"thought": "still here"}])
    left = (Task.objects.get(pk="DEV-1").lease_expires_at - timezone.now()).total_seconds()
    assert left > settings.PODBOARD_LEASE_SECONDS - 10


# Announcements ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_every_rule_announces_after_commit(make_task, pods, published):
    make_task("DEV-1", handoff_mode="sync")
    make_task("QA-1", pod="QAPod", depends_on=["DEV-1"])
    workflow.claim_next(pod=pods["DevPod"], instance="DevPod#1")
    workflow.complete(task_id="DEV-1", instance="DevPod#1")
    kinds = [[e.kind for e in batch] for batch in published]
    # One announcement per rule, carrying every Event the rule wrote.
    assert kinds == [["claimed"], ["handoff", "completed"]]
    assert all(e.id for batch in published for e in batch)


@pytest.mark.django_db(transaction=True)
def test_refused_change_announces_nothing(make_task, published):
    make_task("PROD-1", pod="ProductPod")
    make_task("DEV-1", depends_on=["PROD-1"])
    with pytest.raises(RuleError):
        workflow.activate(task_id="DEV-1")
    assert published == []


def test_create_task_refuses_unknown_dependency(pods):
    with pytest.raises(RuleError) as err:
        workflow.create_task(id="DEV-1", title="x", pod_owner=pods["DevPod"], depends_on=["NOPE"])
    assert err.value.code == "validation_error"
    assert not Task.objects.exists()


def test_create_task_refuses_a_bad_id(pods):
    with pytest.raises(RuleError) as err:
        workflow.create_task(id="../etc", title="x", pod_owner=pods["DevPod"])
    assert status_for(err.value) == 422


def test_move_between_two_cards_orders_the_column_and_next_follows_it(make_task, pods):
    for tid in ("DEV-A", "DEV-B", "DEV-C"):
        make_task(tid)
    moved = workflow.move(task_id="DEV-C", actor="lead", after_id="DEV-A", before_id="DEV-B")
    order = list(Task.objects.filter(status="ready").order_by("position", "created_at"))
    assert [t.pk for t in order] == ["DEV-A", "DEV-C", "DEV-B"]
    assert moved.position == Task.objects.get(pk="DEV-C").position
    claims = [workflow.claim_next(pod=pods["DevPod"], instance=f"I{i}").task.pk for i in range(3)]
    assert claims == ["DEV-A", "DEV-C", "DEV-B"]


def test_refused_move_leaves_the_order_untouched(make_task):
    make_task("PROD-1", pod="ProductPod")
    for tid in ("DEV-A", "DEV-B"):
        make_task(tid)
    make_task("DEV-X", depends_on=["PROD-1"])
    with pytest.raises(RuleError):
        workflow.move(
            task_id="DEV-X", actor="lead", to_status="active", after_id="DEV-A", before_id="DEV-B"
        )
    assert set(Task.objects.values_list("position", flat=True)) == {0.0}


def test_trace_with_new_tokens_gives_the_card_a_new_version(make_task):
    make_task("DEV-1")
    started = workflow.start(task_id="DEV-1", instance="DevPod#1").task
    workflow.trace(task_id="DEV-1", instance="DevPod#1", token_count=4200)
    task = Task.objects.get(pk="DEV-1")
    assert (task.token_count, task.version) == (4200, started.version + 1)
