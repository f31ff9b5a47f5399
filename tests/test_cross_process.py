"""Two ASGI server processes sharing PostgreSQL and Redis: a change made through one reaches a
board connected to the other within a second."""

import asyncio
import json
import os
import time

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect

from tests.support.databases import (
    database_name,
    drop_database,
    recreate_database,
    with_database,
)
from tests.support.servers import AsgiServer, django_env, manage, run_django

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

SETUP = """
import json
from django.contrib.auth import get_user_model
from tasks_app.models import Pod, PodToken, Task
from tests.support.sessions import session_cookie_for

user = get_user_model().objects.create_user("lead", password="lead-password-1")
dev = Pod.objects.create(name="DevPod", order=1)
qa = Pod.objects.create(name="QAPod", order=2)
Task.objects.create(id="DEV-1", title="Build it", pod_owner=dev, status="active",
                    handoff_mode="sync")
Task.objects.create(id="QA-1", title="Test it", pod_owner=qa).depends_on.add("DEV-1")
_, raw = PodToken.issue(pod=dev, label="xproc")
print(json.dumps({"session": session_cookie_for(user), "token": raw}))
"""


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory):
    from django.conf import settings

    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        pytest.skip("needs Redis (REDIS_URL)")
    tmp_path = tmp_path_factory.mktemp("xproc")
    base = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres"
    assert settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    # Named after the run's own database, so runs beside each other do not share it.
    database_url = with_database(base, f"{database_name(base)}_xproc")
    recreate_database(database_url)
    env = django_env(database_url=database_url, redis_url=redis_url, DEBUG="false")
    manage("migrate", "--noinput", "-v", "0", env=env)
    secrets = json.loads(run_django(SETUP, env=env).strip().splitlines()[-1])
    servers = []
    try:
        for n in range(2):
            log_path = tmp_path / f"server-{n}.log"
            servers.append(AsgiServer(env=env, log_path=log_path).start())
        yield [server.port for server in servers], secrets
    finally:
        for server in servers:
            server.stop()
        drop_database(database_url)


async def test_board_on_server_a_sees_api_call_on_server_b_within_a_second(two_servers):
    (port_a, port_b), secrets = two_servers
    headers = {"Cookie": f"sessionid={secrets['session']}", "Origin": f"http://127.0.0.1:{port_a}"}
    async with ws_connect(
        f"ws://127.0.0.1:{port_a}/ws/board/", additional_headers=headers
    ) as board:
        await asyncio.sleep(0.3)  # let the socket join the group
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port_b}") as api:
            started = time.monotonic()
            answer = await api.post(
                "/api/tasks/DEV-1/complete",
                headers={"Authorization": f"Bearer {secrets['token']}"},
                json={"instance": "DevPod#1", "handoff_note": "Ready for QA"},
            )
            assert answer.status_code == 200, answer.text
            assert [c["task"]["id"] for c in answer.json()["next"]] == ["QA-1"]
            push = await asyncio.wait_for(board.recv(), timeout=1.0)
            elapsed = time.monotonic() - started
    assert elapsed < 1.0
    assert 'id="live-put-task-DEV-1" hx-swap-oob="afterbegin:#lane-DevPod-done"' in push
    assert 'id="live-put-task-QA-1" hx-swap-oob="beforeend:#lane-QAPod-active"' in push


async def test_socket_without_session_is_refused_by_the_server(two_servers):
    (port_a, _port_b), _secrets = two_servers
    with pytest.raises(Exception) as refused:
        async with ws_connect(
            f"ws://127.0.0.1:{port_a}/ws/board/",
            additional_headers={"Origin": f"http://127.0.0.1:{port_a}"},
        ):
            pass
    assert "403" in str(refused.value)
