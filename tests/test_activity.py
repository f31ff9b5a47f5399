"""The activity feed: /activity/, its rows fragment, the captions, and the board's drawer."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from tasks_app import workflow
from tasks_app.insight import feed
from tasks_app.models import Event, Task
from tasks_app.templatetags.insight import ago


def ids_on(html):
    """The Event ids of the feed rows in ``html``, in page order."""
    return [int(n) for n in re.findall(r'<li class="feed-row[^"]*" id="event-(\d+)"', html)]


def captions_on(html):
    return re.findall(r'<span class="feed-caption" dir="auto">([^<]*)</span>', html)


@pytest.fixture
def flow(make_task):
    """Real rules: PROD-120 hands a sync baton to DEV-120, DEV-101 scales out, DEV-7 stalls."""
    make_task("PROD-120", pod="ProductPod", handoff_mode="sync", status="active", claimed_by="P#1")
    make_task("DEV-120", depends_on=["PROD-120"], handoff_from=Task(pk="PROD-120"))
    workflow.complete(task_id="PROD-120", instance="P#1", handoff_note="Spec is done.")
    make_task("DEV-101", status="active", claimed_by="DevPod#1", token_count=9000)
    workflow.scale_out(task_id="DEV-101", instance="DevPod#1", reason="capacity_reached")
    make_task("DEV-7")
    workflow.claim_next(pod=Task.objects.get(pk="DEV-7").pod_owner, instance="DevPod#3")
    Task.objects.filter(claimed_by="DevPod#3").update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    workflow.expire_leases()


def test_captions_say_what_happened_in_words(flow):
    by_kind = {e.kind: feed.caption(e) for e in Event.objects.order_by("id")}
    assert by_kind["handoff"] == "baton from PROD-120 → DEV-120 (sync), reserved"
    assert by_kind["completed"] == "done → DEV-120"
    assert by_kind["scaled_out"] == "scaled out → DEV-101.2 (capacity reached)"
    assert by_kind["lease_expired"] == "stalled, back to Ready (DevPod#3 went quiet)"
    assert by_kind["claimed"] == "claimed by DevPod#3"
    created = Event.objects.get(kind="created", task_key="DEV-101.2")
    assert feed.caption(created) == "continuation of DEV-101 (scale-out), in Ready"


@pytest.mark.parametrize(
    ("kind", "fields", "expected"),
    [
        ("moved", {"from_status": "active", "to_status": "done"}, "moved Active → Done"),
        (
            "moved",
            {"from_status": "ready", "to_status": "ready", "from_pod": "DevPod", "to_pod": "QAPod"},
            "moved Ready → Ready, DevPod → QAPod",
        ),
        ("reviewed", {"payload": {"verdict": "approve"}}, "approved in review"),
        (
            "reviewed",
            {"payload": {"verdict": "changes_requested", "note": "Fix\nthe  login"}},
            "changes requested: “Fix the login”",
        ),
        (
            "sent_back",
            {"payload": {"to": "DEV-1", "rework": "DEV-1.fix1"}},
            "sent back to DEV-1 → rework DEV-1.fix1",
        ),
        (
            "created",
            {"to_status": "ready", "payload": {"rework_of": "DEV-1", "sent_back_by": "QA-1"}},
            "rework of DEV-1, sent back by QA-1",
        ),
        ("created", {"to_status": "ready"}, "created in Ready"),
        (
            "handoff",
            {"payload": {"handoff_from": "A-1", "mode": "async"}},
            "baton from A-1 → X-1 (async)",
        ),
        (
            "handoff",
            {"payload": {"handoff_from": "A-1", "mode": "sync", "blocked": True}},
            "baton from A-1 → X-1 (sync), still waiting on other dependencies",
        ),
        (
            "completed",
            {"payload": {"approved_by": "lead", "successors": []}},
            "approved by lead, done",
        ),
        ("edited", {"payload": {"fields": ["priority", "title"]}}, "edited: priority, title"),
        (
            "edited",
            {"payload": {"waits_for": "X-1.2", "instead_of": "X-1"}},
            "now waits for X-1.2 instead of X-1",
        ),
        (
            "traced",
            {"payload": {"steps": 2, "thoughts": 1, "token_count": 1200}},
            "trace: 2 steps, 1 thought, 1,200 tokens",
        ),
        ("deleted", {"payload": {"title": "Old task"}}, "deleted “Old task”"),
        ("asked", {"payload": {"question": "x" * 80}}, "asked a person: “" + "x" * 59 + "…”"),
        ("paused", {"from_pod": "DevPod"}, "DevPod paused"),
        ("imported", {"payload": {"created": True}}, "imported, new"),
        ("submitted", {}, "submitted for review"),
    ],
)
def test_caption_of_each_kind(kind, fields, expected):
    assert feed.caption(Event(kind=kind, task_key="X-1", **fields)) == expected


def test_ago_counts_minutes_hours_and_days():
    now = timezone.now()
    assert ago(now - timedelta(seconds=59), now) == "just now"
    assert ago(now - timedelta(minutes=3, seconds=10), now) == "3 min ago"
    assert ago(now - timedelta(hours=5, minutes=59), now) == "5 h ago"
    assert ago(now - timedelta(days=2, hours=1), now) == "2 d ago"


def test_the_page_needs_a_sign_in(client, db):
    for url in ("/activity/", "/activity/rows/", "/activity/rows/?after=0"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"] == "/login/?next=" + url.replace("?", "%3F").replace("=", "%3D")


def test_the_page_lists_events_newest_first_with_task_links(client, flow, viewer):
    client.force_login(viewer)
    response = client.get("/activity/")
    assert response.status_code == 200
    html = response.content.decode()
    expected = list(Event.objects.order_by("-id").values_list("id", flat=True))
    assert ids_on(html) == expected
    assert captions_on(html)[0] == "stalled, back to Ready (DevPod#3 went quiet)"
    assert '<a class="feed-task" href="/tasks/DEV-120/">DEV-120</a>' in html
    assert f'data-after="{expected[0]}"' in html
    newest = Event.objects.get(pk=expected[0])
    assert f'<time datetime="{newest.created_at.isoformat()}"' in html
    assert ">just now</time>" in html


def test_filters_by_pod_and_by_kind(client, flow, viewer):
    client.force_login(viewer)
    html = client.get("/activity/?pod=ProductPod").content.decode()
    product = Event.objects.filter(task_key="PROD-120").order_by("-id")
    assert ids_on(html) == [e.id for e in product]
    html = client.get("/activity/?kind=handoff").content.decode()
    assert captions_on(html) == ["baton from PROD-120 → DEV-120 (sync), reserved"]
    html = client.get("/activity/?kind=scaled_out&pod=ProductPod").content.decode()
    assert ids_on(html) == []
    assert "No events match these filters yet." in html
    # An unknown pod or kind shows everything rather than nothing.
    html = client.get("/activity/?pod=Nope&kind=nope").content.decode()
    assert len(ids_on(html)) == Event.objects.count()


def test_older_link_pages_back_without_gaps(client, make_task, viewer):
    make_task("DEV-1")
    Event.objects.bulk_create(
        Event(task_key="DEV-1", kind="traced", payload={"steps": i}) for i in range(1, 121)
    )
    all_ids = list(Event.objects.order_by("-id").values_list("id", flat=True))
    client.force_login(viewer)
    first = client.get("/activity/").content.decode()
    assert ids_on(first) == all_ids[:50]
    assert f'href="/activity/?before={all_ids[49]}">Older events →</a>' in first
    second = client.get(f"/activity/?before={all_ids[49]}").content.decode()
    assert ids_on(second) == all_ids[50:100]
    assert "data-feed" not in second  # an older page is not live
    third = client.get(f"/activity/?before={all_ids[99]}").content.decode()
    assert ids_on(third) == all_ids[100:]
    assert "Older events" not in third
    # The filters ride along the older link.
    html = client.get("/activity/?kind=traced").content.decode()
    assert f'href="/activity/?before={all_ids[49]}&amp;kind=traced">Older' in html


def test_rows_fragment_answers_only_what_is_newer(client, make_task, viewer):
    make_task("DEV-1")
    old = timezone.now() - timedelta(minutes=5)
    for kind in ("created", "claimed"):
        Event.objects.create(task_key="DEV-1", task_id="DEV-1", kind=kind, created_at=old)
    last = Event.objects.order_by("-id").first().id
    client.force_login(viewer)
    nothing = client.get(f"/activity/rows/?after={last}")
    assert nothing.status_code == 204
    assert nothing["PodBoard-Feed-After"] == str(last)
    workflow.edit_task(task_id="DEV-1", actor="lead", apply=lambda: None, changed=["title"])
    new = Event.objects.order_by("-id").first()
    response = client.get(f"/activity/rows/?after={last}")
    assert response.status_code == 200
    assert response["PodBoard-Feed-After"] == str(new.id)
    html = response.content.decode()
    assert ids_on(html) == [new.id]
    assert captions_on(html) == ["edited: title"]
    assert "<html" not in html
    # A filter that the new Event does not match: nothing to show.
    assert client.get(f"/activity/rows/?after={last}&kind=claimed").status_code == 204


def test_rows_fragment_sends_recent_rows_below_the_cursor_again(client, make_task, viewer):
    """A transaction that committed a lower id late is not lost to a poll that moved on."""
    make_task("DEV-1")
    late = Event.objects.create(task_key="DEV-1", task_id="DEV-1", kind="claimed")
    newer = Event.objects.create(task_key="DEV-1", task_id="DEV-1", kind="traced")
    client.force_login(viewer)
    html = client.get(f"/activity/rows/?after={newer.id}").content.decode()
    assert ids_on(html) == [newer.id, late.id]
    Event.objects.filter(pk__in=[late.id, newer.id]).update(
        created_at=timezone.now() - timedelta(seconds=feed.SETTLE_SECONDS + 5)
    )
    assert client.get(f"/activity/rows/?after={newer.id}").status_code == 204


def test_rows_fragment_without_a_cursor_is_the_newest_page(client, flow, viewer):
    client.force_login(viewer)
    response = client.get("/activity/rows/?limit=3&pod=DevPod")
    expected = [e.id for e in Event.objects.order_by("-id") if "DevPod" in (e.to_pod, e.from_pod)][
        :3
    ]
    assert ids_on(response.content.decode()) == expected
    assert response["PodBoard-Feed-After"] == str(Event.objects.order_by("-id").first().id)


def test_a_pod_event_names_no_task(client, pods, viewer):
    workflow.pause(pod="DevPod", actor="lead")
    client.force_login(viewer)
    html = client.get("/activity/").content.decode()
    assert captions_on(html) == ["DevPod paused"]
    assert "feed-task" not in html


def test_a_deleted_task_is_named_but_not_linked(client, make_task, viewer):
    make_task("DEV-9", title="Gone soon")
    workflow.delete_tasks(task_ids=["DEV-9"], actor="lead")
    client.force_login(viewer)
    html = client.get("/activity/?kind=deleted").content.decode()
    assert '<span class="feed-task gone" title="deleted">DEV-9</span>' in html
    assert captions_on(html) == ["deleted “Gone soon”"]


def test_the_board_has_the_drawer_and_its_toggle(client, pods, viewer):
    client.force_login(viewer)
    html = client.get("/").content.decode()
    assert html.count('id="activity-toggle"') == 1
    assert 'aria-controls="activity-drawer" aria-expanded="false"' in html
    assert '<aside id="activity-drawer" class="activity-drawer"' in html
    assert 'data-rows-url="/activity/rows/"' in html
    assert "/static/js/activity.js" in html
    assert '<option value="QAPod">QAPod</option>' in html
    assert '<option value="scaled_out">scaled out</option>' in html
