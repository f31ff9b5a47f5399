"""Many pod instances pulling from one pod through the API never share or lose a task."""

import threading
from collections import Counter

import pytest
from django.db import connection, connections

from tasks_app.models import Event, Task
from tests.api_client import PodClient

pytestmark = pytest.mark.django_db(transaction=True)


def _drain(token, instance, claimed, statuses, failures):
    """Pull and complete DevPod tasks as ``instance`` until ``next`` answers 204."""
    client = PodClient(token)
    try:
        while True:
            status, body = client.post(
                "/api/tasks/next", {"pod_owner": "DevPod", "instance": instance}
            )
            statuses.append(status)
            if status != 200:
                if status != 204:
                    failures.append(body)
                return
            task_id = body["task"]["id"]
            claimed.append((task_id, instance))
            status, body = client.post(f"/api/tasks/{task_id}/complete", {"instance": instance})
            statuses.append(status)
            if status != 200:
                failures.append(body)
                return
    finally:
        connections.close_all()


def _run(workers, token, n_tasks):
    claimed, statuses, failures = [], [], []
    threads = [
        threading.Thread(target=_drain, args=(token, f"DevPod#{i}", claimed, statuses, failures))
        for i in range(workers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert not any(t.is_alive() for t in threads)
    assert failures == []
    return claimed, statuses


def _seed(make_task, n):
    for i in range(n):
        make_task(f"DEV-{i:04d}", priority=i % 4)


def _assert_each_task_claimed_exactly_once(claimed, statuses, n):
    assert [s for s in statuses if s >= 500] == []
    assert set(statuses) <= {200, 204}
    counts = Counter(task_id for task_id, _ in claimed)
    assert [t for t, c in counts.items() if c > 1] == []
    assert len(counts) == n
    assert Task.objects.filter(status="done").count() == n
    events = Counter(Event.objects.filter(kind="claimed").values_list("task_key", flat=True))
    assert len(events) == n and set(events.values()) == {1}
    # Each task was completed by the instance that claimed it.
    holders = dict(Task.objects.values_list("id", "claimed_by"))
    assert all(holders[task_id] == instance for task_id, instance in claimed)


@pytest.mark.postgres
def test_eight_instances_on_postgresql_claim_every_task_exactly_once(make_task, pod_tokens):
    _seed(make_task, 240)
    connections.close_all()
    claimed, statuses = _run(8, pod_tokens["DevPod"], 240)
    _assert_each_task_claimed_exactly_once(claimed, statuses, 240)


@pytest.mark.skipif(
    connection.vendor != "sqlite", reason="the SQLite variant of the PostgreSQL test above"
)
def test_four_instances_on_sqlite_claim_every_task_exactly_once_and_never_see_a_5xx(
    make_task, pod_tokens
):
    _seed(make_task, 120)
    connections.close_all()
    claimed, statuses = _run(4, pod_tokens["DevPod"], 120)
    _assert_each_task_claimed_exactly_once(claimed, statuses, 120)
