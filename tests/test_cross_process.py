"""Two ASGI server processes sharing PostgreSQL and Redis: a change made through one reaches a
board connected to the other within a second."""

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
DB_NAME = "livepb_xproc"

SETUP = """
import json
import django
django.setup()
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from tasks_app.models import Pod, PodToken, Task

user = get_user_model().objects.create_user("lead", password="lead-password-1")
session = SessionStore()
session[SESSION_KEY] = str(user.pk)
session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
session[HASH_SESSION_KEY] = user.get_session_auth_hash()
session.create()
dev = Pod.objects.create(name="DevPod", order=1)
qa = Pod.objects.create(name="QAPod", order=2)
Task.objects.create(id="DEV-1", title="Build it", pod_owner=dev, status="active",
                    handoff_mode="sync")
Task.objects.create(id="QA-1", title="Test it", pod_owner=qa).depends_on.add("DEV-1")
_, raw = PodToken.issue(pod=dev, label="xproc")
print(json.dumps({"session": session.session_key, "token": raw}))
"""


def free_ports(count, low=8300, high=8400):
    ports = []
    for port in range(low, high):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return ports
    raise RuntimeError(f"not enough free ports in {low}–{high - 1}")


def fresh_database(base_url, name):
    """Create an empty database ``name`` on the server of ``base_url``; return its URL."""
    import psycopg

    url = urlparse(base_url)
    admin = url._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return url._replace(path=f"/{name}").geturl()


def start_server(port, env, log_path):
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "podboard.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--lifespan",
            "off",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/login/", timeout=2)
            return server
        except httpx.HTTPError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise RuntimeError(
                    f"server on {port} did not start: {log_path.read_text()}"
                ) from None
            time.sleep(0.2)


def stop(server):
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory):
    from django.conf import settings

    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        pytest.skip("needs Redis (REDIS_URL)")
    tmp_path = tmp_path_factory.mktemp("xproc")
    base = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres"
    assert settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    database_url = fresh_database(base, DB_NAME)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "DJANGO_SETTINGS_MODULE": "podboard.settings",
        "PYTHONPATH": str(ROOT),
        "PODBOARD_LEASE_SWEEP_SECONDS": "3600",
        "DEBUG": "false",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    made = subprocess.run(
        [sys.executable, "-c", SETUP], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    secrets = json.loads(made.stdout.strip().splitlines()[-1])
    ports = free_ports(2)
    servers = []
    try:
        for n, port in enumerate(ports):
            servers.append(start_server(port, env, tmp_path / f"server-{n}.log"))
        yield ports, secrets
    finally:
        for server in servers:
            stop(server)


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
