"""The admin: staff only, pages render, actions call the workflow, edits are recorded."""

import io
import json
import zipfile
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tasks_app.models import AutoModeRule, Event, HandoffNote, PodToken, Task, hash_token

INLINE_PREFIXES = ["notes_written", "trace_steps", "thoughts"]


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


def changelist(model):
    return reverse(f"admin:tasks_app_{model}_changelist")


def task_form_data(task, **overrides):
    """Return the POST body of the task change form as the admin renders it."""

    def split(value):
        if value is None:
            return {"0": "", "1": ""}
        value = timezone.localtime(value)
        return {"0": value.strftime("%Y-%m-%d"), "1": value.strftime("%H:%M:%S")}

    data = {
        "title": task.title,
        "description": task.description,
        "pod_owner": task.pod_owner_id,
        "status": task.status,
        "task_type": task.task_type,
        "priority": task.priority,
        "handoff_mode": task.handoff_mode,
        "depends_on": list(task.depends_on.values_list("pk", flat=True)),
        "handoff_from": task.handoff_from_id or "",
        "scale_root": task.scale_root,
        "prompt": task.prompt,
        "inputs": json.dumps(task.inputs),
        "outputs": json.dumps(task.outputs),
        "reasoning_summary": task.reasoning_summary,
        "token_count": task.token_count,
        "claimed_by": task.claimed_by,
    }
    for name in ["lease_expires_at", "created_at", "started_at", "completed_at"]:
        for part, text in split(getattr(task, name)).items():
            data[f"{name}_{part}"] = text
    for prefix in INLINE_PREFIXES:
        data.update(
            {
                f"{prefix}-TOTAL_FORMS": "0",
                f"{prefix}-INITIAL_FORMS": "0",
                f"{prefix}-MIN_NUM_FORMS": "0",
                f"{prefix}-MAX_NUM_FORMS": "1000",
            }
        )
    data.update(overrides)
    return data


def run_action(client, action, ids):
    return client.post(changelist("task"), {"action": action, "_selected_action": ids}, follow=True)


def texts(response):
    return [str(m) for m in response.context["messages"]]


# Access and pages ----------------------------------------------------------------------------


def test_admin_refuses_a_lead_who_is_not_staff(client, lead):
    client.force_login(lead)
    response = client.get(changelist("task"))
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


@pytest.mark.parametrize(
    "model",
    ["pod", "task", "handoffnote", "tracestep", "thought", "automoderule", "event", "podtoken"],
)
def test_every_changelist_renders_for_staff(admin_client, make_task, model):
    make_task("DEV-1")
    assert admin_client.get(changelist(model)).status_code == 200


def test_task_list_filters_and_searches(admin_client, make_task):
    make_task("PROD-1", pod="ProductPod", title="Write the spec", status="done")
    make_task("DEV-1", title="Build the form", depends_on=["PROD-1"])
    make_task("DEV-2", title="Wire the API", depends_on=["DEV-1"])

    found = admin_client.get(changelist("task"), {"q": "wire"})
    assert [t.pk for t in found.context["cl"].result_list] == ["DEV-2"]

    by_status = admin_client.get(changelist("task"), {"status__exact": "done"})
    assert [t.pk for t in by_status.context["cl"].result_list] == ["PROD-1"]

    blocked = admin_client.get(changelist("task"), {"blocked": "yes"})
    assert [t.pk for t in blocked.context["cl"].result_list] == ["DEV-2"]


def test_task_change_page_shows_inlines_and_event_history(admin_client, make_task):
    from tasks_app import workflow

    make_task("DEV-1")
    workflow.activate(task_id="DEV-1", actor="lead")
    response = admin_client.get(reverse("admin:tasks_app_task_change", args=["DEV-1"]))
    body = response.content.decode()
    assert response.status_code == 200
    assert "handoff notes written" in body.lower()
    assert "activated" in body
    assert "?task_key=DEV-1" in body


def test_event_list_filters_by_task_key(admin_client, make_task):
    from tasks_app import workflow

    make_task("DEV-1")
    make_task("DEV-2")
    workflow.activate(task_id="DEV-1")
    workflow.activate(task_id="DEV-2")
    response = admin_client.get(changelist("event"), {"task_key": "DEV-2"})
    assert [e.task_key for e in response.context["cl"].result_list] == ["DEV-2"]


def test_events_cannot_be_added_changed_or_deleted(admin_client, make_task):
    from tasks_app import workflow

    make_task("DEV-1")
    workflow.activate(task_id="DEV-1")
    event = Event.objects.get()
    assert admin_client.get(reverse("admin:tasks_app_event_add")).status_code == 403
    change_url = reverse("admin:tasks_app_event_change", args=[event.pk])
    assert admin_client.post(change_url, {"kind": "moved"}).status_code == 403
    delete_url = reverse("admin:tasks_app_event_delete", args=[event.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    event.refresh_from_db()
    assert event.kind == "activated"


# Actions -------------------------------------------------------------------------------------


def test_activate_action_activates_and_reports_blocked_tasks(admin_client, make_task):
    make_task("PROD-1", pod="ProductPod")
    make_task("DEV-1", depends_on=["PROD-1"])
    response = run_action(admin_client, "activate", ["PROD-1", "DEV-1"])
    messages = texts(response)
    assert Task.objects.get(pk="PROD-1").status == "active"
    assert Task.objects.get(pk="DEV-1").status == "ready"
    assert any("Activated 1 task(s): PROD-1" in m for m in messages)
    assert any(m.startswith("DEV-1:") and "PROD-1" in m for m in messages)


def test_complete_action_completes_as_the_admin_and_starts_sync_successor(admin_client, make_task):
    make_task(
        "PROD-1", pod="ProductPod", status="active", handoff_mode="sync", claimed_by="ProductPod#1"
    )
    make_task("DEV-1", depends_on=["PROD-1"])
    response = run_action(admin_client, "complete", ["PROD-1"])
    assert any("Completed 1 task(s)" in m for m in texts(response))
    assert Task.objects.get(pk="PROD-1").status == "done"
    assert Task.objects.get(pk="DEV-1").status == "active"
    assert Event.objects.get(task_key="PROD-1", kind="completed").actor == "admin"


def test_complete_action_refuses_a_ready_task_with_the_reason(admin_client, make_task):
    make_task("DEV-1")
    response = run_action(admin_client, "complete", ["DEV-1"])
    assert any(m.startswith("DEV-1:") and "activate" in m for m in texts(response))
    assert Task.objects.get(pk="DEV-1").status == "ready"


def test_scale_out_action_creates_a_continuation(admin_client, make_task):
    make_task("DEV-1", status="active", claimed_by="DevPod#1")
    response = run_action(admin_client, "scale_out", ["DEV-1"])
    assert any("DEV-1.2" in m for m in texts(response))
    continuation = Task.objects.get(pk="DEV-1.2")
    assert continuation.status == "ready"
    note = HandoffNote.objects.get(from_task_id="DEV-1", to_task=continuation)
    assert note.handoff_type == "scale"


def test_expire_leases_action_returns_stalled_tasks(admin_client, make_task):
    make_task(
        "DEV-1",
        status="active",
        claimed_by="DevPod#1",
        lease_expires_at=timezone.now() - timedelta(seconds=5),
    )
    response = run_action(admin_client, "expire_leases", ["DEV-1"])
    assert any("Returned 1 task(s)" in m for m in texts(response))
    assert Task.objects.get(pk="DEV-1").status == "ready"


def test_export_selected_downloads_a_zip_of_task_directories(admin_client, make_task):
    make_task("DEV-1", title="Build it")
    make_task("DEV-2")
    response = admin_client.post(
        changelist("task"), {"action": "export_selected", "_selected_action": ["DEV-1"]}
    )
    assert response["Content-Type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    assert "podboard-tasks/tasks/DEV-1/task.yaml" in names
    assert not any("DEV-2" in name for name in names)


# Saving a task -------------------------------------------------------------------------------


def test_change_form_refuses_a_dependency_cycle(admin_client, make_task):
    make_task("DEV-1")
    make_task("DEV-2", depends_on=["DEV-1"])
    task = Task.objects.get(pk="DEV-1")
    url = reverse("admin:tasks_app_task_change", args=["DEV-1"])
    response = admin_client.post(url, task_form_data(task, depends_on=["DEV-2"]))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["depends_on"]
    assert "cycle" in errors[0] and "DEV-2" in errors[0]
    assert not task.depends_on.exists()
    assert not Event.objects.filter(kind="edited").exists()


def test_editing_a_task_records_an_edited_event_and_bumps_version(
    admin_client, make_task, monkeypatch, django_capture_on_commit_callbacks
):
    announced = []
    monkeypatch.setattr("tasks_app.live.publish", lambda events: announced.append(events))
    make_task("DEV-1")
    make_task("PROD-1", pod="ProductPod")
    task = Task.objects.get(pk="DEV-1")
    url = reverse("admin:tasks_app_task_change", args=["DEV-1"])
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            url, task_form_data(task, title="Build the sign-in form", depends_on=["PROD-1"])
        )
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.title == "Build the sign-in form"
    assert list(task.depends_on.values_list("pk", flat=True)) == ["PROD-1"]
    assert task.version == 2
    event = Event.objects.get(task_key="DEV-1", kind="edited")
    assert event.actor == "admin"
    assert {"title", "depends_on"} <= set(event.payload["fields"])
    assert [[e.kind for e in batch] for batch in announced] == [["edited"]]


def test_adding_a_task_records_a_created_event(admin_client, make_task, pods):
    make_task("PROD-1", pod="ProductPod")
    blank = Task(id="DEV-9", title="New", pod_owner=pods["DevPod"])
    data = task_form_data(blank, id="DEV-9", depends_on=["PROD-1"])
    data["created_at_0"], data["created_at_1"] = "2026-11-20", "09:00:00"
    response = admin_client.post(reverse("admin:tasks_app_task_add"), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    task = Task.objects.get(pk="DEV-9")
    assert list(task.depends_on.values_list("pk", flat=True)) == ["PROD-1"]
    assert Event.objects.get(task_key="DEV-9").kind == "created"


def test_auto_mode_rule_is_editable(admin_client):
    response = admin_client.post(
        reverse("admin:tasks_app_automoderule_add"), {"task_type": "qa", "mode": "async"}
    )
    assert response.status_code == 302
    assert AutoModeRule.objects.get(task_type="qa").mode == "async"


# Tokens --------------------------------------------------------------------------------------


def test_new_token_is_shown_once_and_only_its_hash_is_stored(admin_client, pods):
    response = admin_client.post(
        reverse("admin:tasks_app_podtoken_add"), {"pod": pods["DevPod"].pk, "label": "gpt"}
    )
    assert response.status_code == 200
    raw = response.context["raw_token"]
    assert raw.startswith("pb_") and raw in response.content.decode()
    assert "no-store" in response["Cache-Control"]

    token = PodToken.objects.get()
    assert token.key_hash == hash_token(raw)
    assert token.pod == pods["DevPod"] and token.label == "gpt"

    change = admin_client.get(reverse("admin:tasks_app_podtoken_change", args=[token.pk]))
    listing = admin_client.get(changelist("podtoken"))
    pod_page = admin_client.get(reverse("admin:tasks_app_pod_change", args=[pods["DevPod"].pk]))
    for page in (change, listing, pod_page):
        body = page.content.decode()
        assert raw not in body
        assert token.key_hash not in body
        assert token.prefix in body


def test_revoke_action_revokes_tokens(admin_client, pods):
    token, _ = PodToken.issue(pod=pods["QAPod"])
    admin_client.post(changelist("podtoken"), {"action": "revoke", "_selected_action": [token.pk]})
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_deleting_a_task_writes_a_deleted_event_and_announces_it(
    admin_client, make_task, monkeypatch, django_capture_on_commit_callbacks
):
    announced = []
    monkeypatch.setattr("tasks_app.live.publish", lambda events: announced.append(events))
    make_task("DEV-1")
    make_task("QA-1", pod="QAPod", depends_on=["DEV-1"])
    url = reverse("admin:tasks_app_task_delete", args=["DEV-1"])
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, {"post": "yes"})
    assert response.status_code == 302
    assert not Task.objects.filter(pk="DEV-1").exists()
    event = Event.objects.get(kind="deleted")
    assert (event.task_id, event.task_key, event.actor) == (None, "DEV-1", "admin")
    assert event.payload["successors"] == ["QA-1"]
    assert [[(e.kind, e.task_key) for e in batch] for batch in announced] == [
        [("deleted", "DEV-1")]
    ]
    # The successor no longer waits for the deleted task, and its card gets a new version.
    qa = Task.objects.get(pk="QA-1")
    assert (list(qa.depends_on.all()), qa.version) == ([], 2)


def test_deleting_selected_tasks_announces_them_once(
    admin_client, make_task, monkeypatch, django_capture_on_commit_callbacks
):
    announced = []
    monkeypatch.setattr("tasks_app.live.publish", lambda events: announced.append(events))
    make_task("DEV-1")
    make_task("DEV-2")
    url = reverse("admin:tasks_app_task_changelist")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            url,
            {"action": "delete_selected", "_selected_action": ["DEV-1", "DEV-2"], "post": "yes"},
        )
    assert response.status_code == 302
    assert not Task.objects.exists()
    assert sorted(Event.objects.filter(kind="deleted").values_list("task_key", flat=True)) == [
        "DEV-1",
        "DEV-2",
    ]
    assert [sorted(e.task_key for e in batch) for batch in announced] == [["DEV-1", "DEV-2"]]
