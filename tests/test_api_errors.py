"""Every API failure is JSON {code, detail} with the right status, and changes nothing."""

import json

import pytest
from django.test import override_settings

from tasks_app.models import Event, Task, TraceStep
from tests.api_client import PodClient


@pytest.fixture
def dev(pod_tokens):
    return PodClient(pod_tokens["DevPod"])


@pytest.fixture
def working(dev, make_task):
    """DEV-1, started by DevPod#1."""
    make_task("DEV-1")
    status, _ = dev.post("/api/tasks/DEV-1/start", {"instance": "DevPod#1"})
    assert status == 200
    return Task.objects.get(pk="DEV-1")


def assert_unchanged(task):
    now = Task.objects.get(pk=task.pk)
    assert (now.status, now.version, now.token_count) == (task.status, task.version, 0)
    assert not TraceStep.objects.filter(task=task).exists()


def test_an_unknown_route_under_api_is_a_json_404(dev):
    status, body = dev.get("/api/no/such/route")
    assert (status, body["code"]) == (404, "not_found")


def test_a_wrong_method_is_a_json_405_with_allow(dev):
    status, body = dev.call("DELETE", "/api/tasks/next")
    assert (status, body["code"]) == (405, "method_not_allowed")
    assert dev.last["Allow"] == "POST"


def test_malformed_json_is_a_400_bad_request(dev, working):
    status, body = dev.post("/api/tasks/DEV-1/complete", raw=b'{"instance": "DevPod#1",')
    assert (status, body["code"]) == (400, "bad_request")
    assert_unchanged(working)


def test_a_json_body_that_is_not_an_object_is_a_validation_error(dev, working):
    status, body = dev.post("/api/tasks/DEV-1/complete", raw=b"[1, 2]")
    assert (status, body["code"]) == (422, "validation_error")
    assert_unchanged(working)


@override_settings(PODBOARD_MAX_BODY_BYTES=1000)
def test_an_oversized_body_is_413_too_large(dev, working):
    status, body = dev.post(
        "/api/tasks/DEV-1/complete", {"instance": "DevPod#1", "handoff_note": "x" * 2000}
    )
    assert (status, body["code"]) == (413, "too_large")
    assert_unchanged(working)


def test_validation_errors_name_nested_field_paths(dev, working):
    status, body = dev.post(
        "/api/tasks/DEV-1/complete",
        {
            "instance": "DevPod#1",
            "reasoning_trace": {"steps": [{"action": "ok"}, {"tokens": -5}]},
            "outputs": [{"uri": "x"}],
            "token_count": "lots",
        },
    )
    assert (status, body["code"]) == (422, "validation_error")
    fields = {e["field"] for e in body["errors"]}
    assert fields == {"reasoning_trace.steps.1.tokens", "outputs.0.name", "token_count"}
    assert "reasoning_trace.steps.1.tokens" in body["detail"]
    assert_unchanged(working)


def test_an_unknown_field_is_refused_not_ignored(dev, working):
    status, body = dev.post("/api/tasks/DEV-1/complete", {"instance": "DevPod#1", "outptus": []})
    assert status == 422
    assert [e["field"] for e in body["errors"]] == ["outptus"]
    assert_unchanged(working)


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"instance": "DevPod#1", "handoff_note": "a\x00b"}, "handoff_note"),
        ({"instance": "Dev\x00Pod#1"}, "instance"),
        ({"instance": "DevPod#1", "token_count": 2**40}, "token_count"),
        ({"instance": "DevPod#1", "token_count": 10**400}, "token_count"),
        ({"instance": "DevPod#1", "reason": "r" * 65}, "reason"),
        (
            {"instance": "DevPod#1", "chain_of_thought": [{"thought": "\ud800 lone surrogate"}]},
            "chain_of_thought.0.thought",
        ),
    ],
)
def test_values_a_database_cannot_store_are_refused_at_the_schema(dev, working, payload, field):
    status, body = dev.post("/api/tasks/DEV-1/complete", payload)
    assert status == 422, body
    assert field in {e["field"] for e in body["errors"]}
    assert_unchanged(working)


@pytest.mark.parametrize(
    "inputs",
    [
        {"bad": "nul\x00"},
        {"nul\x00key": 1},
        {"n": float("nan")},
        {"deep": json.loads("[" * 30 + "]" * 30)},
    ],
)
def test_inputs_a_json_column_cannot_store_are_refused(dev, pods, inputs):
    status, body = dev.post(
        "/api/tasks", {"id": "DEV-9", "title": "t", "pod_owner": "DevPod", "inputs": inputs}
    )
    assert (status, body["code"]) == (422, "validation_error")
    assert body["errors"][0]["field"].startswith("inputs")
    assert not Task.objects.filter(pk="DEV-9").exists()


def test_a_huge_priority_is_refused(dev, pods):
    status, body = dev.post(
        "/api/tasks", {"id": "DEV-9", "title": "t", "pod_owner": "DevPod", "priority": 2**31}
    )
    assert (status, body["errors"][0]["field"]) == (422, "priority")


def test_a_path_id_outside_the_id_pattern_is_a_validation_error(dev, pods):
    status, body = dev.post("/api/tasks/%00bad/start", {"instance": "DevPod#1"})
    assert (status, body["code"]) == (422, "validation_error")
    assert body["errors"][0]["field"] == "task_id"


def test_a_refused_change_writes_no_event(dev, make_task):
    make_task("PROD-1", pod="ProductPod")
    make_task("DEV-1", depends_on=["PROD-1"])
    before = Event.objects.count()
    status, _ = dev.post("/api/tasks/DEV-1/start", {"instance": "DevPod#1"})
    assert status == 409
    assert Event.objects.count() == before
