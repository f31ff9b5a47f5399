"""Where a pushed card goes: the live path's placement agrees with the board's column order."""

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from tasks_app import ordering
from tasks_app.live import changes, placement
from tasks_app.models import Status, Task

pytestmark = pytest.mark.django_db


def orm_next(task, status):
    """The card after ``task`` in its column, as the ORM orders the column."""
    column = Task.objects.filter(pod_owner_id=task.pod_owner_id, status=status)
    if status == Status.READY:
        column = column.annotate(carries_baton=ordering.carries_baton())
    ids = list(column.order_by(*ordering.column_order(status)).values_list("id", flat=True))
    at = ids.index(task.pk)
    return ids[at + 1] if at + 1 < len(ids) else None


@pytest.mark.parametrize("status", [Status.READY, Status.ACTIVE, Status.DONE])
def test_next_in_column_matches_the_column_order(make_task, status):
    rng = random.Random(status)
    now = timezone.now()
    tasks = []
    for n in range(40):
        tasks.append(
            make_task(
                f"P-{n:02d}",
                status=status,
                priority=rng.choice([0, 1, 1, 2]),
                position=rng.choice([0.0, 0.0, 1.5, 3.0]),
                started_at=now - timedelta(seconds=rng.choice([1, 2, 2, 3])),
                completed_at=now - timedelta(seconds=rng.choice([1, 2, 2, 3])),
                handoff_from_id=rng.choice([None, None, "P-00"]) if n else None,
            )
        )
    rows = {r["id"]: r for r in Task.objects.values(*changes.CARD_FIELDS)}
    for task in tasks:
        assert placement.next_in_column(rows[task.pk]) == orm_next(task, status), task.pk


def test_a_card_with_an_unknown_key_is_appended(make_task):
    make_task("A-1", status=Status.ACTIVE, started_at=None)
    make_task("A-2", status=Status.ACTIVE, started_at=timezone.now())
    row = Task.objects.values(*changes.CARD_FIELDS).get(pk="A-1")
    assert placement.next_in_column(row) is None
