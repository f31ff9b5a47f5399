"""The task detail page and side panel: content, sanitised Markdown, actions."""

import re

import pytest
from django.urls import reverse

from tasks_app import workflow
from tasks_app.models import Event, EventKind, HandoffNote, Status, Task, Thought, TraceStep

pytestmark = pytest.mark.django_db


@pytest.fixture
def client_lead(client, lead):
    client.force_login(lead)
    return client


@pytest.fixture
def chain(make_task):
    """PROD-100 (done) handed its baton to DEV-101 (active), which QA-7 waits for."""
    prod = make_task(
        "PROD-100",
        pod="ProductPod",
        title="Write the auth spec",
        status=Status.DONE,
        reasoning_summary="Chose **OAuth-only** after the threat model.",
    )
    dev = make_task(
        "DEV-101",
        title="Build the sign-in form",
        status=Status.ACTIVE,
        handoff_from=prod,
        depends_on=["PROD-100"],
        prompt="Build it.\nUse <form> tags.",
        task_type="build",
        inputs={"spec": "docs/auth-spec.md", "url": "https://example.com/spec"},
        outputs=[{"name": "form", "uri": "src/form.py", "summary": "The *form*"}],
        claimed_by="DevPod#2",
        reasoning_summary="Split the form into **two** parts.",
    )
    make_task("QA-7", pod="QAPod", title="Test the form", depends_on=["DEV-101"])
    HandoffNote.objects.create(
        from_task=prod,
        to_task=dev,
        note="Spec is *final*. OAuth only.",
        reason="completed",
        mode="sync",
        token_count=9120,
        author="ProductPod#1",
    )
    TraceStep.objects.create(
        task=dev, step=1, action="Read the spec", rationale="Scope **first**", tokens=800
    )
    Thought.objects.create(task=dev, step=1, thought="Passwords add reset flows.")
    Event.objects.create(
        task=dev,
        task_key=dev.pk,
        kind=EventKind.CLAIMED,
        actor="DevPod#2",
        from_status="ready",
        to_status="active",
    )
    return dev


def test_detail_shows_everything_a_lead_reads(client_lead, chain):
    response = client_lead.get(reverse("task_detail", args=["DEV-101"]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Build the sign-in form" in html
    assert "Build it.\nUse &lt;form&gt; tags." in html  # prompt verbatim, escaped
    assert "docs/auth-spec.md" in html and 'href="https://example.com/spec"' in html
    assert "src/form.py" in html and "<em>form</em>" in html
    assert 'href="/tasks/PROD-100/">PROD-100</a>' in html and 'href="/tasks/QA-7/">QA-7</a>' in html
    assert "Spec is <em>final</em>. OAuth only." in html
    assert "Split the form into <strong>two</strong> parts." in html
    assert "Read the spec" in html and "Scope <strong>first</strong>" in html
    assert re.search(
        r"<details><summary>1 thought</summary>.*Passwords add reset flows", html, re.S
    )
    assert "claimed" in html and "DevPod#2" in html
    assert 'href="/admin/tasks_app/task/DEV-101/change/"' in html


def test_baton_trail_lists_who_handed_to_whom(client_lead, chain):
    html = client_lead.get(reverse("task_detail", args=["DEV-101"])).content.decode()
    trail = html[
        html.index('class="baton-trail"') : html.index("</ol>", html.index('class="baton-trail"'))
    ]
    hop = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", trail))
    assert "PROD-100 ProductPod → DEV-101 DevPod sync completed · 9.1k tok · by ProductPod#1" in hop


def test_continuation_detail_links_its_root(client_lead, make_task):
    make_task("DEV-5", status=Status.DONE)
    make_task("DEV-5.2", scale_root="DEV-5")
    html = client_lead.get(reverse("task_detail", args=["DEV-5.2"])).content.decode()
    assert 'continuation of <a href="/tasks/DEV-5/">DEV-5</a>' in html


def test_markdown_from_pods_is_sanitised(client_lead, make_task):
    src = make_task(
        "DEV-1", status=Status.DONE, reasoning_summary='<img src=x onerror="window.__pwned=1"> ok'
    )
    dst = make_task("DEV-2", handoff_from=src)
    HandoffNote.objects.create(
        from_task=src,
        to_task=dst,
        author="DevPod#1",
        note="<script>window.__pwned=1</script>\n\n[click](javascript:alert(1)) **bold**",
    )
    TraceStep.objects.create(
        task=dst, step=1, action="x", rationale='<iframe src="https://e.vil"></iframe>'
    )
    html = client_lead.get(reverse("task_detail", args=["DEV-2"])).content.decode()
    assert "<script>window.__pwned" not in html
    assert "javascript:" not in html and "<iframe" not in html
    assert "<strong>bold</strong>" in html
    html = client_lead.get(reverse("task_detail", args=["DEV-1"])).content.decode()
    assert "onerror" not in html


def test_unknown_task_is_a_404_page(client_lead, pods):
    response = client_lead.get("/tasks/NOPE-1/")
    assert response.status_code == 404
    assert "Nothing here" in response.content.decode()


def test_panel_request_renders_only_the_panel(client_lead, chain):
    response = client_lead.get(
        reverse("task_detail", args=["DEV-101"]), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="panel"
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html and 'id="detail-DEV-101"' in html and "Open full page" in html
    assert 'hx-target="#panel"' in html


def test_activate_action_uses_the_workflow(client_lead, make_task):
    make_task("DEV-1")
    response = client_lead.post(reverse("task_action", args=["DEV-1", "activate"]), follow=True)
    assert "DEV-1 is active." in response.content.decode()
    assert Task.objects.get(pk="DEV-1").status == Status.ACTIVE
    assert Event.objects.filter(task_key="DEV-1", kind=EventKind.ACTIVATED, actor="lead").exists()


def test_refused_action_shows_why(client_lead, make_task):
    make_task("PROD-1", pod="ProductPod")
    make_task("DEV-1", depends_on=["PROD-1"])
    response = client_lead.post(reverse("task_action", args=["DEV-1", "activate"]), follow=True)
    assert "Task DEV-1 waits for PROD-1 to be done." in response.content.decode()
    assert Task.objects.get(pk="DEV-1").status == Status.READY


def test_refused_action_in_the_panel_answers_409_with_the_message(client_lead, make_task):
    make_task("DEV-1", status=Status.DONE)
    response = client_lead.post(
        reverse("task_action", args=["DEV-1", "scale_out"]),
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="panel",
    )
    assert response.status_code == 409
    assert "only an active task scales out" in response.content.decode()


def test_complete_action_starts_sync_successors(client_lead, make_task):
    make_task("DEV-1", status=Status.ACTIVE, handoff_mode="sync")
    make_task("QA-1", pod="QAPod", depends_on=["DEV-1"])
    response = client_lead.post(reverse("task_action", args=["DEV-1", "complete"]), follow=True)
    assert "Successors started now: QA-1." in response.content.decode()
    assert Task.objects.get(pk="QA-1").status == Status.ACTIVE


def test_handoff_action_links_the_chosen_task(client_lead, make_task):
    make_task("DEV-1", status=Status.ACTIVE)
    make_task("QA-1", pod="QAPod")
    client_lead.post(
        reverse("task_action", args=["DEV-1", "handoff"]),
        {"next_task_id": "QA-1", "note": "Over to you"},
    )
    qa = Task.objects.get(pk="QA-1")
    assert qa.handoff_from_id == "DEV-1" and list(qa.depends_on.values_list("pk", flat=True)) == [
        "DEV-1"
    ]
    assert HandoffNote.objects.filter(
        from_task_id="DEV-1", to_task_id="QA-1", note="Over to you"
    ).exists()


def test_scale_out_action_creates_a_continuation(client_lead, make_task):
    make_task("DEV-1", status=Status.ACTIVE)
    response = client_lead.post(
        reverse("task_action", args=["DEV-1", "scale_out"]),
        {"reason": "load_balancing"},
        follow=True,
    )
    assert "DEV-1 scaled out to DEV-1.2." in response.content.decode()
    assert Task.objects.get(pk="DEV-1.2").scale_root == "DEV-1"


def test_actions_need_login_and_post(client, lead, make_task):
    make_task("DEV-1")
    assert client.post(reverse("task_action", args=["DEV-1", "activate"])).status_code == 302
    assert Task.objects.get(pk="DEV-1").status == Status.READY
    client.force_login(lead)
    assert client.get(reverse("task_action", args=["DEV-1", "activate"])).status_code == 405
    assert client.post(reverse("task_action", args=["DEV-1", "explode"])).status_code == 404


def test_detail_query_count_does_not_grow_with_history(
    client_lead, chain, django_assert_max_num_queries
):
    for i in range(50):
        workflow.trace(task_id="DEV-101", instance="DevPod#2", steps=[{"action": f"step {i}"}])
    with django_assert_max_num_queries(25):
        client_lead.get(reverse("task_detail", args=["DEV-101"]))
