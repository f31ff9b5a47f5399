"""Pod tokens: bearer auth, hashing, revocation, last use, scope, and create_pod_token."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from tasks_app.models import PodToken, Task, hash_token
from tests.api_client import PodClient


def test_a_request_without_a_token_is_unauthorized(pods):
    status, body = PodClient().get("/api/tasks")
    assert (status, body["code"]) == (401, "unauthorized")
    assert "Bearer" in body["detail"]


def test_an_unknown_token_is_unauthorized(pods):
    client = PodClient("pb_not-a-real-token")
    status, body = client.get("/api/tasks")
    assert (status, body["code"]) == (401, "unauthorized")
    assert client.last["WWW-Authenticate"].startswith("Bearer")


def test_a_non_bearer_authorization_header_is_unauthorized(pod_tokens):
    client = PodClient()
    status, body = client.call(
        "GET", "/api/tasks", HTTP_AUTHORIZATION=f"Basic {pod_tokens['DevPod']}"
    )
    assert (status, body["code"]) == (401, "unauthorized")


def test_a_revoked_token_is_unauthorized(pod_tokens):
    raw = pod_tokens["DevPod"]
    PodToken.objects.filter(key_hash=hash_token(raw)).update(revoked_at=timezone.now())
    status, body = PodClient(raw).get("/api/tasks")
    assert (status, body["code"]) == (401, "unauthorized")
    assert "revoked" in body["detail"]


def test_tokens_are_stored_only_as_hashes(pod_tokens):
    raw = pod_tokens["DevPod"]
    token = PodToken.objects.get(key_hash=hash_token(raw))
    assert raw not in (token.key_hash, token.prefix)
    assert raw.startswith(token.prefix)


def test_last_use_is_recorded_at_most_once_a_minute(pod_tokens):
    raw = pod_tokens["DevPod"]
    client = PodClient(raw)
    client.get("/api/pods")
    first = PodToken.objects.get(key_hash=hash_token(raw)).last_used_at
    assert first is not None

    client.get("/api/pods")
    assert PodToken.objects.get(key_hash=hash_token(raw)).last_used_at == first

    PodToken.objects.filter(key_hash=hash_token(raw)).update(
        last_used_at=timezone.now() - timedelta(minutes=2)
    )
    client.get("/api/pods")
    assert PodToken.objects.get(key_hash=hash_token(raw)).last_used_at > first


def test_a_devpod_token_cannot_start_or_complete_a_qapod_task(pod_tokens, make_task):
    make_task("QA-1", pod="QAPod")
    dev = PodClient(pod_tokens["DevPod"])
    status, body = dev.post("/api/tasks/QA-1/start", {"instance": "DevPod#1"})
    assert (status, body["code"]) == (403, "forbidden_pod")
    status, body = dev.post("/api/tasks/QA-1/complete", {"instance": "DevPod#1"})
    assert (status, body["code"]) == (403, "forbidden_pod")
    for route in ("activate", "trace", "scale_out"):
        status, body = dev.post(
            f"/api/tasks/QA-1/{route}", {"instance": "DevPod#1"} if route != "activate" else None
        )
        assert (status, body["code"]) == (403, "forbidden_pod"), route
    task = Task.objects.get(pk="QA-1")
    assert (task.status, task.claimed_by, task.version) == ("ready", "", 1)


def test_any_pod_token_may_read_and_file_tasks_for_other_pods(pod_tokens, make_task):
    make_task("QA-1", pod="QAPod")
    dev = PodClient(pod_tokens["DevPod"])
    assert dev.get("/api/tasks/QA-1")[0] == 200
    status, _ = dev.post("/api/tasks", {"id": "QA-2", "title": "Test", "pod_owner": "QAPod"})
    assert status == 201


def test_create_pod_token_prints_a_working_token_once(pods):
    out, err = StringIO(), StringIO()
    call_command("create_pod_token", "QAPod", "--label", "qa gpt", stdout=out, stderr=err)
    raw = out.getvalue().strip()
    token = PodToken.objects.get(key_hash=hash_token(raw))
    assert (token.pod.name, token.label) == ("QAPod", "qa gpt")
    assert raw not in err.getvalue()
    assert PodClient(raw).get("/api/pods")[0] == 200


def test_create_pod_token_for_an_unknown_pod_fails_clearly(pods):
    with pytest.raises(CommandError, match="NoPod"):
        call_command("create_pod_token", "NoPod", stdout=StringIO(), stderr=StringIO())


def test_create_pod_token_revokes_by_prefix(pod_tokens):
    raw = pod_tokens["DevPod"]
    out = StringIO()
    call_command("create_pod_token", "DevPod", "--revoke", raw[:10], stdout=out)
    assert "Revoked 1" in out.getvalue()
    assert PodClient(raw).get("/api/pods")[0] == 401
