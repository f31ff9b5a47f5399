"""Finishing work through the API: complete (sync, async, repeated), scale_out, auto_handoff."""

import pytest

from tasks_app.models import Event, HandoffNote, Task, Thought, TraceStep
from tests.api_client import PodClient


@pytest.fixture
def clients(pod_tokens):
    return {name: PodClient(token) for name, token in pod_tokens.items()}


def fresh(task_id):
    return Task.objects.get(pk=task_id)


def started(client, task_id, instance):
    status, body = client.post(f"/api/tasks/{task_id}/start", {"instance": instance})
    assert status == 200, body
    return body


COMPLETION = {
    "instance": "ProductPod#1",
    "outputs": [{"name": "spec", "uri": "docs/spec.md", "summary": "Final spec"}],
    "handoff_note": "Spec is final. OAuth only.",
    "reasoning_trace": {
        "summary": "Chose OAuth after the threat model.",
        "steps": [{"action": "Read the brief", "rationale": "Scope first", "tokens": 800}],
    },
    "chain_of_thought": [{"thought": "Passwords add reset flows."}],
    "token_count": 9120,
}


def test_sync_completion_starts_the_successor_and_returns_its_start_context(clients, make_task):
    make_task("PROD-1", pod="ProductPod", handoff_mode="sync")
    make_task("DEV-1", depends_on=["PROD-1"], handoff_from_id="PROD-1", prompt="Build")
    started(clients["ProductPod"], "PROD-1", "ProductPod#1")

    status, body = clients["ProductPod"].post("/api/tasks/PROD-1/complete", COMPLETION)

    assert status == 200
    assert body["task"]["status"] == "done"
    assert body["task"]["outputs"] == COMPLETION["outputs"]
    assert body["task"]["token_count"] == 9120
    assert body["successors"] == [{"id": "DEV-1", "status": "active", "mode": "sync"}]
    assert body["continuation"] is None
    assert body["repeated"] is False
    [context] = body["next"]
    assert context["task"]["id"] == "DEV-1"
    assert context["task"]["status"] == "active"
    assert context["prompt"] == "Build"
    assert context["handoff_note"]["note"] == "Spec is final. OAuth only."
    assert context["handoff_note"]["mode"] == "sync"
    assert context["handoff_note"]["author"] == "ProductPod#1"
    assert context["reasoning_summary"] == "Chose OAuth after the threat model."
    assert context["linked_outputs"][0]["uri"] == "docs/spec.md"
    prod = fresh("PROD-1")
    assert prod.reasoning_summary == "Chose OAuth after the threat model."
    assert list(TraceStep.objects.filter(task=prod).values_list("action", flat=True)) == [
        "Read the brief"
    ]
    assert list(Thought.objects.filter(task=prod).values_list("thought", flat=True)) == [
        "Passwords add reset flows."
    ]
    assert fresh("DEV-1").status == "active"


def test_async_completion_leaves_the_successor_ready(clients, make_task):
    make_task("PROD-1", pod="ProductPod", handoff_mode="async")
    make_task("DEV-1", depends_on=["PROD-1"])
    started(clients["ProductPod"], "PROD-1", "ProductPod#1")

    status, body = clients["ProductPod"].post("/api/tasks/PROD-1/complete", COMPLETION)

    assert status == 200
    assert body["successors"] == [{"id": "DEV-1", "status": "ready", "mode": "async"}]
    assert body["next"] == []
    assert fresh("DEV-1").status == "ready"


def test_repeated_completion_by_the_same_instance_answers_the_same_and_changes_nothing(
    clients, make_task
):
    make_task("PROD-1", pod="ProductPod", handoff_mode="sync")
    make_task("DEV-1", depends_on=["PROD-1"])
    started(clients["ProductPod"], "PROD-1", "ProductPod#1")
    status, first = clients["ProductPod"].post("/api/tasks/PROD-1/complete", COMPLETION)
    assert status == 200
    counts = (Event.objects.count(), HandoffNote.objects.count(), TraceStep.objects.count())
    version = fresh("PROD-1").version

    status, again = clients["ProductPod"].post("/api/tasks/PROD-1/complete", COMPLETION)

    assert status == 200
    assert again["repeated"] is True
    assert again["successors"] == first["successors"]
    assert again["task"] == first["task"]
    assert [c["task"]["id"] for c in again["next"]] == ["DEV-1"]
    assert (Event.objects.count(), HandoffNote.objects.count(), TraceStep.objects.count()) == counts
    assert fresh("PROD-1").version == version


def test_completion_by_another_instance_is_claimed(clients, make_task):
    make_task("DEV-1")
    started(clients["DevPod"], "DEV-1", "DevPod#1")
    status, body = clients["DevPod"].post("/api/tasks/DEV-1/complete", {"instance": "DevPod#2"})
    assert (status, body["code"]) == (409, "claimed")
    assert fresh("DEV-1").status == "active"


def test_completion_of_a_ready_task_is_an_invalid_transition(clients, make_task):
    make_task("DEV-1")
    status, body = clients["DevPod"].post("/api/tasks/DEV-1/complete", {"instance": "DevPod#1"})
    assert (status, body["code"]) == (409, "invalid_transition")
    assert fresh("DEV-1").status == "ready"


def test_completion_of_another_pods_task_is_forbidden(clients, make_task):
    make_task("QA-1", pod="QAPod")
    started(clients["QAPod"], "QA-1", "QAPod#1")
    status, body = clients["DevPod"].post("/api/tasks/QA-1/complete", {"instance": "QAPod#1"})
    assert (status, body["code"]) == (403, "forbidden_pod")
    assert fresh("QA-1").status == "active"


def test_completion_with_handoff_to_same_pod_creates_a_continuation(clients, make_task):
    make_task("DEV-101", priority=3, prompt="Build the form", inputs={"spec": "docs/spec.md"})
    make_task("QA-1", pod="QAPod", depends_on=["DEV-101"])
    started(clients["DevPod"], "DEV-101", "DevPod#1")

    status, body = clients["DevPod"].post(
        "/api/tasks/DEV-101/complete",
        {
            "instance": "DevPod#1",
            "handoff_to_same_pod": True,
            "handoff_note": "Form done; validation left.",
            "token_count": 15000,
        },
    )

    assert status == 200
    assert body["task"]["status"] == "done"
    assert body["successors"] == []
    cont = body["continuation"]
    assert cont["id"] == "DEV-101.2"
    assert (cont["status"], cont["pod_owner"], cont["priority"]) == ("ready", "DevPod", 3)
    assert cont["handoff_from"] == "DEV-101"
    assert cont["continuation_of"] == "DEV-101"
    note = HandoffNote.objects.get(to_task_id="DEV-101.2")
    assert (note.reason, note.handoff_type, note.token_count) == (
        "capacity_reached",
        "scale",
        15000,
    )
    assert list(fresh("QA-1").depends_on.values_list("id", flat=True)) == ["DEV-101.2"]


def test_scale_out_hands_an_active_task_to_a_continuation(clients, make_task):
    make_task("DEV-7")
    started(clients["DevPod"], "DEV-7", "DevPod#1")

    status, body = clients["DevPod"].post(
        "/api/tasks/DEV-7/scale_out",
        {"instance": "DevPod#1", "reason": "load_balancing", "token_count": 4000, "note": "Half"},
    )

    assert status == 200
    assert body["task"]["status"] == "done"
    assert body["continuation"]["id"] == "DEV-7.2"
    note = HandoffNote.objects.get(to_task_id="DEV-7.2")
    assert (note.note, note.reason, note.author) == ("Half", "load_balancing", "DevPod#1")


def test_scale_out_of_a_ready_task_is_an_invalid_transition(clients, make_task):
    make_task("DEV-7")
    status, body = clients["DevPod"].post("/api/tasks/DEV-7/scale_out", {"instance": "DevPod#1"})
    assert (status, body["code"]) == (409, "invalid_transition")
    assert not Task.objects.filter(pk="DEV-7.2").exists()


def test_auto_handoff_from_a_done_task_starts_the_next_task(clients, make_task):
    make_task("DEV-1", status="done", claimed_by="DevPod#1")
    make_task("QA-1", pod="QAPod", task_type="qa")

    status, body = clients["DevPod"].post(
        "/api/tasks/DEV-1/auto_handoff", {"next_task_id": "QA-1", "note": "Please test the form"}
    )

    assert status == 200
    assert body["task"]["id"] == "QA-1"
    assert (body["task"]["status"], body["task"]["handoff_from"]) == ("active", "DEV-1")
    assert body["task"]["depends_on"] == ["DEV-1"]
    note = HandoffNote.objects.get(to_task_id="QA-1")
    assert (note.from_task_id, note.note, note.author) == (
        "DEV-1",
        "Please test the form",
        "DevPod#1",
    )


def test_auto_handoff_from_another_pods_task_is_forbidden(clients, make_task):
    make_task("DEV-1", status="done")
    make_task("QA-1", pod="QAPod")
    status, body = clients["QAPod"].post("/api/tasks/DEV-1/auto_handoff", {"next_task_id": "QA-1"})
    assert (status, body["code"]) == (403, "forbidden_pod")
    assert fresh("QA-1").handoff_from_id is None


def test_auto_handoff_to_an_unknown_task_is_not_found(clients, make_task):
    make_task("DEV-1", status="done")
    status, body = clients["DevPod"].post(
        "/api/tasks/DEV-1/auto_handoff", {"next_task_id": "QA-404"}
    )
    assert (status, body["code"]) == (404, "not_found")
    assert "QA-404" in body["detail"]


def test_auto_handoff_that_would_close_a_cycle_is_refused(clients, make_task):
    make_task("DEV-1")
    make_task("QA-1", pod="QAPod", depends_on=["DEV-1"])
    status, body = clients["QAPod"].post("/api/tasks/QA-1/auto_handoff", {"next_task_id": "DEV-1"})
    assert (status, body["code"]) == (422, "validation_error")
    assert "cycle" in body["detail"]
    assert fresh("DEV-1").handoff_from_id is None
