"""Lease expiry: a pod that stops heartbeating loses its task, which returns to Ready."""

import asyncio
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from tasks_app import cli
from tasks_app.management.commands import expire_leases as expire_command
from tasks_app.models import Event, HandoffNote, Task


def api(client, token, method, path, body=None):
    send = getattr(client, method)
    return send(
        path, body or {}, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )


def lease_of(task_id):
    return Task.objects.get(pk=task_id).lease_expires_at


@pytest.fixture
def claimed(client, make_task, pod_tokens, settings):
    """DEV-1 claimed by DevPod#1 through the API with a 60 s lease."""
    settings.PODBOARD_LEASE_SECONDS = 60
    make_task("DEV-1", title="Build the form")
    response = api(
        client,
        pod_tokens["DevPod"],
        "post",
        "/api/tasks/next",
        {"pod_owner": "DevPod", "instance": "DevPod#1"},
    )
    assert response.status_code == 200
    return Task.objects.get(pk="DEV-1")


def test_heartbeats_keep_the_lease_alive(client, claimed, pod_tokens, settings):
    first = claimed.lease_expires_at
    settings.PODBOARD_LEASE_SECONDS = 600  # so the extension is visible past the first lease
    response = api(
        client,
        pod_tokens["DevPod"],
        "post",
        "/api/tasks/DEV-1/trace",
        {"instance": "DevPod#1", "steps": [{"action": "Sketch", "tokens": 100}]},
    )
    assert response.status_code == 200
    assert lease_of("DEV-1") > first + timedelta(seconds=500)
    # Past the first lease but inside the extended one: nothing expires.
    assert call_command_count(now=first + timedelta(seconds=1)) == 0
    assert Task.objects.get(pk="DEV-1").claimed_by == "DevPod#1"


def test_a_pod_that_stops_heartbeating_loses_its_task(client, claimed, pod_tokens):
    after = claimed.lease_expires_at + timedelta(seconds=1)
    assert call_command_count(now=after) == 1

    task = Task.objects.get(pk="DEV-1")
    assert (task.status, task.claimed_by, task.lease_expires_at) == ("ready", "", None)
    note = HandoffNote.objects.get(to_task=task)
    assert note.reason == "stalled" and "DevPod#1" in note.note and note.author == "podboard"
    event = Event.objects.get(task=task, kind="lease_expired")
    assert (event.from_status, event.to_status, event.payload["holder"]) == (
        "active",
        "ready",
        "DevPod#1",
    )

    # The stalled instance cannot finish it any more ...
    late = api(
        client, pod_tokens["DevPod"], "post", "/api/tasks/DEV-1/complete", {"instance": "DevPod#1"}
    )
    assert late.status_code == 409
    # ... and the next instance gets it with the stalled note as its rationale.
    pulled = api(
        client,
        pod_tokens["DevPod"],
        "post",
        "/api/tasks/next",
        {"pod_owner": "DevPod", "instance": "DevPod#2"},
    )
    assert pulled.json()["task"]["id"] == "DEV-1"
    assert pulled.json()["handoff_note"]["reason"] == "stalled"


def test_tasks_without_a_lease_or_not_active_are_left_alone(make_task):
    past = timezone.now() - timedelta(minutes=5)
    make_task("DEV-1", status="active")  # activated by a human: no holder, no lease
    make_task("DEV-2", status="ready", lease_expires_at=past)
    make_task("DEV-3", status="done", lease_expires_at=past)
    assert call_command_count() == 0
    assert list(Task.objects.order_by("pk").values_list("status", flat=True)) == [
        "active",
        "ready",
        "done",
    ]


def test_expire_leases_command_reports_what_it_returned(make_task, capsys):
    past = timezone.now() - timedelta(seconds=1)
    make_task("DEV-1", status="active", claimed_by="DevPod#1", lease_expires_at=past)
    make_task("DEV-2", status="active", claimed_by="DevPod#2", lease_expires_at=past)
    call_command("expire_leases")
    assert "Returned 2 task(s)" in capsys.readouterr().out
    assert Task.objects.filter(status="ready").count() == 2


def test_expire_leases_loop_sweeps_until_interrupted(make_task, monkeypatch, capsys):
    past = timezone.now() - timedelta(seconds=1)
    make_task("DEV-1", status="active", claimed_by="DevPod#1", lease_expires_at=past)
    naps = []

    def sleep(seconds):
        naps.append(seconds)
        if len(naps) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(expire_command.time, "sleep", sleep)
    call_command("expire_leases", loop=7)
    out = capsys.readouterr().out
    assert naps == [7, 7]
    assert "Returned 1 task(s) to Ready." in out and out.rstrip().endswith("Stopped.")
    assert Task.objects.get(pk="DEV-1").status == "ready"


def test_expire_leases_loop_refuses_a_zero_interval(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("expire_leases", loop=0)


@pytest.mark.django_db(transaction=True)
def test_server_sweeper_returns_stalled_tasks_on_its_event_loop(make_task):
    past = timezone.now() - timedelta(seconds=1)
    make_task("DEV-1", status="active", claimed_by="DevPod#1", lease_expires_at=past)
    reported = []

    async def run():
        sweeper = asyncio.create_task(cli.sweep_forever(0.01, report=reported.append))
        for _ in range(300):
            await asyncio.sleep(0.01)
            if reported:
                break
        sweeper.cancel()

    asyncio.run(run())
    assert reported == [1]
    assert Task.objects.get(pk="DEV-1").status == "ready"


def call_command_count(now=None):
    from tasks_app import workflow

    return workflow.expire_leases(now=now)
