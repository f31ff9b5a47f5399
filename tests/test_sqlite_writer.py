"""The SQLite backend's in-process writer lock and idle connections (podboard.sqlite_backend).

The threads here use their own connections to the file-backed test database, as ASGI request
threads do. Where a test must show that writers never meet inside SQLite, it sets SQLite's busy
timeout to 0 on every new connection: any contention that reached SQLite would then fail at
once with "database is locked" instead of being slept through.
"""

import threading
import time

import pytest
from django.db import OperationalError, connection, connections, transaction
from django.db.backends.signals import connection_created
from django.db.models import F

from podboard.sqlite_backend import base as backend
from tasks_app.models import Pod, Task

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite backend's own lock"),
]

JOIN_SECONDS = 60


def _lock():
    return backend.writer_lock_for(connection.settings_dict["NAME"])


def _run(target, *args):
    """Run ``target`` on a new thread with its own connections; return (thread, errors)."""
    errors = []

    def main():
        try:
            target(*args)
        except BaseException as exc:  # reported by the test
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=main)
    thread.start()
    return thread, errors


def _join(*threads):
    for thread in threads:
        thread.join(JOIN_SECONDS)
        assert not thread.is_alive(), "a thread did not finish: deadlock?"


@pytest.fixture
def no_busy_wait():
    """Make SQLite refuse instead of waiting when a write meets another one."""

    def zero_busy_timeout(sender, connection, **kwargs):
        if connection.vendor == "sqlite":
            connection.connection.execute("PRAGMA busy_timeout = 0")

    connection_created.connect(zero_busy_timeout)
    yield
    connection_created.disconnect(zero_busy_timeout)


@pytest.fixture
def seeded(pods):
    Task.objects.bulk_create(
        [Task(id=f"DEV-{i:04d}", title=f"Task {i}", pod_owner=pods["DevPod"]) for i in range(80)]
    )
    Task.objects.create(id="COUNTER", title="counter", pod_owner=pods["DevPod"])
    return pods


# (a) Concurrent writers -----------------------------------------------------------------------


def test_eight_threads_claim_and_update_without_locked_errors_or_lost_updates(seeded, no_busy_wait):
    """Claims (compare-and-set in atomic), read-modify-write and autocommit updates at once."""
    per_thread = 40
    claimed = []

    def work(name):
        for _ in range(per_thread):
            # A claim as the workflow makes it: read the candidate, then compare-and-set.
            with transaction.atomic():
                task = Task.objects.filter(claimed_by="").exclude(pk="COUNTER").first()
                if task is not None:
                    won = Task.objects.filter(pk=task.pk, claimed_by="").update(claimed_by=name)
                    if won:
                        claimed.append(task.pk)
            # Read-modify-write inside a transaction: lost if two writers interleaved.
            with transaction.atomic():
                counter = Task.objects.get(pk="COUNTER")
                counter.version += 1
                counter.save(update_fields=["version"])
            # One UPDATE in autocommit mode, outside any transaction.
            Task.objects.filter(pk="COUNTER").update(position=F("position") + 1)

    runs = [_run(work, f"DevPod#{n}") for n in range(8)]
    _join(*(thread for thread, _ in runs))

    errors = [exc for _, errs in runs for exc in errs]
    assert errors == []
    counter = Task.objects.get(pk="COUNTER")
    assert counter.version == 1 + 8 * per_thread
    assert counter.position == 8 * per_thread
    assert sorted(claimed) == sorted(set(claimed))
    assert len(claimed) == 80
    assert Task.objects.exclude(pk="COUNTER").filter(claimed_by="").count() == 0
    assert not _lock().held


# (b) Savepoints ------------------------------------------------------------------------------


def test_a_savepoint_inside_atomic_does_not_take_the_lock_again(seeded, no_busy_wait):
    done = threading.Event()

    def nested():
        with transaction.atomic():
            Task.objects.filter(pk="DEV-0000").update(title="outer")
            with transaction.atomic():  # a savepoint
                Task.objects.filter(pk="DEV-0001").update(title="inner")
            try:
                with transaction.atomic():  # a savepoint rolled back
                    Task.objects.filter(pk="DEV-0002").update(title="rolled back")
                    raise RuntimeError("undo the savepoint")
            except RuntimeError:
                pass
            Task.objects.filter(pk="DEV-0003").update(title="after")
        done.set()

    thread, errors = _run(nested)
    _join(thread)
    assert errors == []
    assert done.is_set()
    titles = dict(
        Task.objects.filter(pk__in=["DEV-0000", "DEV-0001", "DEV-0002", "DEV-0003"]).values_list(
            "pk", "title"
        )
    )
    assert titles == {
        "DEV-0000": "outer",
        "DEV-0001": "inner",
        "DEV-0002": "Task 2",
        "DEV-0003": "after",
    }
    assert not _lock().held


# (c) Exceptions ------------------------------------------------------------------------------


def test_an_exception_in_atomic_releases_the_lock(seeded, no_busy_wait):
    def fail():
        with transaction.atomic():
            Task.objects.filter(pk="DEV-0000").update(title="never")
            raise RuntimeError("boom")

    thread, errors = _run(fail)
    _join(thread)
    assert [type(e) for e in errors] == [RuntimeError]
    assert not _lock().held

    took = []

    def write():
        started = time.perf_counter()
        with transaction.atomic():
            Task.objects.filter(pk="DEV-0001").update(title="next writer")
        took.append(time.perf_counter() - started)

    thread, errors = _run(write)
    _join(thread)
    assert errors == []
    assert took[0] < 1.0
    assert Task.objects.get(pk="DEV-0000").title == "Task 0"
    assert Task.objects.get(pk="DEV-0001").title == "next writer"


def test_a_connection_closed_inside_a_transaction_releases_the_lock(seeded):
    def close_midway():
        with transaction.atomic():
            Task.objects.filter(pk="DEV-0000").update(title="never")
            assert _lock().held
            connection.close()
            raise RuntimeError("left the block after closing")

    thread, errors = _run(close_midway)
    _join(thread)
    assert [type(e) for e in errors] == [RuntimeError]
    assert not _lock().held
    assert Task.objects.get(pk="DEV-0000").title == "Task 0"


# (d) Readers ---------------------------------------------------------------------------------


def test_reads_do_not_take_the_lock(seeded, no_busy_wait):
    """While one thread holds the writer lock, other threads read without waiting for it."""
    holding, finish = threading.Event(), threading.Event()

    def hold():
        with transaction.atomic():
            Task.objects.filter(pk="DEV-0000").update(title="uncommitted")
            holding.set()
            finish.wait(JOIN_SECONDS)

    writer, writer_errors = _run(hold)
    try:
        assert holding.wait(JOIN_SECONDS)
        assert _lock().held
        seen = []

        def read_only():
            started = time.perf_counter()
            title = Task.objects.get(pk="DEV-0000").title
            names = list(Pod.objects.values_list("name", flat=True))
            seen.append((title, len(names), time.perf_counter() - started))

        readers = [_run(read_only) for _ in range(4)]
        _join(*(thread for thread, _ in readers))
        assert [e for _, errs in readers for e in errs] == []
        assert _lock().held  # still the writer's
        # The uncommitted title is not visible, and nobody waited for the writer.
        assert [(title, n) for title, n, _ in seen] == [("Task 0", 3)] * 4
        assert max(took for _, _, took in seen) < 1.0
    finally:
        finish.set()
        _join(writer)
    assert writer_errors == []
    assert not _lock().held


def test_only_statements_that_write_take_the_lock():
    assert backend.is_write("INSERT INTO t VALUES (1)")
    assert backend.is_write("  update t set a = 1")
    assert backend.is_write("DELETE FROM t")
    assert backend.is_write("REPLACE INTO t VALUES (1)")
    assert backend.is_write("BEGIN IMMEDIATE")
    assert backend.is_write("CREATE TABLE t (a)")
    assert not backend.is_write("BEGIN")
    assert not backend.is_write('SELECT "a" FROM "t"')
    assert not backend.is_write("SAVEPOINT s1")
    assert not backend.is_write("RELEASE SAVEPOINT s1")
    assert not backend.is_write("PRAGMA foreign_keys")


# The lock itself -----------------------------------------------------------------------------


def test_waiters_are_served_in_arrival_order_and_give_up_after_the_timeout():
    lock = backend.WriterLock()
    ticket = lock.acquire(1)
    assert lock.acquire(1) == ticket  # re-entrant for the holding thread
    order = []

    def wait_turn(n):
        t = lock.acquire(5)
        order.append(n)
        lock.release(t)

    threads = []
    for n in range(4):
        thread = threading.Thread(target=wait_turn, args=(n,))
        thread.start()
        threads.append(thread)
        deadline = time.monotonic() + 5
        while len(lock._waiters) < n + 1 and time.monotonic() < deadline:
            time.sleep(0.001)

    impatient = []

    def give_up():
        try:
            lock.acquire(0.05)
        except Exception as exc:
            impatient.append(exc)

    thread = threading.Thread(target=give_up)
    thread.start()
    thread.join(5)
    assert len(impatient) == 1 and "database is locked" in str(impatient[0])

    lock.release(ticket)
    lock.release(ticket)
    for thread in threads:
        thread.join(5)
    assert order == [0, 1, 2, 3]
    assert not lock.held


def test_a_stale_ticket_releases_nothing():
    lock = backend.WriterLock()
    first = lock.acquire(1)
    lock.release(first)
    second = lock.acquire(1)
    lock.release(first)
    assert lock.held
    lock.release(second)
    assert not lock.held


def test_a_lock_left_by_a_dead_thread_is_taken_over(monkeypatch):
    monkeypatch.setattr(backend, "ORPHAN_CHECK_SECONDS", 0.05)
    lock = backend.WriterLock()
    thread = threading.Thread(target=lock.acquire, args=(1,))
    thread.start()
    thread.join(5)
    assert lock.held
    ticket = lock.acquire(5)
    assert lock.held
    lock.release(ticket)
    assert not lock.held


def test_a_writer_that_waits_too_long_fails_like_sqlite(seeded):
    """The lock waits at most the database's ``timeout``, then says what SQLite would say."""
    holding, finish = threading.Event(), threading.Event()

    def hold():
        with transaction.atomic():
            Task.objects.filter(pk="DEV-0000").update(title="held")
            holding.set()
            finish.wait(JOIN_SECONDS)

    writer, _ = _run(hold)
    assert holding.wait(JOIN_SECONDS)
    failures = []

    def impatient():
        connection.ensure_connection()
        connection._writer_timeout = 0.1
        try:
            Task.objects.filter(pk="DEV-0001").update(title="too late")
        except OperationalError as exc:
            failures.append(exc)

    try:
        thread, errors = _run(impatient)
        _join(thread)
    finally:
        finish.set()
        _join(writer)
    assert errors == []
    assert len(failures) == 1 and "database is locked" in str(failures[0])
    assert not _lock().held


# Idle connections ----------------------------------------------------------------------------


def _raw_connection():
    connection.ensure_connection()
    return connection.connection


def test_a_closed_connection_is_reused_by_the_next_thread_and_never_shared(seeded):
    if not connection.settings_dict["OPTIONS"].get("idle_connections"):
        pytest.skip("idle connections are off")
    first = []
    thread, errors = _run(lambda: first.append(id(_raw_connection())))
    _join(thread)
    second = []
    thread, errors = _run(lambda: second.append(id(_raw_connection())))
    _join(thread)
    assert first == second  # handed over, not reopened

    barrier = threading.Barrier(6)
    held = []

    def hold_one():
        held.append(id(_raw_connection()))
        barrier.wait(JOIN_SECONDS)  # all six connections open at once

    runs = [_run(hold_one) for _ in range(6)]
    _join(*(thread for thread, _ in runs))
    assert [e for _, errs in runs for e in errs] == []
    assert len(set(held)) == 6


def test_a_connection_closed_inside_atomic_is_not_kept(seeded):
    if not connection.settings_dict["OPTIONS"].get("idle_connections"):
        pytest.skip("idle connections are off")
    seen = []

    def close_inside():
        with pytest.raises(RuntimeError), transaction.atomic():
            seen.append(_raw_connection())
            connection.close()
            raise RuntimeError("out")

    thread, errors = _run(close_inside)
    _join(thread)
    assert errors == []
    thread, errors = _run(lambda: seen.append(_raw_connection()))
    _join(thread)
    assert seen[0] is not seen[1]


def test_a_kept_connection_comes_back_without_its_last_users_cursors_or_snapshot(seeded):
    """A cursor left half-read would pin an old snapshot; it is closed before the hand-over."""
    if not connection.settings_dict["OPTIONS"].get("idle_connections"):
        pytest.skip("idle connections are off")
    left = {}

    def read_half_and_close():
        cursor = connection.cursor()
        cursor.execute("SELECT id, title FROM tasks_app_task ORDER BY id")
        left["row"] = cursor.fetchone()
        left["conn"] = id(connection.connection)
        connection.close()
        left["cursor"] = cursor

    thread, errors = _run(read_half_and_close)
    _join(thread)
    assert errors == []
    with pytest.raises(Exception, match="closed"):
        left["cursor"].fetchone()

    Task.objects.filter(pk="DEV-0000").update(title="changed after")
    seen = {}

    def read_again():
        seen["conn"] = id(_raw_connection())
        seen["title"] = Task.objects.get(pk="DEV-0000").title

    thread, errors = _run(read_again)
    _join(thread)
    assert errors == []
    assert seen["conn"] == left["conn"]
    assert seen["title"] == "changed after"
