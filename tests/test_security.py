"""Security claims as tests: login walls, staff walls, hashed pod tokens, pod scoping, websocket
auth, CSRF on board writes, safe YAML only, hostile strings stored as given and shown inert."""

import hashlib
import html
import re
from io import StringIO
from pathlib import Path

import pytest
from channels.testing import WebsocketCommunicator
from django.core.management import call_command
from django.db import connection
from django.test import Client

from tasks_app import workflow
from tasks_app.models import Event, HandoffNote, PodToken, Task

pytestmark = pytest.mark.django_db

SCRIPT = '<script>alert("pwned")</script>'
IMG = '<img src=x onerror="alert(1)">'
RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: "invoice\u202efdp.exe" reads as "invoiceexe.pdf"


def bearer(raw):
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def api_post(client, path, raw, body):
    return client.post(path, body, content_type="application/json", **bearer(raw))


# Login walls ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/tasks/DEV-1/", "/import/", "/export/"])
def test_pages_redirect_anonymous_visitors_to_login(client, make_task, path):
    make_task("DEV-1")
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


def test_board_write_by_anonymous_changes_nothing(client, make_task):
    make_task("DEV-1")
    response = client.post("/board/move/", {"task": "DEV-1", "to_status": "active"})
    assert response.status_code in (302, 401, 403)
    assert Task.objects.get(pk="DEV-1").status == "ready"


def test_admin_is_for_staff_only(client, lead, staff):
    client.force_login(lead)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    client.force_login(staff)
    assert client.get("/admin/").status_code == 200


@pytest.mark.parametrize("path", ["/import/", "/export/"])
def test_import_and_export_are_for_staff_only(client, lead, staff, pods, path):
    client.force_login(lead)
    assert client.get(path).status_code == 403
    client.force_login(staff)
    assert client.get(path).status_code == 200


# Pod tokens ----------------------------------------------------------------------------------


def _podtoken_row_text():
    table = PodToken._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 - a model's own table name
        return " ".join(str(value) for row in cursor.fetchall() for value in row)


def test_pod_tokens_are_stored_only_as_hashes(pods):
    token, raw = PodToken.issue(pod=pods["DevPod"], label="ci")
    stored = _podtoken_row_text()
    assert raw not in stored
    assert raw[10:] not in stored  # not even the secret part beyond the shown prefix
    assert token.key_hash == hashlib.sha256(raw.encode()).hexdigest()


def test_create_pod_token_prints_a_token_the_database_does_not_hold(client, pods):
    out = StringIO()
    call_command("create_pod_token", "QAPod", "--label", "cli", stdout=out)
    printed = [word for word in out.getvalue().split() if word.startswith("pb_")]
    assert printed, out.getvalue()
    raw = printed[0]
    assert raw not in _podtoken_row_text()
    assert client.get("/api/pods", **bearer(raw)).status_code == 200


def test_api_refuses_missing_and_unknown_tokens(client, pods):
    assert client.get("/api/tasks").status_code == 401
    response = client.get("/api/tasks", **bearer("pb_not-a-real-token"))
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


def test_revoked_token_is_refused(client, pods):
    token, raw = PodToken.issue(pod=pods["DevPod"])
    assert client.get("/api/pods", **bearer(raw)).status_code == 200
    PodToken.objects.filter(pk=token.pk).update(revoked_at=token.created_at)
    assert client.get("/api/pods", **bearer(raw)).status_code == 401


@pytest.mark.parametrize(
    "action, body",
    [
        ("start", {"instance": "DevPod#1"}),
        ("activate", {}),
        ("trace", {"instance": "DevPod#1", "steps": [{"action": "snoop"}]}),
        ("complete", {"instance": "DevPod#1", "outputs": []}),
        ("scale_out", {"instance": "DevPod#1"}),
    ],
)
def test_one_pods_token_cannot_act_on_another_pods_task(
    client, make_task, pod_tokens, action, body
):
    task = make_task("QA-1", pod="QAPod")
    if action in ("trace", "complete", "scale_out"):
        workflow.start(task_id="QA-1", instance="QAPod#1")
        task.refresh_from_db()
    before = (task.status, task.claimed_by, task.version)
    response = api_post(client, f"/api/tasks/QA-1/{action}", pod_tokens["DevPod"], body)
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden_pod"
    task.refresh_from_db()
    assert (task.status, task.claimed_by, task.version) == before


def test_a_token_cannot_pull_another_pods_work(client, make_task, pod_tokens):
    make_task("QA-1", pod="QAPod")
    response = api_post(
        client, "/api/tasks/next", pod_tokens["DevPod"], {"pod_owner": "QAPod", "instance": "x"}
    )
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden_pod"
    assert Task.objects.get(pk="QA-1").status == "ready"


# Websocket -----------------------------------------------------------------------------------


def _board_socket(cookie=""):
    from podboard.asgi import application

    headers = [(b"origin", b"http://testserver"), (b"host", b"testserver")]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    return WebsocketCommunicator(application, "/ws/board/", headers=headers)


@pytest.mark.django_db(transaction=True)
async def test_board_websocket_refuses_anonymous_connections():
    socket = _board_socket()
    connected, _code = await socket.connect(timeout=10)
    assert connected is False
    await socket.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_board_websocket_refuses_a_forged_session():
    socket = _board_socket("sessionid=forged0123456789abcdefghijklmnopqr")
    connected, _code = await socket.connect(timeout=10)
    assert connected is False
    await socket.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_board_websocket_accepts_a_logged_in_lead(django_user_model):
    from asgiref.sync import sync_to_async

    from tests.support.sessions import session_cookie_for

    def login():
        user = django_user_model.objects.create_user("ws-lead", password="ws-password-1")
        return session_cookie_for(user)

    key = await sync_to_async(login)()
    socket = _board_socket(f"sessionid={key}")
    connected, _ = await socket.connect(timeout=10)
    assert connected is True
    await socket.disconnect()


# CSRF ----------------------------------------------------------------------------------------


def _csrf_client(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/")  # the board page sets the csrftoken cookie
    return client


def test_board_move_without_csrf_token_is_refused(lead, make_task):
    make_task("DEV-1")
    client = _csrf_client(lead)
    response = client.post("/board/move/", {"task": "DEV-1", "to_status": "active"})
    assert response.status_code == 403
    assert Task.objects.get(pk="DEV-1").status == "ready"
    assert not Event.objects.filter(kind="moved").exists()


def test_board_move_with_csrf_token_goes_through(lead, make_task):
    make_task("DEV-1")
    client = _csrf_client(lead)
    token = client.cookies["csrftoken"].value
    response = client.post(
        "/board/move/", {"task": "DEV-1", "to_status": "active"}, HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code in (200, 302)
    assert Task.objects.get(pk="DEV-1").status == "active"


def test_task_action_without_csrf_token_is_refused(lead, make_task):
    make_task("DEV-1")
    client = _csrf_client(lead)
    response = client.post("/tasks/DEV-1/activate/")
    assert response.status_code == 403
    assert Task.objects.get(pk="DEV-1").status == "ready"


# Safe YAML -----------------------------------------------------------------------------------


def _evil_directory(root, marker):
    task_dir = Path(root) / "tasks" / "EVIL-1"
    task_dir.mkdir(parents=True)
    (task_dir / "task.yaml").write_text(
        "id: EVIL-1\n"
        "title: !!python/object/apply:os.system\n"
        f"  - touch {marker}\n"
        "pod_owner: DevPod\n",
        encoding="utf-8",
    )
    return root


def test_yaml_with_a_python_tag_is_refused_and_nothing_runs(tmp_path, pods):
    from tasks_app import yaml_io

    marker = tmp_path / "executed"
    root = _evil_directory(tmp_path / "repo", marker)
    with pytest.raises(yaml_io.ImportErrors) as refused:
        yaml_io.import_directory(root, actor="test")
    assert "tasks/EVIL-1/task.yaml" in str(refused.value)
    assert not marker.exists()
    assert not Task.objects.exists()


def test_import_command_refuses_a_python_tag(tmp_path, pods):
    from django.core.management.base import CommandError

    marker = tmp_path / "executed"
    root = _evil_directory(tmp_path / "repo", marker)
    err = StringIO()
    with pytest.raises(CommandError):
        call_command("import_tasks", str(root), stderr=err)
    assert "EVIL-1" in err.getvalue()
    assert not marker.exists()
    assert not Task.objects.exists()


# Hostile strings -----------------------------------------------------------------------------


def test_hostile_title_is_stored_as_given_and_escaped_on_pages(client, lead, pods, pod_tokens):
    title = f"{SCRIPT} invoice{RLO}fdp.exe"
    response = api_post(
        client,
        "/api/tasks",
        pod_tokens["ProductPod"],
        {"id": "DEV-666", "title": title, "pod_owner": "DevPod", "description": IMG},
    )
    assert response.status_code in (200, 201), response.content
    task = Task.objects.get(pk="DEV-666")
    assert task.title == title and task.description == IMG
    client.force_login(lead)
    for path in ("/tasks/DEV-666/", "/"):
        page = client.get(path).content.decode()
        assert SCRIPT not in page, path
        assert IMG not in page, path
        assert html.escape(SCRIPT, quote=False) in page or html.escape(SCRIPT) in page, path


def _isolates_bidi(page):
    """Return True when the page isolates user text from the layout's direction: ``<bdi>``,
    ``dir="auto"``, or ``unicode-bidi: isolate|plaintext`` inline or in its own stylesheets."""
    from django.conf import settings
    from django.contrib.staticfiles import finders

    if "<bdi" in page or 'dir="auto"' in page:
        return True
    css = [page]
    prefix = re.escape("/" + settings.STATIC_URL.strip("/") + "/")
    for path in re.findall(rf'href="{prefix}([^"?]+\.css)', page):
        found = finders.find(path)
        if found:
            css.append(Path(found).read_text(encoding="utf-8", errors="replace"))
    return any(re.search(r"unicode-bidi\s*:\s*(isolate|plaintext)", text) for text in css)


def test_right_to_left_override_cannot_reorder_the_page(client, lead, make_task):
    make_task("DEV-7", title=f"invoice{RLO}fdp.exe")
    client.force_login(lead)
    assert Task.objects.get(pk="DEV-7").title == f"invoice{RLO}fdp.exe"
    for path in ("/tasks/DEV-7/", "/"):
        page = client.get(path).content.decode()
        # Either the control character is neutralised, or the text sits in a bidi isolate.
        assert RLO not in page or _isolates_bidi(page), path


def test_hundred_kilobyte_hostile_note_is_stored_whole_and_rendered_inert(client, lead, make_task):
    make_task("PROD-1", pod="ProductPod", handoff_mode="async")
    make_task("DEV-1", depends_on=["PROD-1"], handoff_from_id="PROD-1")
    workflow.start(task_id="PROD-1", instance="ProductPod#1")
    hostile = f"{SCRIPT}\n\n{IMG}\n\n[click me](javascript:alert(1))\n\n{RLO}\n\n"
    note = hostile + "x" * (100 * 1024 - len(hostile))
    workflow.complete(task_id="PROD-1", instance="ProductPod#1", handoff_note=note)
    stored = HandoffNote.objects.get(from_task="PROD-1", to_task="DEV-1").note
    assert stored == note
    client.force_login(lead)
    for path in ("/tasks/PROD-1/", "/tasks/DEV-1/"):
        response = client.get(path)
        assert response.status_code == 200
        page = response.content.decode()
        assert SCRIPT not in page
        assert "onerror" not in page.replace("&quot;", '"').split("<body", 1)[-1]
        assert 'href="javascript:' not in page
        assert "x" * 1000 in page  # the note is shown, not dropped


def test_api_answers_an_oversized_note_cleanly(client, make_task, pod_tokens):
    make_task("DEV-1")
    workflow.start(task_id="DEV-1", instance="DevPod#1")
    body = {"instance": "DevPod#1", "handoff_note": SCRIPT + "y" * (100 * 1024)}
    response = api_post(client, "/api/tasks/DEV-1/complete", pod_tokens["DevPod"], body)
    # Stored (200) or refused as too long (422); never a server error, never half-done.
    assert response.status_code in (200, 413, 422), response.content
    assert "code" in response.json() or response.status_code == 200
    status = Task.objects.get(pk="DEV-1").status
    assert status == ("done" if response.status_code == 200 else "active")
