"""``generate_tasks N --history DAYS``: past work that the flow metrics, the cumulative flow
and the activity feed read as if the rules had recorded it."""

from collections import Counter

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tasks_app.history import fill
from tasks_app.models import Event, Pod, Task

STATUS_KINDS = ("created", "claimed", "handoff", "completed", "scaled_out", "lease_expired")


@pytest.fixture
def review_gate(pods):
    pods["DevPod"].review_required = True
    pods["DevPod"].reviewer = pods["QAPod"]
    pods["DevPod"].save()


def test_history_gives_the_flow_metrics_something_to_show(client, review_gate, pod_tokens):
    call_command("generate_tasks", "60", "--history", "5", "--seed", "1")
    response = client.get(
        "/api/metrics/flow?days=30", headers={"Authorization": f"Bearer {pod_tokens['DevPod']}"}
    )
    assert response.status_code == 200
    pods = {p["pod"]: p for p in response.json()["pods"]}
    assert list(pods) == ["ProductPod", "DevPod", "QAPod"]
    for name, figures in pods.items():
        assert figures["done"] > 0, name
        assert figures["cycle_time_s"]["p50"] > 0, name
        assert figures["lead_time_s"]["p85"] >= figures["lead_time_s"]["p50"] > 0, name
        assert figures["claims"] >= figures["done"] - figures["scale_outs"], name
        assert figures["tokens"]["total"] > 0, name
    for name in ("DevPod", "QAPod"):
        waits = pods[name]["handoff_wait_s"]
        assert waits["sync"]["p50"] is not None and waits["async"]["p50"] is not None, name
        # A sync baton reserves the task: it is claimed sooner than an async one.
        assert waits["sync"]["p50"] < waits["async"]["p50"], name
    assert sum(p["scale_outs"] for p in pods.values()) > 0
    assert sum(p["stalls"] for p in pods.values()) > 0
    assert pods["DevPod"]["changes_requested"] > 0
    assert pods["ProductPod"]["changes_requested"] == pods["QAPod"]["changes_requested"] == 0
    assert sum(p["send_backs"] for p in pods.values()) > 0
    # The cumulative flow's last day holds every task the history wrote, in its status.
    last_day = [row for row in response.json()["cfd"] if row["day"] == response.json()["to"]]
    for row in last_day:
        for status in ("ready", "active", "review", "done"):
            expected = Task.objects.filter(pod_owner__name=row["pod"], status=status).count()
            assert row[status] == expected, (row["pod"], status)


def test_every_task_is_where_its_last_event_left_it(pods):
    written = fill(count=120, days=3, seed=2)
    assert written["tasks"] == Task.objects.count()
    assert 100 <= written["tasks"] <= 140  # about the count asked for
    assert written["events"] == Event.objects.count()
    last = {}
    for key, to_status in (
        Event.objects.exclude(to_status="").order_by("id").values_list("task_key", "to_status")
    ):
        last[key] = to_status
    statuses = dict(Task.objects.values_list("id", "status"))
    assert last == statuses
    # Ids follow time, as on a board that recorded the Events one by one.
    times = list(Event.objects.order_by("id").values_list("created_at", flat=True))
    assert times == sorted(times)
    kinds = Counter(Event.objects.values_list("kind", flat=True))
    assert all(kinds[k] > 0 for k in STATUS_KINDS), kinds
    assert kinds["completed"] + kinds["scaled_out"] == Task.objects.filter(status="done").count()


def test_continuations_and_reworks_are_linked_like_the_rules_link_them(pods):
    fill(count=150, days=4, seed=3)
    cont = Task.objects.filter(scale_root__gt="").first()
    assert cont is not None
    assert cont.id.startswith(cont.scale_root + ".")
    assert cont.handoff_from_id is not None
    created = Event.objects.get(task_key=cont.id, kind="created")
    assert created.payload["continuation_of"] == cont.handoff_from_id
    scaled = Event.objects.get(kind="scaled_out", task_key=cont.handoff_from_id)
    assert scaled.payload["continuation"] == cont.id
    sent = Event.objects.filter(kind="sent_back").first()
    assert sent is not None
    fix = Task.objects.get(pk=sent.payload["rework"])
    assert fix.id.endswith(".fix1")
    assert Task.objects.get(pk=sent.task_key).depends_on.filter(pk=fix.id).exists()


def test_a_second_history_continues_the_numbering(pods):
    first = fill(count=12, days=2, seed=4)
    second = fill(count=12, days=2, seed=4)
    assert Task.objects.count() == first["tasks"] + second["tasks"]
    assert Task.objects.filter(id="PROD-H1").exists()
    assert Task.objects.filter(id=f"PROD-H{first['features'] + 1}").exists()


def test_generate_tasks_needs_a_directory_or_history(db, tmp_path):
    with pytest.raises(CommandError, match="either DIR or --history"):
        call_command("generate_tasks", "5")
    with pytest.raises(CommandError, match="either DIR or --history"):
        call_command("generate_tasks", "5", str(tmp_path), "--history", "3")
    with pytest.raises(CommandError, match="at least 1"):
        call_command("generate_tasks", "5", "--history", "0")
    assert not Task.objects.exists()


def test_demo_fills_history_before_the_examples(db, capsys):
    call_command("demo", no_serve=True, history=3)
    out = capsys.readouterr().out
    assert "Wrote 3 days of past work" in out
    assert Task.objects.filter(id__startswith="PROD-H").count() > 0
    assert Task.objects.filter(id="PROD-100").exists()
    assert Pod.objects.get(name="DevPod").review_required
    assert Event.objects.filter(kind="reviewed", task_key__startswith="DEV-H").exists()
    # The examples' Events come after the history's, in the sequence and in time.
    first_import = Event.objects.filter(kind="imported").order_by("id").first()
    assert not Event.objects.filter(id__gt=first_import.id, task_key__contains="-H").exists()
