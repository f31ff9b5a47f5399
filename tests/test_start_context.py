"""The start context, completed: what a pod gets from next, start and a sync completion.

The same context comes from the PostgreSQL claim statement (``next`` on PostgreSQL) and from
``StartWork.load`` (``start``, every engine): the parity test compares them on both.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from tasks_app import workflow
from tasks_app.models import Comment, HandoffNote, Pod, Task, Thought, TraceStep
from tests.api_client import PodClient


@pytest.fixture
def dev(pod_tokens):
    return PodClient(pod_tokens["DevPod"])


@pytest.fixture
def product(pod_tokens):
    return PodClient(pod_tokens["ProductPod"])


def next_for(client, pod, instance):
    return client.post("/api/tasks/next", {"pod_owner": pod, "instance": instance})


def rich_predecessor(make_task):
    """PROD-1 (done) with 25 thoughts, 25 trace steps and next steps; DEV-1 follows it."""
    prod = make_task(
        "PROD-1",
        pod="ProductPod",
        status="done",
        reasoning_summary="OAuth only.",
        outputs=[{"name": "spec", "uri": "docs/spec.md", "summary": "The spec"}],
        next_steps=["Build the form", "Add the callback"],
    )
    at = timezone.now() - timedelta(hours=1)
    Thought.objects.bulk_create(
        Thought(task=prod, step=n, thought=f"thought {n}", at=at + timedelta(seconds=n))
        for n in range(1, 26)
    )
    TraceStep.objects.bulk_create(
        TraceStep(
            task=prod, step=n, action=f"action {n}", rationale="r", tokens=n,
            author_pod="ProductPod", at=at + timedelta(seconds=n),
        )
        for n in range(1, 26)
    )  # fmt: skip
    task = make_task("DEV-1", depends_on=["PROD-1"], handoff_from=prod, token_count=1200)
    HandoffNote.objects.create(from_task=prod, to_task=task, note="Go", mode="async", why="async")
    Comment.objects.create(task=task, kind="comment", body="Mind the mobile layout", author="lead")
    Comment.objects.create(task=task, kind="question", body="Which IdP?", author="DevPod#1")
    Comment.objects.create(task=task, kind="answer", body="Google first", author="lead")
    return task


def test_next_carries_thoughts_steps_next_steps_comments_and_capacity(dev, make_task):
    rich_predecessor(make_task)
    Pod.objects.filter(name="DevPod").update(context_limit=20_000)

    status, body = next_for(dev, "DevPod", "DevPod#1")

    assert status == 200
    assert [t["step"] for t in body["chain_of_thought"]] == list(range(6, 26))
    assert body["chain_of_thought"][-1]["thought"] == "thought 25"
    assert body["chain_of_thought"][0]["at"].endswith("Z")
    assert [s["step"] for s in body["trace_steps"]] == list(range(6, 26))
    assert body["trace_steps"][0] == {
        "step": 6,
        "action": "action 6",
        "rationale": "r",
        "tokens": 6,
        "author_pod": "ProductPod",
        "at": body["trace_steps"][0]["at"],
    }
    assert body["next_steps"] == ["Build the form", "Add the callback"]
    # People's comments and answers, oldest first; the pod's own question is not repeated.
    assert [(c["kind"], c["body"]) for c in body["comments"]] == [
        ("comment", "Mind the mobile layout"),
        ("answer", "Google first"),
    ]
    assert body["capacity"] == {"limit": 20_000, "used": 1200}
    assert body["handoff_note"]["why"] == "async"


def test_next_and_start_give_the_same_context(dev, make_task):
    """On PostgreSQL ``next`` is one SQL statement and ``start`` reads with the ORM."""
    rich_predecessor(make_task)
    status, pulled = next_for(dev, "DevPod", "DevPod#1")
    assert status == 200
    status, started = dev.post("/api/tasks/DEV-1/start", {"instance": "DevPod#1"})
    assert status == 200
    for body in (pulled, started):
        body["task"].pop("lease_expires_at")
    assert pulled == started


def test_a_task_without_a_baton_gets_the_next_steps_of_the_note_writer(dev, make_task):
    make_task("PROD-1", pod="ProductPod", status="done", next_steps=["Test the happy path"])
    task = make_task("QA-1", pod="DevPod", depends_on=["PROD-1"])
    HandoffNote.objects.create(from_task_id="PROD-1", to_task=task, note="Ready", mode="async")
    status, body = next_for(dev, "DevPod", "DevPod#1")
    assert status == 200
    assert body["next_steps"] == ["Test the happy path"]
    assert body["chain_of_thought"] == [] and body["trace_steps"] == []


def test_downstream_of_a_scale_out_links_the_outputs_of_the_whole_chain(dev, pod_tokens, make_task):
    make_task("DEV-101", handoff_mode="async")
    make_task("QA-1", pod="QAPod", depends_on=["DEV-101"], handoff_from_id="DEV-101")
    dev.post("/api/tasks/DEV-101/start", {"instance": "DevPod#1"})
    status, body = dev.post(
        "/api/tasks/DEV-101/complete",
        {
            "instance": "DevPod#1",
            "handoff_to_same_pod": True,
            "outputs": [{"name": "part 1", "uri": "wip/1.md"}],
            "next_steps": ["Finish the tests"],
        },
    )
    assert status == 200
    assert body["continuation"]["id"] == "DEV-101.2"
    status, body = next_for(dev, "DevPod", "DevPod#2")
    assert body["task"]["id"] == "DEV-101.2"
    # The continuation is told what its predecessor suggested.
    assert body["next_steps"] == ["Finish the tests"]
    dev.post(
        "/api/tasks/DEV-101.2/complete",
        {"instance": "DevPod#2", "handoff_to_same_pod": True, "outputs": [{"name": "part 2"}]},
    )
    next_for(dev, "DevPod", "DevPod#3")
    status, body = dev.post(
        "/api/tasks/DEV-101.3/complete",
        {"instance": "DevPod#3", "outputs": [{"name": "part 3", "uri": "wip/3.md"}]},
    )
    assert status == 200

    qa = PodClient(pod_tokens["QAPod"])
    status, body = next_for(qa, "QAPod", "QAPod#1")

    assert body["task"]["id"] == "QA-1"
    assert [(o["task"], o["name"]) for o in body["linked_outputs"]] == [
        ("DEV-101", "part 1"),
        ("DEV-101.2", "part 2"),
        ("DEV-101.3", "part 3"),
    ]


# complete: next_steps and mode ----------------------------------------------------------------


def test_an_auto_task_starts_its_successor_by_the_mode_the_pod_chose(product, make_task):
    Pod.objects.filter(name="DevPod").update(wip_limit=5)  # auto alone would say sync
    make_task("PROD-1", pod="ProductPod", handoff_mode="auto")
    make_task("DEV-1", depends_on=["PROD-1"], handoff_from_id="PROD-1")
    product.post("/api/tasks/PROD-1/start", {"instance": "ProductPod#1"})

    status, body = product.post(
        "/api/tasks/PROD-1/complete",
        {"instance": "ProductPod#1", "mode": "async", "next_steps": ["Start with the form"]},
    )

    assert status == 200
    assert body["successors"] == [{"id": "DEV-1", "status": "ready", "mode": "async"}]
    note = HandoffNote.objects.get(to_task_id="DEV-1")
    assert (note.mode, note.why) == ("async", "auto: chosen by the pod")
    assert Task.objects.get(pk="PROD-1").next_steps == ["Start with the form"]


def test_mode_on_a_task_that_is_not_auto_is_refused(product, make_task):
    make_task("PROD-1", pod="ProductPod", handoff_mode="sync")
    product.post("/api/tasks/PROD-1/start", {"instance": "ProductPod#1"})
    status, body = product.post(
        "/api/tasks/PROD-1/complete", {"instance": "ProductPod#1", "mode": "async"}
    )
    assert (status, body["code"]) == (422, "validation_error")
    assert Task.objects.get(pk="PROD-1").status == "active"


def test_a_sync_completion_returns_the_successor_context_with_next_steps(product, make_task):
    make_task("PROD-1", pod="ProductPod", handoff_mode="sync")
    make_task("DEV-1", depends_on=["PROD-1"], handoff_from_id="PROD-1")
    product.post("/api/tasks/PROD-1/start", {"instance": "ProductPod#1"})
    status, body = product.post(
        "/api/tasks/PROD-1/complete",
        {
            "instance": "ProductPod#1",
            "next_steps": ["Read the spec"],
            "chain_of_thought": [{"thought": "Keep it small"}],
        },
    )
    assert status == 200
    (context,) = body["next"]
    assert context["next_steps"] == ["Read the spec"]
    assert [t["thought"] for t in context["chain_of_thought"]] == ["Keep it small"]
    assert context["capacity"] == {"limit": 15_000, "used": 0}


@pytest.mark.parametrize("bad", [[""], ["x" * 2001], "one step", [1]])
def test_bad_next_steps_are_a_validation_error(product, make_task, bad):
    make_task("PROD-1", pod="ProductPod")
    product.post("/api/tasks/PROD-1/start", {"instance": "ProductPod#1"})
    status, body = product.post(
        "/api/tasks/PROD-1/complete", {"instance": "ProductPod#1", "next_steps": bad}
    )
    assert (status, body["code"]) == (422, "validation_error")


# trace: capacity advice ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tokens", "advice"), [(13_499, None), (13_500, "scale_out"), (16_000, "scale_out")]
)
def test_trace_advises_scaling_out_at_ninety_percent(dev, make_task, tokens, advice):
    make_task("DEV-1")
    dev.post("/api/tasks/DEV-1/start", {"instance": "DevPod#1"})
    status, body = dev.post(
        "/api/tasks/DEV-1/trace", {"instance": "DevPod#1", "token_count": tokens}
    )
    assert status == 200
    assert body["capacity"] == {"limit": 15_000, "used": tokens, "advice": advice}


def test_trace_advice_follows_the_pods_context_limit(dev, make_task):
    Pod.objects.filter(name="DevPod").update(context_limit=1000)
    make_task("DEV-1")
    dev.post("/api/tasks/DEV-1/start", {"instance": "DevPod#1"})
    status, body = dev.post("/api/tasks/DEV-1/trace", {"instance": "DevPod#1", "token_count": 900})
    assert body["capacity"]["advice"] == "scale_out"


def test_the_pod_list_shows_context_limit_and_webhook_url_but_no_secret(dev, pods):
    Pod.objects.filter(name="DevPod").update(
        context_limit=8000, webhook_url="http://127.0.0.1:9/hook", webhook_secret="whsec_x"
    )
    status, body = dev.get("/api/pods")
    pod = next(p for p in body if p["name"] == "DevPod")
    assert (pod["context_limit"], pod["webhook_url"]) == (8000, "http://127.0.0.1:9/hook")
    assert "whsec_x" not in str(body)


def test_workflow_start_work_matches_the_shape_for_a_task_with_no_predecessor(make_task):
    make_task("DEV-1")
    work = workflow.start(task_id="DEV-1", instance="DevPod#1")
    from tasks_app.shapes import start_context

    context = start_context(work)
    assert context["chain_of_thought"] == context["trace_steps"] == context["comments"] == []
    assert context["next_steps"] == [] and context["linked_outputs"] == []
