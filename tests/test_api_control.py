"""Human control through the API and the board's forms: review, send back, ask, answer,
comments, pause and WIP back-pressure; a scripted delivery with rework and a change request;
two people approving at once."""

import threading

import pytest
from django.db import connections
from django.test import Client
from django.utils import timezone

from tasks_app import workflow
from tasks_app.models import Comment, Event, HandoffNote, Pod, PodToken, Task
from tests.api_client import PodClient

HTMX = {"HX-Request": "true"}


def fresh(task_id):
    return Task.objects.get(pk=task_id)


@pytest.fixture
def reviewer(pods):
    """LeadPod reviews DevPod's work; its client."""
    lead_pod = Pod.objects.create(name="LeadPod", order=9)
    Pod.objects.filter(name="DevPod").update(review_required=True, reviewer=lead_pod)
    return PodClient(PodToken.issue(pod=lead_pod, label="test")[1])


@pytest.fixture
def clients(pod_tokens):
    return {name: PodClient(token) for name, token in pod_tokens.items()}


@pytest.fixture
def web(client, lead):
    client.force_login(lead)
    return client


def snapshot():
    return (
        list(Task.objects.order_by("pk").values_list("pk", "version", "status")),
        Event.objects.count(),
        HandoffNote.objects.count(),
        Comment.objects.count(),
    )


# Review -------------------------------------------------------------------------------------------


@pytest.fixture
def in_review(make_task, reviewer, clients):
    make_task("DEV-1", status="active", claimed_by="DevPod#1", handoff_mode="sync")
    make_task("QA-1", pod="QAPod", depends_on=["DEV-1"])
    status, body = clients["DevPod"].post(
        "/api/tasks/DEV-1/complete", {"instance": "DevPod#1", "handoff_note": "Built."}
    )
    assert status == 200 and body["task"]["status"] == "review", body
    assert body["successors"] == [] and body["next"] == [] and body["continuation"] is None


def test_the_reviewer_approves_and_gets_the_complete_shape(in_review, reviewer):
    status, body = reviewer.post("/api/tasks/DEV-1/review", {"verdict": "approve", "note": "OK"})
    assert status == 200, body
    assert set(body) >= {"task", "successors", "next", "continuation"}
    assert body["task"]["status"] == "done"
    assert body["successors"] == [{"id": "QA-1", "status": "active", "mode": "sync"}]
    assert body["next"][0]["task"]["id"] == "QA-1"
    assert body["next"][0]["handoff_note"]["note"] == "Built."


def test_changes_requested_answers_the_task(in_review, reviewer, clients):
    status, body = reviewer.post(
        "/api/tasks/DEV-1/review", {"verdict": "changes_requested", "note": "Add tests."}
    )
    assert status == 200, body
    assert (body["id"], body["status"], body["claimed_by"]) == ("DEV-1", "ready", "")
    status, work = clients["DevPod"].post(
        "/api/tasks/next", {"pod_owner": "DevPod", "instance": "DevPod#2"}
    )
    assert work["handoff_note"]["reason"] == "changes_requested"
    assert (work["handoff_note"]["note"], work["handoff_note"]["author_pod"]) == (
        "Add tests.",
        "LeadPod",
    )


def test_only_the_reviewer_pod_may_review_decided_before_state(in_review, reviewer, clients):
    before = snapshot()
    for pod in ("DevPod", "QAPod"):
        status, body = clients[pod].post("/api/tasks/DEV-1/review", {"verdict": "approve"})
        assert (status, body["code"]) == (403, "forbidden_pod")
    # Authorisation comes first: a task not in review still answers 403 to a stranger.
    status, body = clients["DevPod"].post("/api/tasks/QA-1/review", {"verdict": "approve"})
    assert (status, body["code"]) == (403, "forbidden_pod")
    assert snapshot() == before


def test_bad_reviews_answer_the_contract_codes(in_review, reviewer):
    before = snapshot()
    cases = [
        ("/api/tasks/NOPE-1/review", {"verdict": "approve"}, 404, "not_found"),
        ("/api/tasks/DEV-1/review", {"verdict": "maybe"}, 422, "validation_error"),
        ("/api/tasks/DEV-1/review", {}, 422, "validation_error"),
        ("/api/tasks/DEV-1/review", {"verdict": "approve", "x": 1}, 422, "validation_error"),
    ]
    for path, body, code, name in cases:
        status, answer = reviewer.post(path, body)
        assert (status, answer["code"]) == (code, name), (path, body, answer)
    assert snapshot() == before
    Task.objects.filter(pk="QA-1").update(status="active")
    Pod.objects.filter(name="QAPod").update(reviewer=Pod.objects.get(name="LeadPod"))
    status, answer = reviewer.post("/api/tasks/QA-1/review", {"verdict": "approve"})
    assert (status, answer["code"]) == (409, "invalid_transition")
    assert reviewer.post("/api/tasks/DEV-1/review", {"verdict": "approve"})[0] == 200
    status, answer = reviewer.post("/api/tasks/DEV-1/review", {"verdict": "approve"})
    assert (status, answer["code"]) == (409, "conflict")


def test_tasks_in_review_are_listed_and_pods_show_their_controls(in_review, reviewer):
    status, body = reviewer.get("/api/tasks", status="review")
    assert status == 200 and [t["id"] for t in body["items"]] == ["DEV-1"]
    status, pods = reviewer.get("/api/pods")
    dev = next(p for p in pods if p["name"] == "DevPod")
    assert (dev["review_required"], dev["reviewer"], dev["paused"]) == (True, "LeadPod", False)


# Send back ----------------------------------------------------------------------------------------


@pytest.fixture
def qa_holds(make_task, clients):
    make_task("DEV-1", status="done", handoff_mode="async", outputs=[{"name": "b", "uri": "u"}])
    make_task("QA-1", pod="QAPod", depends_on=["DEV-1"], priority=4)
    Task.objects.filter(pk="QA-1").update(handoff_from="DEV-1")
    status, _ = clients["QAPod"].post("/api/tasks/QA-1/start", {"instance": "QAPod#1"})
    assert status == 200


def test_send_back_answers_201_with_the_task_and_the_rework(qa_holds, clients):
    status, body = clients["QAPod"].post(
        "/api/tasks/QA-1/send_back",
        {"instance": "QAPod#1", "to": "DEV-1", "findings": "The form crashes."},
    )
    assert status == 201, body
    assert (body["task"]["id"], body["task"]["status"], body["task"]["claimed_by"]) == (
        "QA-1",
        "ready",
        "",
    )
    assert body["task"]["depends_on"] == ["DEV-1", "DEV-1.fix1"] and body["task"]["blocked"]
    rework = body["rework"]
    assert (rework["id"], rework["pod_owner"], rework["status"], rework["priority"]) == (
        "DEV-1.fix1",
        "DevPod",
        "ready",
        4,
    )
    assert rework["title"] == "Fix: Task DEV-1" and rework["handoff_from"] is None
    assert rework["inputs"]["findings"] == "The form crashes."
    status, work = clients["DevPod"].post(
        "/api/tasks/next", {"pod_owner": "DevPod", "instance": "DevPod#1"}
    )
    assert work["task"]["id"] == "DEV-1.fix1"
    note = work["handoff_note"]
    assert (note["from"], note["reason"], note["note"], note["author_pod"]) == (
        "QA-1",
        "changes_requested",
        "The form crashes.",
        "QAPod",
    )


def test_bad_send_backs_answer_the_contract_codes(qa_holds, make_task, clients):
    make_task("DEV-OTHER", status="done")
    before = snapshot()
    qa = clients["QAPod"]
    base = {"instance": "QAPod#1", "to": "DEV-1", "findings": "x"}
    cases = [
        (clients["DevPod"], "QA-1", base, 403, "forbidden_pod"),
        (qa, "NOPE-1", base, 404, "not_found"),
        (qa, "QA-1", {**base, "findings": ""}, 422, "validation_error"),
        (qa, "QA-1", {**base, "findings": "   "}, 422, "validation_error"),
        (qa, "QA-1", {"instance": "QAPod#1", "findings": "x"}, 422, "validation_error"),
        (qa, "QA-1", {**base, "to": "bad id!"}, 422, "validation_error"),
        (qa, "QA-1", {**base, "to": "NOPE-2"}, 422, "validation_error"),
        (qa, "QA-1", {**base, "to": "DEV-OTHER"}, 409, "invalid_transition"),
        (qa, "QA-1", {**base, "instance": "QAPod#2"}, 409, "claimed"),
    ]
    for client, task_id, body, code, name in cases:
        status, answer = client.post(f"/api/tasks/{task_id}/send_back", body)
        assert (status, answer["code"]) == (code, name), (task_id, body, answer)
    assert snapshot() == before


# Ask, answer, comment -----------------------------------------------------------------------------


@pytest.fixture
def dev_holds(make_task, clients):
    make_task("DEV-1", status="active", claimed_by="DevPod#1")


def test_ask_answer_and_read_the_answer(dev_holds, clients, web):
    dev = clients["DevPod"]
    status, body = dev.post(
        "/api/tasks/DEV-1/ask", {"instance": "DevPod#1", "question": "OAuth or SAML?"}
    )
    assert status == 200, body
    assert (body["id"], body["question"], body["waiting_on_human"]) == (
        "DEV-1",
        "OAuth or SAML?",
        True,
    )
    assert body["lease_expires_at"] is None
    page = web.get("/tasks/DEV-1/")
    assert b"Waiting on a human" in page.content and b"OAuth or SAML?" in page.content
    assert b'id="waiting-on-human"' in page.content
    response = web.post("/tasks/DEV-1/answer/", {"answer": "OAuth, **only**."})
    assert response.status_code == 303 and response["Location"] == "/tasks/DEV-1/"
    status, task = dev.get("/api/tasks/DEV-1")
    assert (task["question"], task["waiting_on_human"]) == (None, False)
    assert [(c["kind"], c["body"]) for c in task["comments"]] == [
        ("question", "OAuth or SAML?"),
        ("answer", "OAuth, **only**."),
    ]
    status, work = dev.post("/api/tasks/next", {"pod_owner": "DevPod", "instance": "DevPod#1"})
    assert [(c["kind"], c["body"], c["author"]) for c in work["comments"]] == [
        ("answer", "OAuth, **only**.", "lead")
    ]


def test_bad_asks_answer_the_contract_codes(dev_holds, make_task, clients):
    make_task("DEV-2", status="active")  # reserved: no holder
    before = snapshot()
    dev = clients["DevPod"]
    cases = [
        (
            clients["QAPod"],
            "DEV-1",
            {"instance": "DevPod#1", "question": "?"},
            403,
            "forbidden_pod",
        ),
        (dev, "DEV-1", {"instance": "DevPod#2", "question": "?"}, 409, "claimed"),
        (dev, "DEV-2", {"instance": "DevPod#1", "question": "?"}, 409, "invalid_transition"),
        (dev, "DEV-1", {"instance": "DevPod#1", "question": ""}, 422, "validation_error"),
        (dev, "DEV-1", {"instance": "DevPod#1", "question": " \n"}, 422, "validation_error"),
        (dev, "DEV-1", {"instance": "DevPod#1"}, 422, "validation_error"),
        (dev, "NOPE-1", {"instance": "DevPod#1", "question": "?"}, 404, "not_found"),
    ]
    for client, task_id, body, code, name in cases:
        status, answer = client.post(f"/api/tasks/{task_id}/ask", body)
        assert (status, answer["code"]) == (code, name), (task_id, body, answer)
    assert snapshot() == before


def test_answer_and_comment_forms(dev_holds, web):
    before = snapshot()
    # No open question: 409 with the reason on the page; empty text: 422; nothing changed.
    response = web.post("/tasks/DEV-1/answer/", {"answer": "Yes"})
    assert response.status_code == 409 and response["X-Podboard-Code"] == "invalid_transition"
    assert b"no open question" in response.content
    assert web.post("/tasks/DEV-1/comments/", {"body": "  "}).status_code == 422
    assert web.post("/tasks/NOPE-1/comments/", {"body": "Hi"}).status_code == 404
    assert snapshot() == before
    response = web.post("/tasks/DEV-1/comments/", {"body": "Use the *new* API."})
    assert response.status_code == 303 and response["Location"] == "/tasks/DEV-1/"
    # htmx gets the task's fragment back, with the comment rendered (sanitised Markdown).
    response = web.post(
        "/tasks/DEV-1/comments/", {"body": "<script>x()</script>**bold**"}, headers=HTMX
    )
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html
    assert 'id="detail-DEV-1"' in html and "<strong>bold</strong>" in html
    assert "<script>x()" not in html
    assert list(Comment.objects.values_list("kind", "author")) == [
        ("comment", "lead"),
        ("comment", "lead"),
    ]


def test_people_without_the_change_permission_get_403(dev_holds, client, viewer):
    client.force_login(viewer)
    before = snapshot()
    for path, data in [
        ("/tasks/DEV-1/comments/", {"body": "hi"}),
        ("/tasks/DEV-1/answer/", {"answer": "hi"}),
        ("/tasks/DEV-1/review/", {"verdict": "approve"}),
        ("/tasks/DEV-1/send_back/", {"to": "X", "findings": "y"}),
        ("/board/pods/DevPod/pause/", {"paused": "1"}),
    ]:
        assert client.post(path, data).status_code == 403, path
        assert client.post(path, data, headers=HTMX).status_code == 403, path
    assert snapshot() == before
    assert not Pod.objects.get(name="DevPod").paused


# Pause and WIP through next -----------------------------------------------------------------------


def test_next_says_why_it_hands_out_nothing(make_task, clients, web):
    dev = clients["DevPod"]
    make_task("DEV-A", status="active", claimed_by="DevPod#1")
    make_task("DEV-B")
    pull = {"pod_owner": "DevPod", "instance": "DevPod#2"}
    Pod.objects.filter(name="DevPod").update(wip_limit=1)
    assert dev.post("/api/tasks/next", pull) == (204, None)
    assert dev.last["PodBoard-Wip-Limit"] == "1" and "PodBoard-Paused" not in dev.last
    response = web.post("/board/pods/DevPod/pause/", {"paused": "1"})
    assert response.status_code == 303 and Pod.objects.get(name="DevPod").paused
    assert dev.post("/api/tasks/next", pull) == (204, None)
    assert dev.last["PodBoard-Paused"] == "1" and "PodBoard-Wip-Limit" not in dev.last
    # The holder still gets its task back.
    status, body = dev.post("/api/tasks/next", {**pull, "instance": "DevPod#1"})
    assert (status, body["task"]["id"]) == (200, "DEV-A")
    response = web.post("/board/pods/DevPod/pause/", {"paused": "0"}, headers=HTMX)
    assert response.status_code == 200 and 'id="wip-DevPod"' in response.content.decode()
    Pod.objects.filter(name="DevPod").update(wip_limit=None)
    status, body = dev.post("/api/tasks/next", pull)
    assert (status, body["task"]["id"]) == (200, "DEV-B")
    assert list(Event.objects.filter(task_key="pod:DevPod").values_list("kind", "actor")) == [
        ("paused", "lead"),
        ("resumed", "lead"),
    ]


def test_the_board_shows_review_columns_paused_lanes_and_marks(make_task, pods, web):
    Pod.objects.filter(name="DevPod").update(review_required=True, paused=True)
    make_task("DEV-R", status="review")
    make_task(
        "DEV-W",
        status="active",
        claimed_by="DevPod#1",
        question="Which DB?",
        asked_at=timezone.now(),
    )
    html = web.get("/").content.decode()
    assert 'id="lane-DevPod-review"' in html and 'id="lane-QAPod-review"' not in html
    assert 'id="count-DevPod-review"' in html and 'id="count-QAPod-review"' not in html
    assert "‖ paused" in html
    assert "waiting on a human" in html and "Which DB?" in html
    assert "<b>1</b> waiting on a human" in html
    assert 'class="review-form"' in html


# Board card actions -------------------------------------------------------------------------------


def test_card_actions_answer_the_card_and_refuse_a_stale_one(in_review, web):
    version = fresh("DEV-1").version
    card = {**HTMX, "HX-Target": "task-DEV-1"}
    response = web.post(
        "/tasks/DEV-1/review/", {"verdict": "approve", "version": version}, headers=card
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="task-DEV-1"' in html and 'data-status="done"' in html
    assert 'id="count-DevPod-review" hx-swap-oob="true"' in html
    # A second person who saw the same version loses, and the card shows the winner.
    response = web.post(
        "/tasks/DEV-1/review/", {"verdict": "approve", "version": version}, headers=card
    )
    assert response.status_code == 409 and response["X-Podboard-Code"] == "conflict"
    assert 'data-status="done"' in response.content.decode()


def test_send_back_from_the_board(qa_holds, web):
    response = web.post(
        "/tasks/QA-1/send_back/",
        {"to": "DEV-1", "findings": "Crashes on submit"},
        headers={**HTMX, "HX-Target": "task-QA-1"},
    )
    assert response.status_code == 200, response.content
    assert 'data-status="ready"' in response.content.decode()
    assert fresh("DEV-1.fix1").inputs["findings"] == "Crashes on submit"
    assert HandoffNote.objects.get(to_task_id="DEV-1.fix1").author == "lead"


# A scripted delivery ------------------------------------------------------------------------------


def test_a_delivery_with_a_change_request_and_two_rounds_of_rework(make_task, reviewer, clients):
    """ProductPod → DevPod (reviewed by LeadPod) → QAPod: the reviewer requests changes once,
    QA sends DEV's work back twice; every task ends done, the notes in order."""
    prod, dev, qa = clients["ProductPod"], clients["DevPod"], clients["QAPod"]
    make_task("PROD-1", pod="ProductPod", handoff_mode="sync", prompt="Spec sign-in")
    make_task("DEV-1", depends_on=["PROD-1"], handoff_mode="sync", prompt="Build sign-in")
    make_task("QA-1", pod="QAPod", depends_on=["DEV-1"], handoff_mode="async")
    Task.objects.filter(pk="DEV-1").update(handoff_from="PROD-1")
    Task.objects.filter(pk="QA-1").update(handoff_from="DEV-1")

    def pull(client, pod, instance):
        status, body = client.post("/api/tasks/next", {"pod_owner": pod, "instance": instance})
        assert status == 200, (pod, status, body)
        return body

    def complete(client, task_id, instance, note, output):
        status, body = client.post(
            f"/api/tasks/{task_id}/complete",
            {
                "instance": instance,
                "handoff_note": note,
                "outputs": [{"name": output, "uri": f"git://{output}"}],
            },
        )
        assert status == 200, body
        return body

    def review(verdict, note=""):
        body = {"verdict": verdict, "note": note}
        status, body = reviewer.post(f"/api/tasks/{dev_task}/review", body)
        assert status == 200, body
        return body

    assert pull(prod, "ProductPod", "P#1")["task"]["id"] == "PROD-1"
    done = complete(prod, "PROD-1", "P#1", "Spec: OAuth only.", "spec")
    assert [c["task"]["id"] for c in done["next"]] == ["DEV-1"]  # sync

    work = pull(dev, "DevPod", "D#1")
    assert (work["task"]["id"], work["handoff_note"]["note"]) == ("DEV-1", "Spec: OAuth only.")
    assert complete(dev, "DEV-1", "D#1", "Built v1.", "v1")["task"]["status"] == "review"
    dev_task = "DEV-1"
    assert review("changes_requested", "Add the tests.")["status"] == "ready"
    work = pull(dev, "DevPod", "D#2")
    assert (work["handoff_note"]["reason"], work["handoff_note"]["note"]) == (
        "changes_requested",
        "Add the tests.",
    )
    complete(dev, "DEV-1", "D#2", "Built v2 with tests.", "v2")
    approved = review("approve", "Good.")
    assert approved["successors"] == [{"id": "QA-1", "status": "active", "mode": "sync"}]

    for round_no, (findings, fix_note) in enumerate(
        [("Safari login fails.", "Fixed Safari."), ("Logout leaks the session.", "Fixed logout.")],
        1,
    ):
        work = pull(qa, "QAPod", "Q#1")
        assert work["task"]["id"] == "QA-1"
        status, sent = qa.post(
            "/api/tasks/QA-1/send_back",
            {"instance": "Q#1", "to": "DEV-1", "findings": findings},
        )
        assert status == 201 and sent["rework"]["id"] == f"DEV-1.fix{round_no}"
        work = pull(dev, "DevPod", "D#3")
        assert (work["task"]["id"], work["handoff_note"]["note"]) == (
            f"DEV-1.fix{round_no}",
            findings,
        )
        assert work["inputs"]["findings"] == findings
        complete(dev, f"DEV-1.fix{round_no}", "D#3", fix_note, f"fix{round_no}")
        dev_task = f"DEV-1.fix{round_no}"  # DevPod's work is reviewed, reworks too
        review("approve")

    work = pull(qa, "QAPod", "Q#2")
    assert (work["task"]["id"], work["handoff_note"]["note"]) == ("QA-1", "Fixed logout.")
    assert [o["task"] for o in work["linked_outputs"]] == ["DEV-1", "DEV-1.fix1", "DEV-1.fix2"]
    complete(qa, "QA-1", "Q#2", "All green.", "report")

    assert dict(Task.objects.values_list("pk", "status")) == {
        "PROD-1": "done",
        "DEV-1": "done",
        "DEV-1.fix1": "done",
        "DEV-1.fix2": "done",
        "QA-1": "done",
    }
    notes = [
        (n.from_task_id, n.to_task_id, n.reason, n.note, n.mode, n.author, n.author_pod)
        for n in HandoffNote.objects.order_by("created_at", "id")
    ]
    assert notes == [
        ("PROD-1", "DEV-1", "completed", "Spec: OAuth only.", "sync", "P#1", "ProductPod"),
        ("DEV-1", "DEV-1", "changes_requested", "Add the tests.", "async", _lead(), "LeadPod"),
        ("DEV-1", "QA-1", "completed", "Built v2 with tests.", "sync", "D#2", "DevPod"),
        ("QA-1", "DEV-1.fix1", "changes_requested", "Safari login fails.", "async", "Q#1", "QAPod"),
        ("DEV-1.fix1", "QA-1", "completed", "Fixed Safari.", "sync", "D#3", "DevPod"),
        (
            "QA-1",
            "DEV-1.fix2",
            "changes_requested",
            "Logout leaks the session.",
            "async",
            "Q#1",
            "QAPod",
        ),
        ("DEV-1.fix2", "QA-1", "completed", "Fixed logout.", "sync", "D#3", "DevPod"),
        ("QA-1", None, "completed", "All green.", "async", "Q#2", "QAPod"),
    ]
    verdicts = list(
        Event.objects.filter(kind="reviewed")
        .order_by("id")
        .values_list("task_key", "payload__verdict")
    )
    assert verdicts == [
        ("DEV-1", "changes_requested"),
        ("DEV-1", "approve"),
        ("DEV-1.fix1", "approve"),
        ("DEV-1.fix2", "approve"),
    ]


def _lead():
    token = PodToken.objects.get(pod__name="LeadPod")
    return f"LeadPod token {token.label or token.prefix}"


# Two people approving at once ---------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_people_approving_at_once_one_wins_the_other_gets_a_conflict(
    make_task, pods, django_user_model
):
    from django.contrib.auth.models import Permission

    Pod.objects.filter(name="DevPod").update(review_required=True)
    make_task("DEV-1", status="active", claimed_by="DevPod#1")
    make_task("QA-1", pod="QAPod", depends_on=["DEV-1"])
    workflow.complete(task_id="DEV-1", instance="DevPod#1", handoff_note="Built.")
    permission = Permission.objects.get(codename="change_task")
    people = []
    for name in ("alice", "bob"):
        user = django_user_model.objects.create_user(name, password="pw-12345678")
        user.user_permissions.add(permission)
        people.append(user)
    version = fresh("DEV-1").version
    barrier = threading.Barrier(2)
    answers = {}

    def approve(user):
        client = Client()
        client.force_login(user)
        try:
            barrier.wait(timeout=10)
            response = client.post(
                "/tasks/DEV-1/review/",
                {"verdict": "approve", "version": version},
                headers={**HTMX, "HX-Target": "task-DEV-1"},
            )
            answers[user.username] = (response.status_code, response.get("X-Podboard-Code"))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=approve, args=(u,)) for u in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(answers.values(), key=str) == sorted([(200, None), (409, "conflict")], key=str)
    assert fresh("DEV-1").status == "done"
    assert Event.objects.filter(task_key="DEV-1", kind="reviewed").count() == 1
    assert HandoffNote.objects.filter(from_task_id="DEV-1", to_task_id="QA-1").count() == 1


# The admin ---------------------------------------------------------------------------------------


def test_admin_actions_decide_reviews_and_pause_pods(in_review, admin_client, pods):
    response = admin_client.post(
        "/admin/tasks_app/task/",
        {"action": "request_changes", "_selected_action": ["DEV-1", "QA-1"]},
        follow=True,
    )
    text = response.content.decode()
    assert "Sent back to Ready 1 task(s): DEV-1." in text
    assert "only a task in review can be reviewed" in text
    assert fresh("DEV-1").status == "ready"
    response = admin_client.post(
        "/admin/tasks_app/pod/",
        {"action": "pause", "_selected_action": [pods["QAPod"].pk, pods["DevPod"].pk]},
        follow=True,
    )
    assert "Paused: DevPod, QAPod." in response.content.decode()
    assert set(Pod.objects.filter(paused=True).values_list("name", flat=True)) == {
        "DevPod",
        "QAPod",
    }
    assert Event.objects.filter(kind="paused", actor="admin").count() == 2
    admin_client.post(
        "/admin/tasks_app/pod/",
        {"action": "resume", "_selected_action": [pods["QAPod"].pk]},
        follow=True,
    )
    assert list(Event.objects.filter(kind="resumed").values_list("to_pod", flat=True)) == ["QAPod"]


def test_a_move_over_the_wip_limit_is_allowed_with_a_warning(make_task, web):
    import json

    Pod.objects.filter(name="DevPod").update(wip_limit=1)
    make_task("DEV-A", status="active", claimed_by="DevPod#1")
    make_task("DEV-B")
    response = web.post(
        "/board/move/", {"task": "DEV-B", "version": 1, "to_status": "active"}, headers=HTMX
    )
    assert response.status_code == 200 and fresh("DEV-B").status == "active"
    toast = json.loads(response["HX-Trigger"])["podboard:toast"]
    assert toast["level"] == "warning"
    assert "DevPod is over its WIP limit (2/1)" in toast["message"]
    assert 'class="wip over"' in response.content.decode()
