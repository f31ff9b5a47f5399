"""The MCP server at /mcp/, driven with the official SDK's own client over HTTP against a real
server process (uvicorn, and daphne), and the stdio command."""

import contextlib
import json
import os
import sys

import anyio
import httpx
import pytest
from channels.db import database_sync_to_async
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tasks_app import yamlio
from tasks_app.models import HandoffNote, Pod, PodToken, Task
from tests.support.servers import ROOT, AsgiServer
from tests.support.testdb import env_on_test_database
from tests.test_api_delivery import write_directory

pytestmark = pytest.mark.django_db(transaction=True)

TOOLS = {
    "next_task", "start_task", "append_trace", "complete_task", "scale_out", "auto_handoff",
    "send_back", "ask_human", "get_task", "list_tasks",
}  # fmt: skip


@pytest.fixture(scope="module", params=["uvicorn", "daphne"])
def running_server(request, django_db_setup, django_db_blocker, tmp_path_factory):
    """One server per module and kind: the tests' data changes, the server stays."""
    log_path = tmp_path_factory.mktemp("mcp") / f"{request.param}.log"
    with AsgiServer(env=env_on_test_database(), server=request.param, log_path=log_path) as up:
        up.kind = request.param
        yield up


@pytest.fixture
def server(request, running_server):
    if running_server.kind == "daphne" and request.node.name.startswith("test_a_whole"):
        pytest.skip("the whole delivery runs once, on uvicorn")
    return running_server


class Pods:
    """One MCP session per pod, each with that pod's token."""

    def __init__(self, url, tokens):
        self.url, self.tokens, self.sessions = url, tokens, {}

    async def __aenter__(self):
        self._stack = contextlib.AsyncExitStack()
        await self._stack.__aenter__()
        for pod, token in self.tokens.items():
            http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
            await self._stack.enter_async_context(http)
            transport = streamable_http_client(self.url, http_client=http)
            self.sessions[pod] = await self._stack.enter_async_context(Client(transport))
        return self

    async def __aexit__(self, *exc):
        await self._stack.__aexit__(*exc)

    async def call(self, as_pod, tool, **arguments):
        result = await self.sessions[as_pod].call_tool(tool, arguments)
        data = json.loads(result.content[0].text)
        assert not result.is_error, (tool, data)
        assert result.structured_content == data
        return data

    async def refused(self, as_pod, tool, **arguments):
        result = await self.sessions[as_pod].call_tool(tool, arguments)
        assert result.is_error, (tool, result)
        return json.loads(result.content[0].text)


def team_tokens(tmp_path):
    yamlio.import_directory(write_directory(tmp_path / "delivery"), actor="test")
    return {pod.name: PodToken.issue(pod=pod, label="mcp")[1] for pod in Pod.objects.all()}


async def test_a_whole_delivery_runs_through_the_mcp_server(server, tmp_path):
    tokens = team_tokens(tmp_path)
    async with Pods(f"{server.url}/mcp/", tokens) as pods:
        names = {t.name for t in (await pods.sessions["DevPod"].list_tools()).tools}
        assert names == TOOLS

        ctx = await pods.call("ProductPod", "next_task", pod_owner="ProductPod",
                              instance="ProductPod#1")  # fmt: skip
        assert ctx["task"]["id"] == "PROD-100"
        await pods.call("ProductPod", "append_trace", task_id="PROD-100", instance="ProductPod#1",
                        steps=[{"action": "Read the brief", "tokens": 800}])  # fmt: skip
        done = await pods.call(
            "ProductPod", "complete_task", task_id="PROD-100", instance="ProductPod#1",
            outputs=[{"name": "spec", "uri": "docs/auth-spec.md", "summary": "OAuth only"}],
            handoff_note="Spec is final. OAuth only; no passwords.",
            reasoning_trace={"summary": "Chose OAuth-only after the threat model."},
            chain_of_thought=[{"thought": "Passwords add reset flows."}], token_count=9120,
            next_steps=["Build the form first"],
        )  # fmt: skip
        assert done["successors"] == [{"id": "DEV-101", "status": "active", "mode": "sync"}]
        assert await pods.call("ProductPod", "next_task", instance="ProductPod#1") == {"task": None}

        ctx = await pods.call("DevPod", "next_task", instance="DevPod#1", wait=5)
        assert ctx["task"]["id"] == "DEV-101"
        assert ctx["next_steps"] == ["Build the form first"]
        assert [t["thought"] for t in ctx["chain_of_thought"]] == ["Passwords add reset flows."]
        assert ctx["capacity"] == {"limit": 15_000, "used": 0}
        traced = await pods.call(
            "DevPod", "append_trace", task_id="DEV-101", instance="DevPod#1",
            summary="Form built; validation left.", token_count=14800,
        )  # fmt: skip
        assert traced["capacity"]["advice"] == "scale_out"
        scaled = await pods.call(
            "DevPod", "complete_task", task_id="DEV-101", instance="DevPod#1",
            outputs=[{"name": "form", "uri": "src/signin.tsx", "summary": "The form"}],
            handoff_note="Form done; client validation left.", handoff_to_same_pod=True,
            token_count=15000,
        )  # fmt: skip
        assert scaled["continuation"]["id"] == "DEV-101.2"

        ctx = await pods.call("DevPod", "next_task", pod_owner="DevPod", instance="DevPod#2")
        assert ctx["task"]["id"] == "DEV-101.2"
        await pods.call("DevPod", "list_tasks", pod="QAPod")
        await (pods.sessions["DevPod"]).call_tool("get_task", {"task_id": "DEV-101"})
        # Filing a task is not a tool: the API does it.
        async with httpx.AsyncClient(base_url=server.url) as api:
            filed = await api.post(
                "/api/tasks",
                headers={"Authorization": f"Bearer {tokens['DevPod']}"},
                json={"id": "QA-103", "title": "Regression sweep", "pod_owner": "QAPod",
                      "task_type": "qa", "prompt": "Sweep the sign-in paths."},
            )  # fmt: skip
            assert filed.status_code == 201
        handoff = await pods.call("DevPod", "auto_handoff", task_id="DEV-101.2",
                                  next_task_id="QA-103", note="Sweep every sign-in path.",
                                  instance="DevPod#2")  # fmt: skip
        assert handoff["mode"] == "sync"
        done = await pods.call(
            "DevPod", "complete_task", task_id="DEV-101.2", instance="DevPod#2",
            outputs=[{"name": "form", "uri": "src/signin.tsx", "summary": "Validated"}],
            handoff_note="Ready for QA.",
            reasoning_trace={"summary": "Added validation.", "steps": [{"action": "Validate"}]},
            token_count=6000,
        )  # fmt: skip
        assert done["successors"] == [
            {"id": "QA-102", "status": "active", "mode": "sync"},
            {"id": "QA-103", "status": "ready", "mode": "async"},
        ]

        ctx = await pods.call("QAPod", "next_task", instance="QAPod#1")
        assert ctx["task"]["id"] == "QA-102"
        await pods.call("QAPod", "complete_task", task_id="QA-102", instance="QAPod#1",
                        token_count=3000)  # fmt: skip
        ctx = await pods.call("QAPod", "next_task", instance="QAPod#1")
        assert ctx["task"]["id"] == "QA-103"
        await pods.call("QAPod", "complete_task", task_id="QA-103", instance="QAPod#1",
                        handoff_note="All paths pass.", token_count=2500)  # fmt: skip

    # The same final state as the API delivery (tests/test_api_delivery.py).
    expected = {
        "PROD-100": ("ProductPod#1", 9120, "Chose OAuth-only after the threat model.", None),
        "DEV-101": ("DevPod#1", 15000, "Form built; validation left.", "PROD-100"),
        "DEV-101.2": ("DevPod#2", 6000, "Added validation.", "DEV-101"),
        "QA-102": ("QAPod#1", 3000, "", None),
        "QA-103": ("QAPod#1", 2500, "", "DEV-101.2"),
    }
    for task_id, (holder, tokens_used, summary, baton) in expected.items():
        task = Task.objects.get(pk=task_id)
        assert task.status == "done", task_id
        assert (task.claimed_by, task.token_count) == (holder, tokens_used), task_id
        assert (task.reasoning_summary, task.handoff_from_id) == (summary, baton), task_id
    notes = list(
        HandoffNote.objects.order_by("created_at", "id").values_list(
            "from_task_id", "to_task_id", "reason", "mode", "author"
        )
    )
    assert notes == [
        ("PROD-100", "DEV-101", "completed", "sync", "ProductPod#1"),
        ("DEV-101", "DEV-101.2", "capacity_reached", "async", "DevPod#1"),
        ("DEV-101.2", "QA-103", "handoff", "sync", "DevPod#2"),
        ("DEV-101.2", "QA-102", "completed", "sync", "DevPod#2"),
        ("DEV-101.2", "QA-103", "completed", "async", "DevPod#2"),
        ("QA-103", None, "completed", "async", "QAPod#1"),
    ]
    assert HandoffNote.objects.exclude(author_pod="").count() == 6


async def test_refusals_carry_the_api_codes_and_the_session_survives(server, pods, make_task):
    make_task("QA-1", pod="QAPod")
    make_task("DEV-1")
    token = PodToken.issue(pod=pods["DevPod"])[1]
    async with Pods(f"{server.url}/mcp/", {"DevPod": token}) as mcp:
        nope = await mcp.refused("DevPod", "no_such_tool", x=1)
        assert (nope["code"], nope["status"]) == ("not_found", 404)
        bad = await mcp.refused("DevPod", "complete_task", task_id="DEV-1", instance=7)
        assert (bad["code"], bad["status"]) == ("validation_error", 422)
        assert bad["errors"][0]["field"] == "instance"
        missing = await mcp.refused("DevPod", "start_task", instance="DevPod#1")
        assert missing["code"] == "validation_error"
        other = await mcp.refused("DevPod", "start_task", task_id="QA-1", instance="DevPod#1")
        assert (other["code"], other["status"]) == ("forbidden_pod", 403)
        gone = await mcp.refused("DevPod", "get_task", task_id="NOPE-1")
        assert gone["code"] == "not_found"
        await mcp.call("DevPod", "start_task", task_id="DEV-1", instance="DevPod#1")
        held = await mcp.refused("DevPod", "start_task", task_id="DEV-1", instance="DevPod#2")
        assert (held["code"], held["claimed_by"]) == ("claimed", "DevPod#1")
        # Still the same session, still answering.
        listed = await mcp.call("DevPod", "list_tasks", status="active")
        assert [t["id"] for t in listed["items"]] == ["DEV-1"]


async def test_no_token_gets_401_before_any_handshake(server, pods):
    initialize = {
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "t", "version": "1"}},
    }  # fmt: skip
    async with httpx.AsyncClient(base_url=server.url) as http:
        for headers in ({}, {"Authorization": "Bearer pb_wrong"}, {"Authorization": "Basic x"}):
            answer = await http.post(
                "/mcp/", json=initialize,
                headers={"Accept": "application/json, text/event-stream", **headers},
            )  # fmt: skip
            assert answer.status_code == 401
            assert answer.json()["code"] == "unauthorized"
        token = await database_sync_to_async(lambda: PodToken.issue(pod=pods["DevPod"])[1])()
        answer = await http.post(
            "/mcp/", json=initialize,
            headers={"Accept": "application/json, text/event-stream", "Host": "evil.example",
                     "Authorization": f"Bearer {token}"},
        )  # fmt: skip
        assert answer.status_code in (400, 421)


def test_the_stdio_command_serves_the_same_tools(pods, make_task):
    make_task("DEV-1")
    token = PodToken.issue(pod=pods["DevPod"])[1]
    env = {**env_on_test_database(), "PYTHONPATH": str(ROOT)}

    async def run():
        params = StdioServerParameters(
            command=sys.executable, args=["manage.py", "mcp_stdio", "--token", token],
            env=env, cwd=str(ROOT),
        )  # fmt: skip
        async with Client(params) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert names == TOOLS
            result = await client.call_tool("next_task", {"instance": "DevPod#1"})
            assert json.loads(result.content[0].text)["task"]["id"] == "DEV-1"
            result = await client.call_tool("start_task", {"task_id": "DEV-1", "instance": "x"})
            assert result.is_error and json.loads(result.content[0].text)["code"] == "claimed"

    anyio.run(run)
    assert Task.objects.get(pk="DEV-1").claimed_by == "DevPod#1"


def test_the_stdio_command_refuses_a_bad_token(pods):
    import subprocess

    answer = subprocess.run(
        [sys.executable, "manage.py", "mcp_stdio", "--token", "pb_nope"],
        cwd=ROOT, env=env_on_test_database(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert answer.returncode != 0
    assert "not a PodBoard pod token" in answer.stderr
    assert os.path.exists(ROOT / "manage.py")
