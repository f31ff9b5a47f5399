"""Pulling work through the API: next, start, activate and the trace heartbeat."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tasks_app.models import Event, HandoffNote, Task, Thought, TraceStep
from tests.api_client import PodClient


@pytest.fixture
def dev(pod_tokens):
    return PodClient(pod_tokens["DevPod"])


def fresh(task_id):
    return Task.objects.get(pk=task_id)


# next ------------------------------------------------------------------------------------------


def test_next_claims_the_best_task_and_returns_its_start_context(dev, make_task):
    prod = make_task(
        "PROD-1",
        pod="ProductPod",
        status="done",
        reasoning_summary="OAuth only.",
        outputs=[{"name": "spec", "uri": "docs/spec.md", "summary": "The spec"}],
    )
    make_task("DEV-LOW", priority=1)
    make_task("DEV-1", priority=5, depends_on=["PROD-1"], handoff_from=prod, prompt="Build it")
    HandoffNote.objects.create(from_task=prod, to_task_id="DEV-1", note="Go", mode="async")

    status, body = dev.post("/api/tasks/next", {"pod_owner": "DevPod", "instance": "DevPod#1"})

    assert status == 200
    assert body["task"]["id"] == "DEV-1"
    assert body["task"]["status"] == "active"
    assert body["task"]["claimed_by"] == "DevPod#1"
    assert body["task"]["lease_expires_at"]
    assert body["prompt"] == "Build it"
    assert body["handoff_note"]["from"] == "PROD-1"
    assert body["handoff_note"]["note"] == "Go"
    assert body["reasoning_summary"] == "OAuth only."
    assert body["linked_outputs"] == [
        {"task": "PROD-1", "name": "spec", "uri": "docs/spec.md", "summary": "The spec"}
    ]
    assert body["dependencies"] == [{"id": "PROD-1", "title": "Task PROD-1", "status": "done"}]
    assert fresh("DEV-1").claimed_by == "DevPod#1"
    assert fresh("DEV-LOW").status == "ready"


def test_next_with_nothing_to_do_answers_204_without_a_body(dev, make_task):
    make_task("DEV-1", status="done")
    response_status, body = dev.post(
        "/api/tasks/next", {"pod_owner": "DevPod", "instance": "DevPod#1"}
    )
    assert (response_status, body) == (204, None)


def test_next_from_an_instance_holding_a_task_returns_that_task(dev, make_task):
    make_task("DEV-1", priority=1)
    make_task("DEV-2", priority=9)
    status, body = dev.post("/api/tasks/DEV-1/start", {"instance": "DevPod#1"})
    assert status == 200

    status, body = dev.post("/api/tasks/next", {"pod_owner": "DevPod", "instance": "DevPod#1"})

    assert status == 200
    assert body["task"]["id"] == "DEV-1"
    assert fresh("DEV-2").status == "ready"
    assert Event.objects.filter(kind="claimed").count() == 1


def test_next_for_another_pod_is_forbidden(dev, make_task):
    make_task("QA-1", pod="QAPod")
    status, body = dev.post("/api/tasks/next", {"pod_owner": "QAPod", "instance": "DevPod#1"})
    assert status == 403
    assert body["code"] == "forbidden_pod"
    assert fresh("QA-1").status == "ready"


def test_next_for_an_unknown_pod_is_a_validation_error(dev):
    status, body = dev.post("/api/tasks/next", {"pod_owner": "NoPod", "instance": "DevPod#1"})
    assert status == 422
    assert body["code"] == "validation_error"
    assert "NoPod" in body["detail"]


def test_next_without_an_instance_names_the_missing_field(dev):
    status, body = dev.post("/api/tasks/next", {"pod_owner": "DevPod"})
    assert status == 422
    assert [e["field"] for e in body["errors"]] == ["instance"]


# start -----------------------------------------------------------------------------------------


def test_start_claims_a_ready_task_with_a_dotted_id(dev, make_task):
    make_task("DEV-101.2")
    status, body = dev.post("/api/tasks/DEV-101.2/start", {"instance": "DevPod#2"})
    assert status == 200
    assert body["task"]["id"] == "DEV-101.2"
    assert fresh("DEV-101.2").claimed_by == "DevPod#2"


def test_start_again_by_the_holder_extends_the_lease(dev, make_task):
    make_task("DEV-1")
    dev.post("/api/tasks/DEV-1/start", {"instance": "DevPod#1"})
    Task.objects.filter(pk="DEV-1").update(lease_expires_at=timezone.now() + timedelta(seconds=5))
    status, body = dev.post("/api/tasks/DEV-1/start", {"instance": "DevPod#1"})
    assert status == 200
    assert fresh("DEV-1").lease_expires_at > timezone.now() + timedelta(seconds=60)


def test_start_of_a_task_held_by_another_instance_is_claimed(dev, make_task):
    make_task("DEV-1")
    dev.post("/api/tasks/DEV-1/start", {"instance": "DevPod#1"})
    status, body = dev.post("/api/tasks/DEV-1/start", {"instance": "DevPod#2"})
    assert status == 409
    assert body["code"] == "claimed"
    assert body["claimed_by"] == "DevPod#1"
    assert fresh("DEV-1").claimed_by == "DevPod#1"


def test_start_of_a_blocked_task_is_refused(dev, make_task):
    make_task("PROD-1", pod="ProductPod")
    make_task("DEV-1", depends_on=["PROD-1"])
    status, body = dev.post("/api/tasks/DEV-1/start", {"instance": "DevPod#1"})
    assert status == 409
    assert body["code"] == "blocked"
    assert "PROD-1" in body["detail"]
    assert fresh("DEV-1").status == "ready"


def test_start_of_a_done_task_is_an_invalid_transition(dev, make_task):
    make_task("DEV-1", status="done")
    status, body = dev.post("/api/tasks/DEV-1/start", {"instance": "DevPod#1"})
    assert (status, body["code"]) == (409, "invalid_transition")


def test_start_of_an_unknown_task_is_not_found(dev, pods):
    status, body = dev.post("/api/tasks/DEV-404/start", {"instance": "DevPod#1"})
    assert (status, body["code"]) == (404, "not_found")
    assert "DEV-404" in body["detail"]


# activate --------------------------------------------------------------------------------------


def test_activate_moves_a_ready_task_to_active_held_by_nobody(dev, make_task):
    make_task("DEV-1")
    status, body = dev.post("/api/tasks/DEV-1/activate")
    assert status == 200
    assert (body["status"], body["claimed_by"]) == ("active", "")
    assert fresh("DEV-1").status == "active"
    assert Event.objects.get(task_id="DEV-1").actor.startswith("DevPod token")


def test_activate_of_a_blocked_task_is_refused(dev, make_task):
    make_task("PROD-1", pod="ProductPod")
    make_task("DEV-1", depends_on=["PROD-1"])
    status, body = dev.post("/api/tasks/DEV-1/activate")
    assert (status, body["code"]) == (409, "blocked")
    assert fresh("DEV-1").status == "ready"


def test_activate_of_a_done_task_is_an_invalid_transition(dev, make_task):
    make_task("DEV-1", status="done")
    status, body = dev.post("/api/tasks/DEV-1/activate")
    assert (status, body["code"]) == (409, "invalid_transition")


# trace -----------------------------------------------------------------------------------------


def test_trace_appends_steps_and_thoughts_and_extends_the_lease(dev, make_task):
    make_task("DEV-1")
    dev.post("/api/tasks/DEV-1/start", {"instance": "DevPod#1"})
    Task.objects.filter(pk="DEV-1").update(lease_expires_at=timezone.now() + timedelta(seconds=5))

    status, body = dev.post(
        "/api/tasks/DEV-1/trace",
        {
            "instance": "DevPod#1",
            "steps": [
                {"action": "Read the spec", "rationale": "Scope first", "tokens": 800},
                {"action": "Sketch the form", "tokens": 1200},
            ],
            "thoughts": [{"thought": "OAuth means no reset flow."}],
            "summary": "Form sketched.",
            "token_count": 2000,
        },
    )

    assert status == 200
    assert body["reasoning_summary"] == "Form sketched."
    assert body["token_count"] == 2000
    task = fresh("DEV-1")
    assert task.lease_expires_at > timezone.now() + timedelta(seconds=60)
    steps = list(TraceStep.objects.filter(task=task).values_list("step", "action", "tokens"))
    assert steps == [(1, "Read the spec", 800), (2, "Sketch the form", 1200)]
    assert list(Thought.objects.filter(task=task).values_list("step", "thought")) == [
        (1, "OAuth means no reset flow.")
    ]


def test_trace_by_another_instance_is_claimed_and_writes_nothing(dev, make_task):
    make_task("DEV-1")
    dev.post("/api/tasks/DEV-1/start", {"instance": "DevPod#1"})
    status, body = dev.post(
        "/api/tasks/DEV-1/trace", {"instance": "DevPod#2", "steps": [{"action": "x"}]}
    )
    assert (status, body["code"]) == (409, "claimed")
    assert not TraceStep.objects.exists()


def test_trace_on_a_ready_task_is_an_invalid_transition(dev, make_task):
    make_task("DEV-1")
    status, body = dev.post("/api/tasks/DEV-1/trace", {"instance": "DevPod#1"})
    assert (status, body["code"]) == (409, "invalid_transition")
