"""A whole ProductPod → DevPod → QAPod delivery driven through the HTTP API only.

The tasks come from a YAML directory imported with ``tasks_app.yamlio``; from then on every
change is an API call by a pod instance: pull, start, trace, complete, scale out once,
auto-hand-off, until every task is done.
"""

from pathlib import Path

import pytest
import yaml

from tasks_app import yamlio
from tasks_app.models import HandoffNote, Pod, PodToken, Task
from tests.api_client import PodClient

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "tasks"

PODS = [
    {"name": "ProductPod", "description": "Writes specs", "order": 0},
    {"name": "DevPod", "description": "Builds", "order": 1},
    {"name": "QAPod", "description": "Tests", "order": 2, "wip_limit": 1},
]
TASKS = {
    "PROD-100": {
        "title": "Specify the sign-in form",
        "pod_owner": "ProductPod",
        "task_type": "spec",
        "priority": 2,
        "handoff_mode": "sync",
        "inputs": {"brief": "docs/brief.md"},
        "prompt": "Write the sign-in spec.\n",
    },
    "DEV-101": {
        "title": "Build the sign-in form",
        "pod_owner": "DevPod",
        "task_type": "build",
        "priority": 2,
        "handoff_mode": "auto",
        "depends_on": ["PROD-100"],
        "handoff_from": "PROD-100",
        "inputs": {"spec": "docs/auth-spec.md"},
        "prompt": "Build the form from the spec.\n",
    },
    "QA-102": {
        "title": "Test the sign-in form",
        "pod_owner": "QAPod",
        "task_type": "qa",
        "priority": 1,
        "depends_on": ["DEV-101"],
        "prompt": "Test every path.\n",
    },
}


def write_directory(root):
    root.mkdir(parents=True, exist_ok=True)
    (root / "pods.yaml").write_text(yaml.safe_dump(PODS, sort_keys=False))
    for task_id, fields in TASKS.items():
        folder = root / "tasks" / task_id
        folder.mkdir(parents=True)
        data = {"id": task_id, "status": "ready", **fields}
        (folder / "prompt.txt").write_text(data.pop("prompt"))
        (folder / "task.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return root


@pytest.fixture
def team(db, tmp_path):
    """Import the directory, then give each pod a token and a client."""
    yamlio.import_directory(write_directory(tmp_path / "delivery"), actor="test")

    return {
        pod.name: PodClient(PodToken.issue(pod=pod, label="delivery")[1])
        for pod in Pod.objects.all()
    }


def ok(answer, expected=200):
    status, body = answer
    assert status == expected, body
    return body


def pull(client, pod, instance):
    return ok(client.post("/api/tasks/next", {"pod_owner": pod, "instance": instance}))


def test_a_full_delivery_runs_through_the_api(team):
    product, dev, qa = team["ProductPod"], team["DevPod"], team["QAPod"]

    # ProductPod pulls the spec, traces, and completes it: sync mode starts DEV-101 at once.
    ctx = pull(product, "ProductPod", "ProductPod#1")
    assert ctx["task"]["id"] == "PROD-100"
    assert (ctx["prompt"], ctx["inputs"]) == (
        "Write the sign-in spec.\n",
        {"brief": "docs/brief.md"},
    )
    assert (ctx["handoff_note"], ctx["dependencies"], ctx["linked_outputs"]) == (None, [], [])
    ok(product.post("/api/tasks/PROD-100/start", {"instance": "ProductPod#1"}))
    ok(
        product.post(
            "/api/tasks/PROD-100/trace",
            {"instance": "ProductPod#1", "steps": [{"action": "Read the brief", "tokens": 800}]},
        )
    )
    done = ok(
        product.post(
            "/api/tasks/PROD-100/complete",
            {
                "instance": "ProductPod#1",
                "outputs": [{"name": "spec", "uri": "docs/auth-spec.md", "summary": "OAuth only"}],
                "handoff_note": "Spec is final. OAuth only; no passwords.",
                "reasoning_trace": {"summary": "Chose OAuth-only after the threat model."},
                "chain_of_thought": [{"thought": "Passwords add reset flows."}],
                "token_count": 9120,
            },
        )
    )
    assert done["successors"] == [{"id": "DEV-101", "status": "active", "mode": "sync"}]
    assert [c["task"]["id"] for c in done["next"]] == ["DEV-101"]
    assert (
        product.post("/api/tasks/next", {"pod_owner": "ProductPod", "instance": "ProductPod#1"})[0]
        == 204
    )

    # DevPod#1 pulls the reserved DEV-101 and runs out of context: it scales out.
    ctx = pull(dev, "DevPod", "DevPod#1")
    assert ctx["task"]["id"] == "DEV-101"
    assert ctx["task"]["claimed_by"] == "DevPod#1"
    assert ctx["handoff_note"]["from"] == "PROD-100"
    assert ctx["handoff_note"]["note"] == "Spec is final. OAuth only; no passwords."
    assert (ctx["handoff_note"]["reason"], ctx["handoff_note"]["mode"]) == ("completed", "sync")
    assert ctx["reasoning_summary"] == "Chose OAuth-only after the threat model."
    assert ctx["linked_outputs"] == [
        {"task": "PROD-100", "name": "spec", "uri": "docs/auth-spec.md", "summary": "OAuth only"}
    ]
    assert ctx["dependencies"] == [
        {"id": "PROD-100", "title": "Specify the sign-in form", "status": "done"}
    ]
    ok(
        dev.post(
            "/api/tasks/DEV-101/trace",
            {
                "instance": "DevPod#1",
                "summary": "Form built; validation left.",
                "token_count": 14800,
            },
        )
    )
    scaled = ok(
        dev.post(
            "/api/tasks/DEV-101/complete",
            {
                "instance": "DevPod#1",
                "outputs": [{"name": "form", "uri": "src/signin.tsx", "summary": "The form"}],
                "handoff_note": "Form done; client validation left.",
                "handoff_to_same_pod": True,
                "token_count": 15000,
            },
        )
    )
    assert scaled["continuation"]["id"] == "DEV-101.2"
    assert scaled["successors"] == []
    assert ok(qa.get("/api/tasks/QA-102"))["depends_on"] == ["DEV-101.2"]

    # DevPod#2 picks up the continuation, files a regression task and passes it the baton.
    ctx = pull(dev, "DevPod", "DevPod#2")
    assert ctx["task"]["id"] == "DEV-101.2"
    assert ctx["task"]["continuation_of"] == "DEV-101"
    assert (ctx["handoff_note"]["reason"], ctx["handoff_note"]["handoff_type"]) == (
        "capacity_reached",
        "scale",
    )
    assert ctx["handoff_note"]["token_count"] == 15000
    assert ctx["reasoning_summary"] == "Form built; validation left."
    assert [o["uri"] for o in ctx["linked_outputs"]] == ["src/signin.tsx"]
    ok(
        dev.post(
            "/api/tasks",
            {
                "id": "QA-103",
                "title": "Regression sweep",
                "pod_owner": "QAPod",
                "task_type": "qa",
                "prompt": "Sweep the sign-in paths.",
            },
        ),
        201,
    )
    handoff = ok(
        dev.post(
            "/api/tasks/DEV-101.2/auto_handoff",
            {"next_task_id": "QA-103", "note": "Sweep every sign-in path.", "instance": "DevPod#2"},
        )
    )
    assert (handoff["task"]["status"], handoff["task"]["handoff_from"]) == ("ready", "DEV-101.2")
    assert handoff["mode"] == "sync"
    done = ok(
        dev.post(
            "/api/tasks/DEV-101.2/complete",
            {
                "instance": "DevPod#2",
                "outputs": [{"name": "form", "uri": "src/signin.tsx", "summary": "Validated"}],
                "handoff_note": "Ready for QA.",
                "reasoning_trace": {
                    "summary": "Added validation.",
                    "steps": [{"action": "Validate"}],
                },
                "token_count": 6000,
            },
        )
    )
    # auto mode: QAPod's WIP limit is 1, so the first successor starts, the second waits.
    assert done["successors"] == [
        {"id": "QA-102", "status": "active", "mode": "sync"},
        {"id": "QA-103", "status": "ready", "mode": "async"},
    ]
    assert [c["task"]["id"] for c in done["next"]] == ["QA-102"]

    # QAPod works both off.
    ctx = pull(qa, "QAPod", "QAPod#1")
    assert ctx["task"]["id"] == "QA-102"
    assert ctx["handoff_note"]["note"] == "Ready for QA."
    assert (
        ok(qa.post("/api/tasks/QA-102/complete", {"instance": "QAPod#1", "token_count": 3000}))[
            "successors"
        ]
        == []
    )
    ctx = pull(qa, "QAPod", "QAPod#1")
    assert ctx["task"]["id"] == "QA-103"
    assert (ctx["handoff_note"]["note"], ctx["handoff_note"]["mode"]) == ("Ready for QA.", "async")
    assert ctx["reasoning_summary"] == "Added validation."
    ok(
        qa.post(
            "/api/tasks/QA-103/complete",
            {"instance": "QAPod#1", "handoff_note": "All paths pass.", "token_count": 2500},
        )
    )
    for pod, client in team.items():
        assert client.post("/api/tasks/next", {"pod_owner": pod, "instance": f"{pod}#9"})[0] == 204

    # Final state, field by field.
    tasks = {t["id"]: t for t in ok(qa.get("/api/tasks"))["items"]}
    assert sorted(tasks) == ["DEV-101", "DEV-101.2", "PROD-100", "QA-102", "QA-103"]
    expected = {
        "PROD-100": ("ProductPod#1", 9120, "Chose OAuth-only after the threat model.", None),
        "DEV-101": ("DevPod#1", 15000, "Form built; validation left.", "PROD-100"),
        "DEV-101.2": ("DevPod#2", 6000, "Added validation.", "DEV-101"),
        "QA-102": ("QAPod#1", 3000, "", None),
        "QA-103": ("QAPod#1", 2500, "", "DEV-101.2"),
    }
    for task_id, (holder, tokens, summary, baton) in expected.items():
        task = tasks[task_id]
        assert task["status"] == "done", task_id
        assert (task["claimed_by"], task["token_count"]) == (holder, tokens), task_id
        assert (task["reasoning_summary"], task["handoff_from"]) == (summary, baton), task_id
        assert task["lease_expires_at"] is None and task["completed_at"], task_id
        assert task["blocked"] is False
    assert tasks["QA-102"]["depends_on"] == ["DEV-101.2"]
    assert tasks["QA-103"]["depends_on"] == ["DEV-101.2"]
    assert tasks["DEV-101.2"]["priority"] == 2
    assert tasks["DEV-101.2"]["prompt"] == "Build the form from the spec.\n"
    assert tasks["DEV-101"]["outputs"] == [
        {"name": "form", "uri": "src/signin.tsx", "summary": "The form"}
    ]

    notes = [
        (
            n.from_task_id,
            n.to_task_id,
            n.note,
            n.reason,
            n.handoff_type,
            n.mode,
            n.token_count,
            n.author,
        )
        for n in HandoffNote.objects.order_by("created_at", "id")
    ]
    assert notes == [
        (
            "PROD-100",
            "DEV-101",
            "Spec is final. OAuth only; no passwords.",
            "completed",
            "normal",
            "sync",
            9120,
            "ProductPod#1",
        ),
        (
            "DEV-101",
            "DEV-101.2",
            "Form done; client validation left.",
            "capacity_reached",
            "scale",
            "async",
            15000,
            "DevPod#1",
        ),
        (
            "DEV-101.2",
            "QA-103",
            "Sweep every sign-in path.",
            "handoff",
            "normal",
            "sync",
            0,
            "DevPod#2",
        ),
        ("DEV-101.2", "QA-102", "Ready for QA.", "completed", "normal", "sync", 6000, "DevPod#2"),
        ("DEV-101.2", "QA-103", "Ready for QA.", "completed", "normal", "async", 6000, "DevPod#2"),
        ("QA-103", None, "All paths pass.", "completed", "normal", "async", 2500, "QAPod#1"),
    ]
    # The API's own view of the notes agrees with the database.
    detail = ok(qa.get("/api/tasks/DEV-101.2"))
    assert [(n["to"], n["mode"]) for n in detail["handoff_notes"]] == [
        ("QA-103", "sync"),
        ("QA-102", "sync"),
        ("QA-103", "async"),
    ]
    assert [s["action"] for s in detail["reasoning_trace"]["steps"]] == ["Validate"]
    assert Task.objects.exclude(status="done").count() == 0


def _example_tasks():
    return sorted((EXAMPLES / "tasks").glob("*/task.yaml")) if (EXAMPLES / "tasks").is_dir() else []


@pytest.mark.skipif(not _example_tasks(), reason="examples/tasks/ holds no tasks yet")
def test_the_example_directory_can_be_delivered_through_the_api(db):
    """Import examples/, then let one instance per pod pull and complete until all is done."""
    yamlio.import_directory(EXAMPLES, actor="test")
    clients = {p.name: PodClient(PodToken.issue(pod=p)[1]) for p in Pod.objects.all()}
    scaled, pulled, before = None, [], set(HandoffNote.objects.values_list("pk", flat=True))
    for _round in range(500):
        progressed = False
        for pod, client in clients.items():
            status, ctx = client.post("/api/tasks/next", {"pod_owner": pod, "instance": f"{pod}#1"})
            if status == 204:
                continue
            assert status == 200, ctx
            progressed = True
            task_id = ctx["task"]["id"]
            assert ctx["task"]["pod_owner"] == pod and ctx["task"]["claimed_by"] == f"{pod}#1"
            assert ctx["dependencies"] == [] or {d["status"] for d in ctx["dependencies"]} == {
                "done"
            }
            pulled.append(task_id)
            ok(
                client.post(
                    f"/api/tasks/{task_id}/trace",
                    {"instance": f"{pod}#1", "steps": [{"action": "work"}]},
                )
            )
            body = {"instance": f"{pod}#1", "handoff_note": f"{task_id} done", "token_count": 100}
            if scaled is None and pod == "DevPod":
                body["handoff_to_same_pod"], scaled = True, task_id
            answer = ok(client.post(f"/api/tasks/{task_id}/complete", body))
            assert answer["task"]["status"] == "done"
        if not progressed and not Task.objects.filter(status="active").exists():
            break
    stuck = list(Task.objects.exclude(status="done").values_list("id", "status"))
    assert stuck == []
    assert len(pulled) == len(set(pulled))
    for task_id in pulled:
        task = Task.objects.get(pk=task_id)
        pod = task.pod_owner.name
        assert (task.claimed_by, task.token_count) == (f"{pod}#1", 100), task_id
        assert task.trace_steps.filter(action="work").count() == 1, task_id
    new_notes = HandoffNote.objects.exclude(pk__in=before)
    for note in new_notes:
        assert note.note == f"{note.from_task_id} done", note
        assert (note.author, note.token_count) == (f"{note.from_task.pod_owner.name}#1", 100)
        assert note.from_task_id in pulled
    if "DevPod" in clients:
        scale = new_notes.get(handoff_type="scale")
        assert (scale.from_task_id, scale.reason, scale.mode) == (
            scaled,
            "capacity_reached",
            "async",
        )
        assert scale.to_task.handoff_from_id == scaled and scale.to_task_id in pulled
    others = new_notes.exclude(handoff_type="scale")
    assert set(others.values_list("reason", flat=True)) <= {"completed"}
