"""Faults: a server killed mid-completion, Redis and PostgreSQL restarted under a running
server, a pod that stops heartbeating. Each leaves PodBoard consistent and able to go on.

The server runs as a real uvicorn subprocess on a port in 8500-8599. Redis and PostgreSQL
faults use private instances this test starts (ports 6390-6399 and 5490-5499), never the
shared services.
"""

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.core.management import call_command
from django.db import connection

from tasks_app import workflow
from tasks_app.models import Event, HandoffNote, Pod, Task
from tests.support.consistency import check_consistency
from tests.support.servers import AsgiServer, django_env, run_django
from tests.support.services import PrivatePostgres, PrivateRedis
from tests.support.sessions import session_cookie_for

SEQ_RE = re.compile(r'data-seq="(\d+)"')


def _test_database_url():
    s = connection.settings_dict
    host, port = s.get("HOST") or "127.0.0.1", s.get("PORT") or 5432
    return f"postgres://{s.get('USER') or 'postgres'}@{host}:{port}/{s['NAME']}"


def _bearer(raw):
    return {"Authorization": f"Bearer {raw}"}


def _assert_consistent(**kwargs):
    problems = {name: items for name, items in check_consistency(**kwargs).items() if items}
    assert problems == {}


# (a) SIGKILL in the middle of completions -----------------------------------------------------


def _seed_claimed_chains(n):
    """Create ``n`` DevPod tasks, each held by its own instance, each with a QA successor.

    Modes rotate sync/async/auto; every fifth completion will scale out instead.
    """
    dev, qa = Pod.objects.get(name="DevPod"), Pod.objects.get(name="QAPod")
    modes = ("sync", "async", "auto")
    for i in range(n):
        workflow.create_task(
            id=f"DEV-{i:03d}", title=f"build {i}", pod_owner=dev, handoff_mode=modes[i % 3]
        )
        workflow.create_task(
            id=f"QA-{i:03d}",
            title=f"check {i}",
            pod_owner=qa,
            task_type="qa",
            depends_on=[f"DEV-{i:03d}"],
            handoff_from=f"DEV-{i:03d}",
        )
        workflow.start(task_id=f"DEV-{i:03d}", instance=f"DevPod#{i}")


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_sigkill_during_completions_leaves_each_task_done_with_successors_or_untouched(
    pod_tokens, tmp_path
):
    n = 80
    _seed_claimed_chains(n)
    env = django_env(database_url=_test_database_url(), redis_url="")
    server = AsgiServer(env=env, workers=1, log_path=tmp_path / "server.log").start()
    answered, failures = {}, []
    killed = threading.Event()

    def complete(i):
        task_id = f"DEV-{i:03d}"
        body = {
            "instance": f"DevPod#{i}",
            "outputs": [{"name": "build", "uri": f"mem://{task_id}"}],
            "handoff_note": f"{task_id} built.",
            "reasoning_trace": {"summary": "ok", "steps": [{"action": "build"}]},
            "token_count": 15_000 if i % 5 == 0 else 2_000,
            "handoff_to_same_pod": i % 5 == 0,
        }
        try:
            r = httpx.post(
                f"{server.url}/api/tasks/{task_id}/complete",
                json=body,
                headers=_bearer(pod_tokens["DevPod"]),
                timeout=30,
            )
        except httpx.HTTPError as exc:
            failures.append((task_id, repr(exc)))
            return
        answered[task_id] = r.status_code

    try:
        with ThreadPoolExecutor(max_workers=12) as pool:
            futures = [pool.submit(complete, i) for i in range(n)]
            deadline = time.monotonic() + 60
            while len(answered) < 8 and time.monotonic() < deadline:
                time.sleep(0.01)
            server.kill()  # SIGKILL to the server while completions are in flight
            killed.set()
            for future in futures:
                future.result(timeout=60)
    finally:
        server.stop()

    assert killed.is_set()
    assert [code for code in answered.values() if code != 200] == []
    # Durability: every completion the server confirmed is in the database.
    confirmed = {t for t, code in answered.items() if code == 200}
    done = set(
        Task.objects.filter(id__startswith="DEV-", status="done").values_list("id", flat=True)
    )
    assert confirmed <= done
    untouched = set(
        Task.objects.filter(id__regex=r"^DEV-\d+$", status="active").values_list("id", flat=True)
    )
    assert untouched, "the kill came after every completion: nothing was in flight"
    # Atomicity: a task is either fully completed or exactly as it was.
    for task_id in untouched:
        task = Task.objects.get(pk=task_id)
        assert task.completed_at is None and task.claimed_by
        assert not HandoffNote.objects.filter(from_task=task_id).exists()
        assert not Event.objects.filter(task_key=task_id, kind__in=["completed", "scaled_out"])
        assert not Task.objects.filter(scale_root=task_id).exists()
        assert Task.objects.get(pk=task_id.replace("DEV", "QA")).status == "ready"
    _assert_consistent()
    # A done task handed off: a note to its successor (or a continuation took its place).
    for task_id in done:
        if not task_id.startswith("DEV-") or task_id.count(".") or task_id in untouched:
            continue
        i = int(task_id.split("-")[1])
        if i % 5 == 0:
            assert Task.objects.filter(scale_root=task_id, status="ready").count() == 1
            assert (
                Task.objects.get(pk=f"QA-{i:03d}")
                .depends_on.filter(pk__startswith=f"{task_id}.")
                .exists()
            )
        else:
            assert HandoffNote.objects.filter(from_task=task_id, to_task=f"QA-{i:03d}").count() == 1

    # Recovery: a new server finishes what the dead one never answered.
    with AsgiServer(env=env, workers=1, log_path=tmp_path / "server2.log") as again:

        def finish(task_id):
            i = int(task_id.split("-")[1])
            return httpx.post(
                f"{again.url}/api/tasks/{task_id}/complete",
                json={"instance": f"DevPod#{i}", "handoff_note": "after the crash"},
                headers=_bearer(pod_tokens["DevPod"]),
                timeout=30,
            )

        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(finish, sorted(untouched)))
        assert [r.text for r in answers if r.status_code != 200] == []
    assert not Task.objects.filter(id__regex=r"^DEV-\d+$").exclude(status="done").exists()
    _assert_consistent()


# (b) Redis stopped and restarted ---------------------------------------------------------------


class Board:
    """A logged-in board on a real websocket that reconnects with ``since`` like the page."""

    def __init__(self, server, session_key):
        self.server, self.session_key = server, session_key
        self.seq, self.texts, self.reconnects, self.ws = 0, [], 0, None

    def connect(self):
        from websockets.sync.client import connect

        query = f"?since={self.seq}" if self.seq else ""
        self.ws = connect(
            f"{self.server.ws_url}/ws/board/{query}",
            origin=self.server.url,
            additional_headers={"Cookie": f"sessionid={self.session_key}"},
            open_timeout=15,
        )
        return self

    def wait_for(self, needle, timeout=30.0):
        """Read messages until one mentions ``needle``; reconnect when the socket drops."""
        from websockets.exceptions import ConnectionClosed

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                text = self.ws.recv(timeout=max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            except (ConnectionClosed, OSError):
                self.reconnects += 1
                time.sleep(0.5)
                try:
                    self.connect()
                except Exception:  # noqa: BLE001 - the server may be busy; try again
                    continue
                continue
            self.texts.append(text)
            for seq in SEQ_RE.findall(text):
                self.seq = max(self.seq, int(seq))
            if needle in text:
                return True
        return False

    def close(self):
        if self.ws is not None:
            self.ws.close()


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_redis_restart_keeps_the_api_serving_and_boards_catch_up(
    make_task, pod_tokens, lead, tmp_path
):
    for i in range(1, 5):
        make_task(f"DEV-{i}")
    Event.objects.bulk_create(
        [
            Event(task_id=f"DEV-{i}", task_key=f"DEV-{i}", kind="created", to_status="ready")
            for i in range(1, 5)
        ]
    )
    session_key = session_cookie_for(lead)
    token = _bearer(pod_tokens["DevPod"])
    with PrivateRedis() as redis:
        env = django_env(database_url=_test_database_url(), redis_url=redis.url)
        with AsgiServer(env=env, workers=2, log_path=tmp_path / "server.log") as server:
            board = Board(server, session_key).connect()
            try:

                def start(task_id):
                    return httpx.post(
                        f"{server.url}/api/tasks/{task_id}/start",
                        json={"instance": "DevPod#1" if task_id == "DEV-1" else task_id},
                        headers=token,
                        timeout=30,
                    )

                assert start("DEV-1").status_code == 200
                assert board.wait_for("task-DEV-1", timeout=15)

                redis.stop()
                began = time.monotonic()
                r = start("DEV-2")
                assert r.status_code == 200, r.text
                assert httpx.get(f"{server.url}/api/pods", headers=token).status_code == 200
                assert time.monotonic() - began < 10, "the API waited on the dead Redis"

                redis.start()
                # The board learns of DEV-2, changed while Redis was down: by reconnecting
                # with ?since=… or by its own periodic catch-up.
                assert board.wait_for("task-DEV-2", timeout=30), board.texts[-3:]
                # And live pushes flow again once Redis is back.
                deadline = time.monotonic() + 30
                seen = False
                for task_id in ("DEV-3", "DEV-4"):
                    assert start(task_id).status_code == 200
                    seen = board.wait_for(f"task-{task_id}", timeout=deadline - time.monotonic())
                    if seen:
                        break
                assert seen
            finally:
                board.close()
    assert set(Task.objects.filter(status="active").values_list("id", flat=True)) >= {
        "DEV-1",
        "DEV-2",
        "DEV-3",
    }


# (c) PostgreSQL restarted ------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.slow
def test_postgres_restart_answers_503_then_recovers_by_itself(tmp_path):
    with PrivatePostgres() as pg:
        url = pg.create_database("podboard")
        env = django_env(database_url=url, redis_url="")
        raw = run_django(
            "from django.core.management import call_command\n"
            "call_command('migrate', verbosity=0)\n"
            "from tasks_app.models import Pod, PodToken, Task\n"
            "pod = Pod.objects.create(name='DevPod')\n"
            "for i in range(3):\n"
            "    Task.objects.create(id=f'DEV-{i}', title='t', pod_owner=pod)\n"
            "print(PodToken.issue(pod=pod)[1])\n",
            env=env,
        ).strip()
        headers = _bearer(raw)
        with AsgiServer(env=env, workers=1, log_path=tmp_path / "server.log") as server:

            def pull(instance):
                return httpx.post(
                    f"{server.url}/api/tasks/next",
                    json={"pod_owner": "DevPod", "instance": instance},
                    headers=headers,
                    timeout=30,
                )

            assert httpx.get(f"{server.url}/api/pods", headers=headers).status_code == 200
            assert pull("DevPod#1").status_code == 200

            pg.stop()
            for attempt in range(3):
                began = time.monotonic()
                r = pull(f"DevPod#{attempt + 2}")
                assert r.status_code == 503, r.text
                assert r.json()["code"] == "unavailable"
                assert time.monotonic() - began < 15
                r = httpx.get(f"{server.url}/api/pods", headers=headers, timeout=30)
                assert r.status_code == 503 and r.json()["code"] == "unavailable"

            pg.start()
            deadline, status = time.monotonic() + 30, None
            while time.monotonic() < deadline:
                status = httpx.get(
                    f"{server.url}/api/pods", headers=headers, timeout=30
                ).status_code
                if status == 200:
                    break
                time.sleep(0.25)
            assert status == 200
            r = pull("DevPod#9")
            assert r.status_code == 200
            task_id = r.json()["task"]["id"]
            r = httpx.post(
                f"{server.url}/api/tasks/{task_id}/complete",
                json={"instance": "DevPod#9"},
                headers=headers,
                timeout=30,
            )
            assert r.status_code == 200, r.text


# (d) A pod that stops heartbeating ----------------------------------------------------------------


def test_pod_that_stops_heartbeating_loses_its_lease_with_a_stalled_note(
    client, make_task, pod_tokens, settings
):
    settings.PODBOARD_LEASE_SECONDS = 1
    make_task("DEV-1", prompt="build it")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {pod_tokens['DevPod']}"}

    def post(path, body):
        return client.post(path, body, content_type="application/json", **auth)

    r = post("/api/tasks/next", {"pod_owner": "DevPod", "instance": "DevPod#1"})
    assert r.status_code == 200 and r.json()["task"]["id"] == "DEV-1"
    first_lease = Task.objects.get(pk="DEV-1").lease_expires_at

    # Heartbeats keep the lease alive past its original end.
    for _ in range(3):
        time.sleep(0.4)
        r = post("/api/tasks/DEV-1/trace", {"instance": "DevPod#1", "steps": [{"action": "x"}]})
        assert r.status_code == 200
        call_command("expire_leases")
    task = Task.objects.get(pk="DEV-1")
    assert task.status == "active" and task.claimed_by == "DevPod#1"
    assert task.lease_expires_at > first_lease

    # Silence: the lease runs out and the sweep hands the task back.
    time.sleep(1.3)
    call_command("expire_leases")
    task = Task.objects.get(pk="DEV-1")
    assert (task.status, task.claimed_by, task.lease_expires_at) == ("ready", "", None)
    note = HandoffNote.objects.get(from_task="DEV-1", to_task="DEV-1")
    assert note.reason == "stalled" and "DevPod#1" in note.note
    assert Event.objects.filter(task_key="DEV-1", kind="lease_expired").count() == 1
    assert task.trace_steps.count() == 3  # the work so far stays with the task

    # Another instance picks it up and is told why.
    r = post("/api/tasks/next", {"pod_owner": "DevPod", "instance": "DevPod#2"})
    assert r.status_code == 200
    assert r.json()["handoff_note"]["reason"] == "stalled"
    # The silent pod's late completion is refused; the new holder's stands.
    r = post("/api/tasks/DEV-1/complete", {"instance": "DevPod#1"})
    assert r.status_code == 409 and r.json()["code"] == "claimed"
    r = post("/api/tasks/DEV-1/complete", {"instance": "DevPod#2"})
    assert r.status_code == 200
