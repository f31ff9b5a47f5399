"""Long-poll ``next``: a waiting pod holds no thread and no database connection, and gets its
task within half a second of it becoming claimable (``tasks_app.push.longpoll``)."""

import asyncio
import gc
import json
import threading
import time

import httpx
import pytest
from channels.db import database_sync_to_async as sync_to_async
from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper

from tasks_app import workflow
from tasks_app.models import Pod, PodToken, Task
from tasks_app.push.longpoll import LongPollMiddleware, Waiter, wait_seconds
from tests.api_client import PodClient

pytestmark = pytest.mark.django_db(transaction=True)


def open_connections():
    """Database connections held by Django in this process, other than this thread's own."""
    mine = connection.connection
    return [
        w
        for w in gc.get_objects()
        if issubclass(type(w), BaseDatabaseWrapper)
        and w.connection is not None
        and w.connection is not mine
    ]


@pytest.fixture
def asgi_client():
    from podboard.asgi import application

    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="http://127.0.0.1", timeout=40
    )


def pods_with_tokens(count):
    pods = [Pod(name=f"Pod{n:02d}", order=n) for n in range(count)]
    Pod.objects.bulk_create(pods)
    pods = list(Pod.objects.order_by("order"))
    return [(pod, PodToken.issue(pod=pod, label="longpoll")[1]) for pod in pods]


async def wait_next(client, pod, token, wait, instance=None):
    started = time.monotonic()
    response = await client.post(
        "/api/tasks/next",
        json={"pod_owner": pod, "instance": instance or f"{pod}#1", "wait": wait},
        headers={"Authorization": f"Bearer {token}"},
    )
    return response, started, time.monotonic()


async def test_fifty_waiting_pods_hold_nothing_and_each_gets_its_task_fast(asgi_client):
    pods = await sync_to_async(pods_with_tokens)(50)
    threads_before = threading.active_count()
    # The test's own helper threads keep theirs; the waiting requests must add none.
    connections_before = {id(w) for w in open_connections()}
    async with asgi_client as client:
        waiters = [
            asyncio.ensure_future(wait_next(client, pod.name, token, 15)) for pod, token in pods
        ]
        deadline = time.monotonic() + 15
        while Waiter.waiting < 50:  # every waiter asked once and is now waiting
            assert time.monotonic() < deadline, f"{Waiter.waiting} of 50 waiting"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # the last requests' threads wind down
        assert not any(w.done() for w in waiters)
        assert [w for w in open_connections() if id(w) not in connections_before] == []
        assert threading.active_count() <= threads_before + 2

        ready_at = {}
        for pod, _token in pods:
            await sync_to_async(workflow.create_task)(
                id=f"{pod.name}-1", title="Work", pod_owner=pod, actor="test"
            )
            ready_at[pod.name] = time.monotonic()
            await asyncio.sleep(0.01)
        results = await asyncio.gather(*waiters)

    latencies = []
    for (pod, _token), (response, _started, answered) in zip(pods, results, strict=True):
        assert response.status_code == 200, response.text
        assert response.json()["task"]["id"] == f"{pod.name}-1"
        latencies.append(answered - ready_at[pod.name])
    assert max(latencies) < 0.5, sorted(latencies)[-5:]


async def test_the_loser_of_a_race_keeps_waiting_until_its_deadline(asgi_client):
    ((pod, token),) = await sync_to_async(pods_with_tokens)(1)
    async with asgi_client as client:
        first = asyncio.ensure_future(wait_next(client, pod.name, token, 2.5, "a"))
        second = asyncio.ensure_future(wait_next(client, pod.name, token, 2.5, "b"))
        await asyncio.sleep(0.5)
        await sync_to_async(workflow.create_task)(
            id="ONLY-1", title="One task", pod_owner=pod, actor="test"
        )
        answers = await asyncio.gather(first, second)
    statuses = sorted(r.status_code for r, _s, _a in answers)
    assert statuses == [200, 204]
    loser = next(a for a in answers if a[0].status_code == 204)
    assert loser[2] - loser[1] >= 2.4  # waited its whole wait


async def test_a_task_reserved_by_a_sync_handoff_wakes_the_waiting_pod(asgi_client):
    (prod, _), (dev, dev_token) = await sync_to_async(pods_with_tokens)(2)

    def setup():
        Task.objects.create(id="P-1", title="Spec", pod_owner=prod, status="active",
                            handoff_mode="sync")  # fmt: skip
        Task.objects.create(id="D-1", title="Build", pod_owner=dev).depends_on.add("P-1")

    await sync_to_async(setup)()
    async with asgi_client as client:
        waiter = asyncio.ensure_future(wait_next(client, dev.name, dev_token, 10))
        await asyncio.sleep(0.3)
        done_at = time.monotonic()
        await sync_to_async(workflow.complete)(task_id="P-1", actor="lead")
        response, _started, answered = await waiter
    assert response.status_code == 200
    assert response.json()["task"]["id"] == "D-1"
    assert answered - done_at < 0.5


async def test_nothing_comes_in_time_gives_204_after_the_wait(asgi_client):
    ((pod, token),) = await sync_to_async(pods_with_tokens)(1)
    async with asgi_client as client:
        response, started, answered = await wait_next(client, pod.name, token, 0.6)
    assert response.status_code == 204
    assert 0.55 <= answered - started < 3


async def test_a_client_that_goes_away_claims_nothing():
    ((pod, token),) = await sync_to_async(pods_with_tokens)(1)
    calls = []

    async def api(scope, receive, send):
        calls.append(scope["path"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    body = json.dumps({"pod_owner": pod.name, "instance": "x", "wait": 20}).encode()
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.sleep(0.3)
        return {"type": "http.disconnect"}

    sent = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/tasks/next", "headers": []}
    started = time.monotonic()
    await LongPollMiddleware(api)(scope, receive, send)
    assert time.monotonic() - started < 2
    assert len(calls) == 1 and sent == []  # asked once, then stopped when the client left


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"pod_owner": "DevPod", "instance": "x", "wait": 5}, (5.0, "DevPod")),
        ({"pod_owner": "DevPod", "instance": "x", "wait": 0}, (0, None)),
        ({"pod_owner": "DevPod", "instance": "x", "wait": 31}, (0, None)),
        ({"pod_owner": "DevPod", "instance": "x", "wait": True}, (0, None)),
        ({"pod_owner": "bad pod!", "instance": "x", "wait": 5}, (0, None)),
        ([1, 2], (0, None)),
    ],
)
def test_only_a_well_formed_wait_holds_the_request(body, expected):
    assert wait_seconds(json.dumps(body).encode()) == expected


@pytest.mark.parametrize("wait", [31, -1, True, "5"])
def test_a_bad_wait_is_a_validation_error(pod_tokens, wait):
    dev = PodClient(pod_tokens["DevPod"])
    status, body = dev.post(
        "/api/tasks/next", {"pod_owner": "DevPod", "instance": "DevPod#1", "wait": wait}
    )
    assert (status, body["code"]) == (422, "validation_error")
    assert body["errors"][0]["field"] == "wait"


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_a_wait_on_one_server_process_is_woken_by_a_change_on_another(redis_url, tmp_path):
    from tests.support.servers import AsgiServer
    from tests.support.testdb import env_on_test_database

    ((pod, token),) = pods_with_tokens(1)
    env = env_on_test_database(redis_url=redis_url)
    with (
        AsgiServer(env=env, log_path=tmp_path / "a.log") as server_a,
        AsgiServer(env=env, log_path=tmp_path / "b.log") as server_b,
    ):
        headers = {"Authorization": f"Bearer {token}"}
        answer = {}

        def wait_on_a():
            answer["response"] = httpx.post(
                f"{server_a.url}/api/tasks/next", headers=headers, timeout=30,
                json={"pod_owner": pod.name, "instance": "a", "wait": 20},
            )  # fmt: skip
            answer["at"] = time.monotonic()

        waiter = threading.Thread(target=wait_on_a)
        waiter.start()
        time.sleep(1.0)
        created = httpx.post(
            f"{server_b.url}/api/tasks", headers=headers,
            json={"id": "X-1", "title": "Made on B", "pod_owner": pod.name},
        )  # fmt: skip
        made_at = time.monotonic()
        assert created.status_code == 201
        waiter.join(25)
    assert answer["response"].status_code == 200
    assert answer["response"].json()["task"]["id"] == "X-1"
    assert answer["at"] - made_at < 1.0


async def test_a_pod_at_its_wip_limit_is_woken_when_one_of_its_tasks_completes(asgi_client):
    ((pod, token),) = await sync_to_async(pods_with_tokens)(1)

    def setup():
        Pod.objects.filter(pk=pod.pk).update(wip_limit=1)
        Task.objects.create(id="W-1", title="Busy", pod_owner=pod, status="active",
                            claimed_by="other")  # fmt: skip
        Task.objects.create(id="W-2", title="Next", pod_owner=pod)

    await sync_to_async(setup)()
    async with asgi_client as client:
        waiter = asyncio.ensure_future(wait_next(client, pod.name, token, 8, "me"))
        await asyncio.sleep(0.5)
        assert not waiter.done()
        done_at = time.monotonic()
        await sync_to_async(workflow.complete)(task_id="W-1", actor="lead")
        response, _started, answered = await waiter
    assert response.status_code == 200 and response.json()["task"]["id"] == "W-2"
    assert answered - done_at < 1.0
