"""Flow-metric rollups: the figures read from rolled-up days equal the figures computed from the
Events alone, after real rule calls spread over several days, after seeding history, and after
a rebuild; the rules themselves never write a rollup."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db.models import F
from django.utils import timezone

from tasks_app import workflow
from tasks_app.history import fill
from tasks_app.insight import rollup
from tasks_app.insight.flow import flow_metrics
from tasks_app.models import Event, FlowDay, FlowRollup, Task

WINDOWS = (1, 2, 3, 4, 7, 30)


def days_ago(days):
    """Move every Event and task ``days`` days into the past (the rules stamp now)."""
    delta = timedelta(days=days)
    Event.objects.update(created_at=F("created_at") - delta)
    Task.objects.update(created_at=F("created_at") - delta)


def stall(task_id):
    Task.objects.filter(pk=task_id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert workflow.expire_leases() == 1


@pytest.fixture
def worked(pods):
    """Rule calls on three days: three days ago PROD-1 is claimed and done (a sync baton to
    DEV-1), DEV-1 scales out to DEV-1.2, DEV-2 stalls; yesterday DEV-1.2 is done (an async
    baton to QA-1), QA-1 sends DEV-1.2 back (DEV-1.fix1, done the same day), then goes to
    review and is sent back by its reviewer; today QA-1 is approved and DEV-2 is done."""
    pods["QAPod"].review_required = True
    pods["QAPod"].save()
    create = workflow.create_task
    create(actor="lead", id="PROD-1", title="Spec", pod_owner=pods["ProductPod"])
    Task.objects.filter(pk="PROD-1").update(handoff_mode="sync")
    create(
        actor="lead",
        id="DEV-1",
        title="Build",
        pod_owner=pods["DevPod"],
        depends_on=["PROD-1"],
        handoff_from="PROD-1",
        handoff_mode="async",
    )
    create(
        actor="lead",
        id="QA-1",
        title="Test",
        pod_owner=pods["QAPod"],
        depends_on=["DEV-1"],
        handoff_from="DEV-1",
    )
    create(actor="lead", id="DEV-2", title="Other", pod_owner=pods["DevPod"])

    workflow.claim_next(pod=pods["ProductPod"], instance="P#1")
    workflow.complete(task_id="PROD-1", instance="P#1", token_count=1000)
    workflow.start(task_id="DEV-1", instance="D#1")
    workflow.scale_out(
        task_id="DEV-1", instance="D#1", reason="capacity_reached", token_count=15000
    )
    workflow.start(task_id="DEV-2", instance="D#2")
    stall("DEV-2")
    days_ago(2)

    workflow.start(task_id="DEV-1.2", instance="D#3")
    workflow.complete(task_id="DEV-1.2", instance="D#3", token_count=3000)
    workflow.start(task_id="QA-1", instance="Q#1")
    workflow.send_back(task_id="QA-1", instance="Q#1", to="DEV-1.2", findings="Fails.")
    workflow.start(task_id="DEV-1.fix1", instance="D#4")
    workflow.complete(task_id="DEV-1.fix1", instance="D#4", token_count=400)
    workflow.start(task_id="QA-1", instance="Q#1")
    workflow.complete(task_id="QA-1", instance="Q#1", token_count=2000)
    workflow.review(task_id="QA-1", verdict="changes_requested", actor="lead")
    days_ago(1)

    workflow.start(task_id="QA-1", instance="Q#2")
    workflow.complete(task_id="QA-1", instance="Q#2", token_count=2500)
    workflow.review(task_id="QA-1", verdict="approve", actor="lead")
    workflow.start(task_id="DEV-2", instance="D#5")
    workflow.complete(task_id="DEV-2", instance="D#5", token_count=700)
    return pods


def by_pod(data):
    return {p["pod"]: p for p in data["pods"]}


def assert_rollups_agree():
    for days in WINDOWS:
        assert flow_metrics(days=days) == flow_metrics(days=days, rollups=False), days


def test_rules_write_no_rollups(worked):
    assert not FlowRollup.objects.exists()
    assert not FlowDay.objects.exists()


def test_rollups_agree_with_the_events_after_rule_calls(worked):
    reference = by_pod(flow_metrics(days=7, rollups=False))
    assert [reference[p]["done"] for p in ("ProductPod", "DevPod", "QAPod")] == [1, 4, 1]
    dev, qa = reference["DevPod"], reference["QAPod"]
    assert (dev["scale_outs"], dev["stalls"], dev["send_backs"], dev["claims"]) == (1, 1, 1, 5)
    assert (qa["changes_requested"], qa["claims"]) == (1, 3)
    assert dev["tokens"]["total"] == 15000 + 3000 + 400 + 700
    assert reference["ProductPod"]["handoff_wait_s"]["sync"] == {"p50": None, "p85": None}

    rolled = by_pod(flow_metrics(days=7))
    assert rolled == reference
    closed = (rollup.live_day() - (timezone.now().date() - timedelta(days=6))).days
    assert FlowDay.objects.count() == closed
    assert FlowRollup.objects.filter(figure="done").count() >= 4
    assert_rollups_agree()


def test_a_second_read_uses_the_rollups_it_made(worked, django_assert_max_num_queries):
    first = flow_metrics(days=30)
    rows = FlowRollup.objects.count()
    with django_assert_max_num_queries(9):
        assert flow_metrics(days=30) == first
    assert FlowRollup.objects.count() == rows


def test_work_done_today_again_counts_once_on_its_latest_day(worked):
    flow_metrics(days=30)  # roll the closed days up first
    workflow.move(task_id="PROD-1", actor="lead", to_status="ready")
    workflow.start(task_id="PROD-1", instance="P#2")
    workflow.complete(task_id="PROD-1", instance="P#2")
    prod = by_pod(flow_metrics(days=7))["ProductPod"]
    assert prod["done"] == 1
    assert prod["throughput"][-1]["done"] == 1
    assert_rollups_agree()


def test_the_cumulative_flow_of_rolled_up_days_ends_in_the_tasks_now(worked):
    cfd = flow_metrics(days=5)["cfd"]
    today = [r for r in cfd if r["day"] == timezone.now().date().isoformat()]
    for row in today:
        for status in ("ready", "active", "review", "done"):
            expected = Task.objects.filter(pod_owner__name=row["pod"], status=status).count()
            assert row[status] == expected, (row["pod"], status)
    dev = [(r["ready"], r["active"], r["review"], r["done"]) for r in cfd if r["pod"] == "DevPod"]
    # Before the work; DEV-1 scaled out, DEV-1.2 and the stalled DEV-2 ready; DEV-1.2 and its
    # rework done; the same; DEV-2 done too.
    assert dev == [(0, 0, 0, 0), (2, 0, 0, 1), (2, 0, 0, 1), (1, 0, 0, 3), (0, 0, 0, 4)]


def test_seeded_history_is_rolled_up_and_agrees(pods):
    fill(count=150, days=6, seed=3)
    assert FlowDay.objects.count() >= 5
    assert_rollups_agree()


def test_events_written_into_closed_days_need_a_rebuild(worked):
    before = flow_metrics(days=7)
    Event.objects.create(
        task_key="DEV-2",
        task_id="DEV-2",
        kind="lease_expired",
        from_status="active",
        to_status="ready",
        from_pod="DevPod",
        to_pod="DevPod",
        created_at=timezone.now() - timedelta(days=3),
    )
    assert flow_metrics(days=7) == before  # the rollups do not see a write into the past
    call_command("rollup_flow", "--rebuild", "--days", "30", verbosity=0)
    assert by_pod(flow_metrics(days=7))["DevPod"]["stalls"] == 2
    assert_rollups_agree()
