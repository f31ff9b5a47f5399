"""Concurrent claimers never get the same task, on SQLite (threads) and PostgreSQL (threads and
processes). The API-level version of this proof lives in test_api_concurrency.py."""

import multiprocessing
import threading
from collections import Counter

import pytest
from django.db import connection, connections

from tasks_app import workflow
from tasks_app.models import Event, Pod, Task

pytestmark = pytest.mark.django_db(transaction=True)


def _drain(pod_name, instance, out):
    """Claim and complete until the pod's queue is empty; append claimed ids to ``out``."""
    try:
        pod = Pod.objects.get(name=pod_name)
        while True:
            work = workflow.claim_next(pod=pod, instance=instance)
            if work is None:
                return
            out.append(work.task.pk)
            workflow.complete(task_id=work.task.pk, instance=instance)
    finally:
        connections.close_all()


def _seed(make_task, n):
    for i in range(n):
        make_task(f"DEV-{i:04d}", priority=i % 3)


def _run_threads(workers, n_tasks):
    claimed, threads = [], []
    for w in range(workers):
        t = threading.Thread(target=_drain, args=("DevPod", f"DevPod#{w}", claimed))
        threads.append(t)
        t.start()
    for t in threads:
        t.join(timeout=120)
    return claimed


def _assert_each_claimed_once(claimed, n_tasks):
    counts = Counter(claimed)
    assert [tid for tid, c in counts.items() if c > 1] == []
    assert len(counts) == n_tasks
    assert Task.objects.filter(status="done").count() == n_tasks
    # Every task was claimed by exactly one instance, per the event log too.
    claims = Counter(Event.objects.filter(kind="claimed").values_list("task_key", flat=True))
    assert set(claims.values()) == {1}


def test_threads_on_this_database_never_claim_a_task_twice(make_task):
    workers = 8 if connection.vendor == "postgresql" else 4
    _seed(make_task, 120)
    claimed = _run_threads(workers, 120)
    _assert_each_claimed_once(claimed, 120)


def _close_pools():
    """Drop the connection pool: its worker threads do not survive a fork."""
    for conn in connections.all():
        if getattr(conn, "pool", None) is not None:
            conn.close_pool()
    connections.close_all()


def _process_main(instance, queue):
    _close_pools()  # never share the parent's sockets
    out = []
    _drain("DevPod", instance, out)
    queue.put(out)


@pytest.mark.postgres
def test_processes_on_postgresql_never_claim_a_task_twice(make_task):
    _seed(make_task, 200)
    _close_pools()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_process_main, args=(f"DevPod#{i}", queue)) for i in range(8)]
    for p in procs:
        p.start()
    claimed = []
    for _ in procs:
        claimed.extend(queue.get(timeout=120))
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    _assert_each_claimed_once(claimed, 200)


def test_sync_successor_is_started_once_when_two_dependencies_complete_together(make_task, pods):
    """Two pods finish the two halves a QA task waits for at the same moment: it starts once."""
    make_task("DEV-A", handoff_mode="sync", status="active", claimed_by="A")
    make_task("DEV-B", handoff_mode="sync", status="active", claimed_by="B")
    make_task("QA-1", pod="QAPod", depends_on=["DEV-A", "DEV-B"])
    barrier = threading.Barrier(2)
    results = {}

    def finish(task_id, instance):
        try:
            barrier.wait()
            results[task_id] = workflow.complete(task_id=task_id, instance=instance)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=finish, args=a) for a in (("DEV-A", "A"), ("DEV-B", "B"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    started = [work.task.pk for r in results.values() for work in r.started]
    assert started == ["QA-1"]
    assert Task.objects.get(pk="QA-1").status == "active"
