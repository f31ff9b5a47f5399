"""Placing a dragged card between two neighbours: the order comes out right, and a drop near the
top of a long tied column rewrites only the cards above the drop."""

import pytest

from tasks_app import workflow
from tasks_app.models import Task
from tasks_app.ordering import carries_baton, column_order

pytestmark = pytest.mark.django_db


def ready_order(pod="DevPod"):
    return list(
        Task.objects.filter(pod_owner__name=pod, status="ready")
        .annotate(carries_baton=carries_baton())
        .order_by(*column_order("ready"))
        .values_list("pk", flat=True)
    )


def test_a_drop_in_a_long_tie_rewrites_only_the_cards_above_it(make_task):
    ids = [f"DEV-{i:03}" for i in range(200)]
    for task_id in ids:
        make_task(task_id, priority=1)
    moved = workflow.move(task_id="DEV-150", actor="lead", after_id="DEV-001", before_id="DEV-002")
    expected = [*ids[:2], "DEV-150", *(i for i in ids[2:] if i != "DEV-150")]
    assert ready_order() == expected
    assert Task.objects.filter(pk="DEV-000").values_list("position", flat=True).get() == -2.0
    assert Task.objects.filter(pk="DEV-001").values_list("position", flat=True).get() == -1.0
    assert moved.position == -0.5
    # The other 197 cards were not written.
    assert Task.objects.filter(position=0.0).count() == 197


def test_a_tie_below_spaced_cards_is_split_inside_the_gap(make_task):
    for task_id in ("DEV-A", "DEV-B", "DEV-C", "DEV-D", "DEV-E"):
        make_task(task_id, priority=1)
    Task.objects.filter(pk="DEV-A").update(position=-4.0)
    Task.objects.filter(pk="DEV-B").update(position=-3.0)
    # C, D, E share 0; E goes between C and D.
    workflow.move(task_id="DEV-E", actor="lead", after_id="DEV-C", before_id="DEV-D")
    assert ready_order() == ["DEV-A", "DEV-B", "DEV-C", "DEV-E", "DEV-D"]
    positions = dict(Task.objects.values_list("pk", "position"))
    assert positions == {
        "DEV-A": -4.0,
        "DEV-B": -3.0,
        "DEV-C": -1.5,
        "DEV-E": -0.75,
        "DEV-D": 0.0,
    }


def test_a_tie_with_a_baton_card_keeps_the_column_order(make_task):
    make_task("PROD-1", pod="ProductPod", status="done")
    for task_id in ("DEV-A", "DEV-B", "DEV-C"):
        make_task(task_id, priority=1)
    make_task("DEV-Z", priority=1, handoff_from_id="PROD-1")  # a baton sorts after fresh work
    make_task("DEV-M", priority=1)
    assert ready_order() == ["DEV-A", "DEV-B", "DEV-C", "DEV-M", "DEV-Z"]
    workflow.move(task_id="DEV-M", actor="lead", after_id="DEV-A", before_id="DEV-B")
    assert ready_order() == ["DEV-A", "DEV-M", "DEV-B", "DEV-C", "DEV-Z"]
    claims = [
        workflow.claim_next(pod=Task.objects.get(pk="DEV-A").pod_owner, instance=f"I{i}").task.pk
        for i in range(5)
    ]
    assert claims == ["DEV-A", "DEV-M", "DEV-B", "DEV-C", "DEV-Z"]


def test_positions_only_change_for_the_moved_card_when_there_is_a_gap(make_task):
    for i, task_id in enumerate(("DEV-A", "DEV-B", "DEV-C")):
        make_task(task_id, priority=1, position=float(i))
    before = dict(Task.objects.values_list("pk", "position"))
    moved = workflow.move(task_id="DEV-C", actor="lead", after_id="DEV-A", before_id="DEV-B")
    assert moved.position == 0.5
    after = dict(Task.objects.exclude(pk="DEV-C").values_list("pk", "position"))
    assert after == {k: v for k, v in before.items() if k != "DEV-C"}
