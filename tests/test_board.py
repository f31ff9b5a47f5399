"""The board page: login, lanes and columns, filters, show-more pages, moves, query count."""

import json
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tasks_app import board
from tasks_app.models import Event, EventKind, Status, Task

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def client_lead(client, lead):
    client.force_login(lead)
    return client


def card_ids(html, lane):
    """Return the task ids of the cards inside ``#lane``, in page order."""
    start = html.index(f'id="{lane}"')
    end = html.index("</div>", html.index('<div class="more"', start))
    return re.findall(r'<article class="card[^"]*"[^>]*\bid="task-([^"]+)"', html[start:end])


def card_html(html, task_id):
    """Return the ``<article>`` of one card."""
    at = html.index(f'id="task-{task_id}"')
    start = html.rindex("<article", 0, at)
    return html[start : html.index("</article>", at)]


def move(client, task, **data):
    task.refresh_from_db()
    payload = {"task": task.pk, "version": task.version, **data}
    return client.post(reverse("board_move"), payload, **HX)


def toast(response):
    return json.loads(response["HX-Trigger"])["podboard:toast"]["message"]


# Login and CSRF ------------------------------------------------------------------------------


def test_anonymous_user_is_sent_to_login_from_every_page(client, make_task):
    make_task("DEV-1")
    for url in ["/", "/tasks/DEV-1/", reverse("board_more", args=["DevPod", "ready"])]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/?next=")


def test_anonymous_move_changes_nothing(client, make_task):
    task = make_task("DEV-1")
    response = client.post(
        reverse("board_move"), {"task": "DEV-1", "to_status": "active", "version": 1}
    )
    assert response.status_code == 302 and "/login/" in response["Location"]
    task.refresh_from_db()
    assert task.status == Status.READY and task.version == 1
    assert not Event.objects.filter(kind=EventKind.MOVED).exists()


def test_anonymous_htmx_request_gets_a_client_redirect_to_login(client, pods):
    response = client.get(
        "/", HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL="http://testserver/?pod=DevPod"
    )
    assert response.status_code == 200
    assert response["HX-Redirect"].startswith("/login/?next=")


def test_login_page_logs_in_and_goes_to_the_board(client, lead, pods):
    page = client.get("/login/")
    assert page.status_code == 200 and b'name="password"' in page.content
    response = client.post("/login/", {"username": "lead", "password": "lead-password-1"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_wrong_password_shows_an_error(client, lead):
    response = client.post("/login/", {"username": "lead", "password": "nope"})
    assert response.status_code == 200
    assert "didn't match" in response.content.decode()


def test_logout_is_a_post_and_ends_the_session(client_lead):
    assert client_lead.post("/logout/").status_code == 302
    assert client_lead.get("/").status_code == 302


def test_move_without_csrf_token_is_refused(lead, make_task):
    task = make_task("DEV-1")
    client = Client(enforce_csrf_checks=True)
    client.force_login(lead)
    response = client.post(
        reverse("board_move"), {"task": "DEV-1", "to_status": "active", "version": 1}, **HX
    )
    assert response.status_code == 403
    task.refresh_from_db()
    assert task.status == Status.READY


def test_board_page_carries_the_csrf_header_for_htmx(client_lead, pods):
    html = client_lead.get("/").content.decode()
    assert re.search(r"<body[^>]*hx-headers='\{\"X-CSRFToken\": \"[^\"]{20,}\"\}'", html)
    assert "django_htmx/htmx-2.min.js" in html and "ext/hx-ws-2.min.js" in html
    assert "vendor/sortablejs/Sortable.min.js" in html and "js/board.js" in html


# Lanes, columns, cards -----------------------------------------------------------------------


def test_lanes_follow_pod_order_with_three_counted_columns(client_lead, make_task, pods):
    pods["QAPod"].wip_limit = 2
    pods["QAPod"].save()
    make_task("QA-1", pod="QAPod", status=Status.ACTIVE)
    make_task("DEV-1")
    make_task("DEV-2")
    html = client_lead.get("/").content.decode()
    lanes = re.findall(r'<section class="lane" id="lane-(\w+)"', html)
    assert lanes == ["ProductPod", "DevPod", "QAPod"]
    assert re.search(r'id="count-DevPod-ready">2<', html)
    assert re.search(r'id="count-QAPod-active">1<', html)
    assert re.search(r'id="count-ProductPod-done">0<', html)
    assert re.search(r'id="wip-QAPod"[^>]*>WIP 1/2<', html)
    assert re.search(r'id="wip-DevPod"[^>]*>WIP 0/∞<', html)


def test_card_shows_its_facts(client_lead, make_task):
    make_task("PROD-1", pod="ProductPod")
    lease = timezone.now() + timedelta(minutes=10)
    make_task(
        "DEV-101",
        title="Build the sign-in form",
        task_type="build",
        priority=3,
        handoff_mode="auto",
        token_count=9120,
        status=Status.ACTIVE,
        claimed_by="DevPod#2",
        lease_expires_at=lease,
    )
    make_task("DEV-101.2", title="Continue the form", scale_root="DEV-101", depends_on=["PROD-1"])
    html = client_lead.get("/").content.decode()
    card = card_html(html, "DEV-101")
    assert "Build the sign-in form" in card
    assert "P3" in card and ">build<" in card and ">auto<" in card and "9.1k tok" in card
    assert "DevPod#2" in card and f'data-lease-expires="{lease.isoformat()}"' in card
    assert (
        'data-version="1"' in card
        and 'data-status="active"' in card
        and 'data-pod="DevPod"' in card
    )
    cont = card_html(html, "DEV-101.2")
    assert "is-continuation" in cont and "↻ DEV-101" in cont
    assert "⊘ blocked" in cont and 'href="/tasks/PROD-1/">PROD-1<' in cont


def test_card_text_is_escaped(client_lead, make_task):
    make_task("DEV-1", title="<script>window.__pwned=1</script>")
    html = client_lead.get("/").content.decode()
    assert "<script>window.__pwned" not in html
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html


def test_ready_column_orders_by_priority_then_position(client_lead, make_task):
    make_task("DEV-A", priority=1, position=0)
    make_task("DEV-B", priority=5)
    make_task("DEV-C", priority=1, position=-1)
    html = client_lead.get("/").content.decode()
    assert card_ids(html, "lane-DevPod-ready") == ["DEV-B", "DEV-C", "DEV-A"]


def test_done_column_shows_most_recent_first_and_a_show_more_button(client_lead, make_task):
    now = timezone.now()
    for i in range(board.PAGE_SIZE + 5):
        make_task(f"DEV-{i:03}", status=Status.DONE, completed_at=now - timedelta(minutes=i))
    html = client_lead.get("/").content.decode()
    shown = card_ids(html, "lane-DevPod-done")
    assert shown == [f"DEV-{i:03}" for i in range(board.PAGE_SIZE)]
    assert re.search(r'id="count-DevPod-done">25<', html)
    more_url = reverse("board_more", args=["DevPod", "done"]) + f"?offset={board.PAGE_SIZE}"
    assert more_url in html

    page = client_lead.get(more_url, **HX).content.decode()
    ids = re.findall(r'id="task-([^"]+)"', page)
    assert ids == [f"DEV-{i:03}" for i in range(board.PAGE_SIZE, board.PAGE_SIZE + 5)]
    # The out-of-band holder replaces the old button and has no further page.
    assert re.search(r'<div class="more" id="more-DevPod-done" hx-swap-oob="true">\s*</div>', page)


def test_show_more_pages_continue_until_the_column_ends(client_lead, make_task):
    for i in range(45):
        make_task(f"DEV-{i:03}")
    url = reverse("board_more", args=["DevPod", "ready"])
    second = client_lead.get(url + "?offset=20", **HX).content.decode()
    assert "?offset=40" in second and len(re.findall(r'<article class="card', second)) == 20
    third = client_lead.get(url + "?offset=40", **HX).content.decode()
    assert "offset=" not in third and len(re.findall(r'<article class="card', third)) == 5


def test_show_more_for_unknown_pod_or_column_is_404(client_lead, pods):
    assert client_lead.get(reverse("board_more", args=["NoPod", "ready"])).status_code == 404
    assert client_lead.get(reverse("board_more", args=["DevPod", "sideways"])).status_code == 404


# Filters -------------------------------------------------------------------------------------


def test_filters_narrow_the_board_and_live_in_the_url(client_lead, make_task):
    make_task("DEV-1", title="Login form", task_type="build")
    make_task("DEV-2", title="Payments", task_type="build")
    make_task("QA-1", pod="QAPod", title="Login tests", task_type="qa")
    html = client_lead.get("/?q=login").content.decode()
    assert 'id="task-DEV-1"' in html and 'id="task-QA-1"' in html and 'id="task-DEV-2"' not in html
    assert 'value="login"' in html

    html = client_lead.get("/?type=qa").content.decode()
    assert 'id="task-QA-1"' in html and 'id="task-DEV-1"' not in html
    assert re.search(r'id="count-DevPod-ready">0<', html)

    html = client_lead.get("/?pod=QAPod").content.decode()
    assert re.findall(r'<section class="lane" id="lane-(\w+)"', html) == ["QAPod"]


def test_filter_request_from_htmx_returns_only_the_board_body(client_lead, make_task):
    make_task("DEV-1", title="Login form")
    response = client_lead.get(
        "/?q=dev-1&pod=&type=", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="board-body"
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="board-body"') and "<html" not in html
    assert response["HX-Push-Url"] == "/?q=dev-1"
    assert "HX-Request" in response["Vary"]


def test_show_more_respects_filters(client_lead, make_task):
    for i in range(25):
        make_task(f"DEV-{i:03}", task_type="build" if i % 2 else "spec")
    html = client_lead.get("/?type=build").content.decode()
    assert "?offset=" not in html  # 12 build tasks fit on one page
    page = client_lead.get(
        reverse("board_more", args=["DevPod", "ready"]) + "?offset=0&type=spec"
    ).content.decode()
    assert len(re.findall(r'<article class="card', page)) == 13


# Moves ---------------------------------------------------------------------------------------


def test_drag_ready_to_active_activates_and_rerenders_card_and_counts(client_lead, make_task):
    task = make_task("DEV-1")
    response = move(client_lead, task, to_status="active", to_pod="DevPod")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<article class="card status-active"')
    assert 'id="task-DEV-1"' in html and 'data-version="2"' in html
    assert re.search(r'id="count-DevPod-active" hx-swap-oob="true">1<', html)
    assert re.search(r'id="count-DevPod-ready" hx-swap-oob="true">0<', html)
    task.refresh_from_db()
    assert task.status == Status.ACTIVE and task.claimed_by == ""
    assert Event.objects.filter(task=task, kind=EventKind.MOVED, actor="lead").exists()
    assert "Active" in toast(response)


def test_drag_to_another_pod_lane_reassigns_and_releases_the_claim(client_lead, make_task, pods):
    task = make_task(
        "DEV-1",
        status=Status.ACTIVE,
        claimed_by="DevPod#1",
        lease_expires_at=timezone.now() + timedelta(minutes=5),
    )
    response = move(client_lead, task, to_status="active", to_pod="QAPod")
    assert response.status_code == 200
    assert 'data-pod="QAPod"' in response.content.decode()
    task.refresh_from_db()
    assert (
        task.pod_owner == pods["QAPod"] and task.claimed_by == "" and task.lease_expires_at is None
    )


def test_blocked_task_refused_into_active_with_the_reason(client_lead, make_task):
    make_task("PROD-1", pod="ProductPod")
    task = make_task("DEV-1", depends_on=["PROD-1"])
    response = move(client_lead, task, to_status="active")
    assert response.status_code == 409
    assert toast(response) == "Task DEV-1 waits for PROD-1 to be done."
    assert response["X-Podboard-Code"] == "blocked"
    # The body is the card as it still is, so the board can put it back unchanged.
    assert 'data-status="ready"' in response.content.decode()
    task.refresh_from_db()
    assert task.status == Status.READY and task.version == 1


def test_stale_version_is_refused_as_a_conflict(client_lead, make_task):
    task = make_task("DEV-1")
    Task.objects.filter(pk="DEV-1").update(version=4)
    response = client_lead.post(
        reverse("board_move"), {"task": "DEV-1", "version": 1, "to_status": "active"}, **HX
    )
    assert response.status_code == 409
    assert "changed since you loaded it" in toast(response)
    assert 'data-version="4"' in response.content.decode()
    task.refresh_from_db()
    assert task.status == Status.READY


def test_move_of_unknown_task_is_404_with_a_message(client_lead, pods):
    response = client_lead.post(
        reverse("board_move"), {"task": "NOPE", "to_status": "active"}, **HX
    )
    assert response.status_code == 404
    assert "NOPE" in toast(response)


def test_move_to_unknown_pod_is_refused(client_lead, make_task):
    task = make_task("DEV-1")
    response = move(client_lead, task, to_status="ready", to_pod="GhostPod")
    assert response.status_code == 422
    assert "GhostPod" in toast(response)


def test_active_to_done_completes_with_the_user_as_author(client_lead, make_task):
    task = make_task("DEV-1", status=Status.ACTIVE)
    response = move(client_lead, task, to_status="done")
    assert response.status_code == 200
    task.refresh_from_db()
    assert task.status == Status.DONE and task.completed_at is not None


def test_reorder_within_a_column_places_the_card_between_its_neighbours(client_lead, make_task):
    for name in "ABCD":
        make_task(f"DEV-{name}", priority=1)
    # All positions are 0: the band is spaced out, then D lands between A and B.
    response = move(
        client_lead, Task.objects.get(pk="DEV-D"), to_status="ready", after="DEV-A", before="DEV-B"
    )
    assert response.status_code == 200
    html = client_lead.get("/").content.decode()
    assert card_ids(html, "lane-DevPod-ready") == ["DEV-A", "DEV-D", "DEV-B", "DEV-C"]
    # And once more, now with a gap to split: C between A and D.
    move(
        client_lead, Task.objects.get(pk="DEV-C"), to_status="ready", after="DEV-A", before="DEV-D"
    )
    html = client_lead.get("/").content.decode()
    assert card_ids(html, "lane-DevPod-ready") == ["DEV-A", "DEV-C", "DEV-D", "DEV-B"]


def test_drop_at_the_top_of_another_column_goes_above_its_first_card(client_lead, make_task):
    make_task("QA-1", pod="QAPod")
    make_task("QA-2", pod="QAPod")
    task = make_task("DEV-1")
    move(client_lead, task, to_status="ready", to_pod="QAPod", before="QA-1")
    html = client_lead.get("/").content.decode()
    assert card_ids(html, "lane-QAPod-ready") == ["DEV-1", "QA-1", "QA-2"]


def test_move_menu_without_javascript_redirects_with_a_message(client_lead, make_task):
    make_task("PROD-1", pod="ProductPod")
    task = make_task("DEV-1", depends_on=["PROD-1"])
    response = client_lead.post(
        reverse("board_move"),
        {"task": "DEV-1", "version": 1, "to_status": "active", "next": "/?pod=DevPod"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == "/?pod=DevPod"
    assert "Task DEV-1 waits for PROD-1 to be done." in response.content.decode()
    task.refresh_from_db()
    assert task.status == Status.READY


def test_move_refuses_an_offsite_next(client_lead, make_task):
    make_task("DEV-1")
    response = client_lead.post(
        reverse("board_move"),
        {"task": "DEV-1", "version": 1, "to_status": "active", "next": "https://evil.example/"},
    )
    assert response["Location"] == "/"


# Render helpers for live updates -------------------------------------------------------------


def test_render_cards_returns_card_html_by_id_in_constant_queries(make_task):
    ids = [make_task(f"DEV-{i}").pk for i in range(30)]
    with CaptureQueriesContext(connection) as few:
        board.render_cards(ids[:2])
    with CaptureQueriesContext(connection) as many:
        cards = board.render_cards(ids + ["GONE"])
    assert len(few) == len(many) <= 3
    assert set(cards) == set(ids)
    assert (
        cards["DEV-7"].lstrip().startswith('<article class="card')
        and 'id="task-DEV-7"' in cards["DEV-7"]
    )


def test_render_counts_returns_out_of_band_counts(make_task):
    make_task("DEV-1")
    html = board.render_counts()
    assert re.search(
        r'<span class="count" id="count-DevPod-ready" hx-swap-oob="true">1</span>', html
    )
    assert 'id="wip-QAPod" hx-swap-oob="true"' in html


# Scale ---------------------------------------------------------------------------------------


def _seed_bulk(pods, n, start=0):
    now = timezone.now()
    pod_list = list(pods.values())
    statuses = [Status.READY, Status.ACTIVE, Status.DONE]
    tasks = [
        Task(
            id=f"T-{i:06}",
            title=f"Task {i}",
            pod_owner=pod_list[i % 3],
            status=statuses[(i // 3) % 3],
            task_type=["spec", "build", "qa"][i % 3],
            priority=i % 4,
            claimed_by="Pod#1" if (i // 3) % 3 == 1 else "",
            completed_at=now - timedelta(seconds=i) if (i // 3) % 3 == 2 else None,
        )
        for i in range(start, start + n)
    ]
    Task.objects.bulk_create(tasks, batch_size=1000)
    through = Task.depends_on.through
    through.objects.bulk_create(
        [
            through(from_task_id=t.id, to_task_id=tasks[max(0, j - 7)].id)
            for j, t in enumerate(tasks)
            if j % 5 == 0 and j >= 7
        ],
        batch_size=1000,
    )


def test_board_query_count_is_constant(client_lead, pods):
    _seed_bulk(pods, 10)
    client_lead.get("/")  # warm up: session and user lookups settle
    with CaptureQueriesContext(connection) as small:
        assert client_lead.get("/").status_code == 200
    with CaptureQueriesContext(connection) as small_filtered:
        assert client_lead.get("/?type=build&q=Task").status_code == 200
    _seed_bulk(pods, 4990, start=10)
    assert Task.objects.count() == 5000
    with CaptureQueriesContext(connection) as large:
        response = client_lead.get("/")
    assert response.status_code == 200
    assert len(small) == len(large), ([q["sql"] for q in small], [q["sql"] for q in large])
    # Each column shows one page, whatever the number of tasks.
    html = response.content.decode()
    assert len(re.findall(r'<article class="card', html)) == 9 * board.PAGE_SIZE
    with CaptureQueriesContext(connection) as filtered:
        client_lead.get("/?type=build&q=Task")
    # A text search adds one query: the lookup of the tasks it matches (``with_matches``).
    assert len(filtered) == len(small_filtered) == len(large) + 1


# Board UX: refusals that place the card, WIP over all tasks, exact ids, captions --------------


def test_a_conflict_answers_where_the_card_is_now(client_lead, make_task):
    make_task("DEV-1", status=Status.ACTIVE)
    make_task("DEV-2", status=Status.ACTIVE)
    Task.objects.filter(pk="DEV-1").update(version=4)
    response = client_lead.post(
        reverse("board_move"), {"task": "DEV-1", "version": 1, "to_status": "done"}, **HX
    )
    assert response.status_code == 409
    assert response["PodBoard-Lane"] == "lane-DevPod-active"
    assert response["PodBoard-Before"] in ("task-DEV-2", "")
    assert toast(response).endswith("It is now Active in DevPod.")


def test_wip_badge_counts_all_active_tasks_under_a_search(client_lead, make_task, pods):
    pods["DevPod"].wip_limit = 3
    pods["DevPod"].save()
    make_task("DEV-1", status=Status.ACTIVE, title="Payments")
    make_task("DEV-2", status=Status.ACTIVE, title="Login")
    html = client_lead.get("/?q=login").content.decode()
    assert re.search(r'id="count-DevPod-active">1<', html)
    assert re.search(r'id="wip-DevPod"[^>]*>WIP 2/3<', html)
    empty = client_lead.get("/?q=zebra").content.decode()
    assert "Nothing matches “zebra”." in empty
    assert re.search(r'id="wip-DevPod"[^>]*>WIP 2/3<', empty)


def test_searching_an_id_ranks_that_task_first(client_lead, make_task):
    for task_id in ["DEV-1010", "DEV-1011", "DEV-101"]:
        make_task(task_id, priority=5 if task_id != "DEV-101" else 0)
    html = client_lead.get("/?q=dev-101").content.decode()
    assert card_ids(html, "lane-DevPod-ready") == ["DEV-101", "DEV-1010", "DEV-1011"]


def test_reopen_moves_a_done_task_back_to_ready_through_the_move_rule(client_lead, make_task):
    make_task("DEV-1", status=Status.DONE, completed_at=timezone.now())
    response = client_lead.post(
        reverse("task_action", args=["DEV-1", "reopen"]), {"version": 1}, **HX
    )
    assert response.status_code == 200
    task = Task.objects.get(pk="DEV-1")
    assert task.status == Status.READY and task.completed_at is None
    assert Event.objects.filter(task_key="DEV-1", kind="moved", to_status="ready").count() == 1


def test_live_captions_say_why_a_card_flashes():
    from tasks_app.live.changes import touched

    events = [
        {
            "kind": "handoff",
            "task_key": "DEV-2",
            "payload": {"handoff_from": "DEV-1", "mode": "sync"},
        },
        {"kind": "scaled_out", "task_key": "DEV-3", "payload": {"continuation": "DEV-3.2"}},
        {"kind": "lease_expired", "task_key": "DEV-4", "payload": {}},
    ]
    _ids, flash, _pods = touched(events)
    assert flash == {
        "DEV-2": "baton from DEV-1 · sync",
        "DEV-1": "baton → DEV-2",
        "DEV-3": "scaled out → DEV-3.2",
        "DEV-3.2": "continues DEV-3",
        "DEV-4": "stalled, back to Ready",
    }


def test_done_a_few_seconds_ago_reads_just_now():
    from tasks_app.templatetags.podboard import ago

    now = timezone.now()
    assert ago(now - timedelta(seconds=20), now) == "just now"
    assert ago(now - timedelta(minutes=5), now) == "5\xa0minutes ago"
