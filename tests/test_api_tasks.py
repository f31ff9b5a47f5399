"""Reading and filing tasks through the API: list, get, create, and the pods list."""

import pytest

from tasks_app.models import Event, HandoffNote, Task, Thought, TraceStep
from tests.api_client import PodClient


@pytest.fixture
def dev(pod_tokens):
    return PodClient(pod_tokens["DevPod"])


def test_list_filters_by_pod_and_status_highest_priority_first(dev, make_task):
    make_task("DEV-1", priority=1)
    make_task("DEV-2", priority=5)
    make_task("DEV-3", status="done")
    make_task("QA-1", pod="QAPod")

    status, body = dev.get("/api/tasks", pod="DevPod", status="ready")

    assert status == 200
    assert [t["id"] for t in body["items"]] == ["DEV-2", "DEV-1"]
    assert (body["count"], body["limit"], body["offset"]) == (2, 50, 0)


def test_list_is_paginated(dev, make_task):
    for i in range(5):
        make_task(f"DEV-{i}", priority=10 - i)
    status, body = dev.get("/api/tasks", limit=2, offset=2)
    assert status == 200
    assert [t["id"] for t in body["items"]] == ["DEV-2", "DEV-3"]
    assert body["count"] == 5


def test_list_refuses_a_limit_over_500(dev, pods):
    status, body = dev.get("/api/tasks", limit=501)
    assert (status, body["code"]) == (422, "validation_error")
    assert body["errors"][0]["field"] == "limit"


def test_list_refuses_an_unknown_status(dev, pods):
    status, body = dev.get("/api/tasks", status="doing")
    assert (status, body["errors"][0]["field"]) == (422, "status")


def test_any_token_reads_any_pods_task_with_notes_and_trace(pod_tokens, make_task):
    make_task("DEV-1", status="done", reasoning_summary="Did it.")
    make_task("QA-1", pod="QAPod", depends_on=["DEV-1"])
    HandoffNote.objects.create(from_task_id="DEV-1", to_task_id="QA-1", note="Test it")
    TraceStep.objects.create(task_id="DEV-1", step=1, action="Wrote code", tokens=10)
    Thought.objects.create(task_id="DEV-1", step=1, thought="Keep it small")

    status, body = PodClient(pod_tokens["QAPod"]).get("/api/tasks/DEV-1")

    assert status == 200
    assert (body["id"], body["pod_owner"], body["status"]) == ("DEV-1", "DevPod", "done")
    assert [n["to"] for n in body["handoff_notes"]] == ["QA-1"]
    assert body["received_notes"] == []
    assert body["reasoning_trace"]["summary"] == "Did it."
    assert [s["action"] for s in body["reasoning_trace"]["steps"]] == ["Wrote code"]
    assert [t["thought"] for t in body["chain_of_thought"]] == ["Keep it small"]


def test_get_shows_a_task_blocked_by_its_dependencies(dev, make_task):
    make_task("DEV-1")
    make_task("QA-1", pod="QAPod", depends_on=["DEV-1"])
    status, body = dev.get("/api/tasks/QA-1")
    assert (body["blocked"], body["depends_on"]) == (True, ["DEV-1"])


def test_get_of_an_unknown_task_is_not_found(dev, pods):
    status, body = dev.get("/api/tasks/NOPE-1")
    assert (status, body["code"]) == (404, "not_found")


def test_create_files_a_ready_task_for_another_pod(pod_tokens, make_task):
    make_task("DEV-1")
    product = PodClient(pod_tokens["ProductPod"])

    status, body = product.post(
        "/api/tasks",
        {
            "id": "DEV-2",
            "title": "Add sign-out",
            "pod_owner": "DevPod",
            "task_type": "build",
            "priority": 3,
            "handoff_mode": "auto",
            "depends_on": ["DEV-1"],
            "handoff_from": "DEV-1",
            "prompt": "Add a sign-out button.",
            "inputs": {"spec": "docs/spec.md", "nested": {"ok": [1, 2.5, None]}},
        },
    )

    assert status == 201
    assert body["id"] == "DEV-2"
    assert (body["status"], body["blocked"], body["depends_on"]) == ("ready", True, ["DEV-1"])
    task = Task.objects.get(pk="DEV-2")
    assert (task.pod_owner.name, task.priority, task.handoff_mode) == ("DevPod", 3, "auto")
    assert task.inputs == {"spec": "docs/spec.md", "nested": {"ok": [1, 2.5, None]}}
    assert Event.objects.get(task=task, kind="created").actor.startswith("ProductPod token")


def test_create_with_a_taken_id_is_a_conflict(dev, make_task):
    make_task("DEV-1", title="Original")
    status, body = dev.post("/api/tasks", {"id": "DEV-1", "title": "Dup", "pod_owner": "DevPod"})
    assert (status, body["code"]) == (409, "conflict")
    assert Task.objects.get(pk="DEV-1").title == "Original"


def test_create_for_an_unknown_pod_is_a_validation_error(dev, pods):
    status, body = dev.post("/api/tasks", {"id": "X-1", "title": "x", "pod_owner": "NoPod"})
    assert (status, body["code"]) == (422, "validation_error")
    assert not Task.objects.filter(pk="X-1").exists()


def test_create_with_an_unknown_dependency_is_a_validation_error(dev, pods):
    status, body = dev.post(
        "/api/tasks",
        {"id": "DEV-9", "title": "x", "pod_owner": "DevPod", "depends_on": ["GHOST-1"]},
    )
    assert (status, body["code"]) == (422, "validation_error")
    assert "GHOST-1" in body["detail"]
    assert not Task.objects.filter(pk="DEV-9").exists()


def test_create_depending_on_itself_is_a_validation_error(dev, pods):
    status, body = dev.post(
        "/api/tasks", {"id": "DEV-9", "title": "x", "pod_owner": "DevPod", "depends_on": ["DEV-9"]}
    )
    assert (status, body["code"]) == (422, "validation_error")
    assert not Task.objects.filter(pk="DEV-9").exists()


def test_create_with_a_bad_id_names_the_field(dev, pods):
    status, body = dev.post("/api/tasks", {"id": "-bad id", "title": "x", "pod_owner": "DevPod"})
    assert status == 422
    assert [e["field"] for e in body["errors"]] == ["id"]


def test_pods_list_counts_tasks_per_status(dev, make_task):
    make_task("DEV-1")
    make_task("DEV-2", status="done")
    make_task("QA-1", pod="QAPod", status="active")

    status, body = dev.get("/api/pods")

    assert status == 200
    by_name = {p["name"]: p for p in body}
    assert [p["name"] for p in body] == ["ProductPod", "DevPod", "QAPod"]
    assert (by_name["DevPod"]["ready"], by_name["DevPod"]["done"]) == (1, 1)
    assert by_name["QAPod"]["active"] == 1
    assert by_name["ProductPod"]["wip_limit"] is None


def test_list_refuses_a_pod_filter_with_a_nul_byte(dev, pods):
    status, body = dev.get("/api/tasks", pod="Dev%00Pod")
    assert (status, body["errors"][0]["field"]) == (422, "pod")
