"""The board's websocket: who may listen, what each workflow rule pushes, filters, catch-up."""

import asyncio
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.db import connections
from django.utils import timezone

from podboard.asgi import application
from tasks_app import live, workflow
from tasks_app.consumers import BoardConsumer
from tasks_app.models import Event, EventKind, Task

pytestmark = pytest.mark.django_db(transaction=True)

db = database_sync_to_async

VOID = {"input", "br", "img", "hr", "meta", "link"}


class Push(HTMLParser):
    """The top-level elements of one pushed message: ``{id: (attrs, inner html)}``."""

    def __init__(self, text):
        super().__init__()
        self.text = text
        self.depth = 0
        self.order = []
        self.elements = {}
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if self.depth == 0:
            attrs = dict(attrs)
            key = attrs["id"]
            self.order.append(key)
            self.elements[key] = attrs
        if tag not in VOID:
            self.depth += 1

    def handle_endtag(self, tag):
        self.depth -= 1

    @property
    def seq(self):
        return int(self.elements["live-meta"]["data-seq"])

    def put(self, task_id):
        return self.elements.get(f"live-put-task-{task_id}")

    def dropped(self, task_id):
        return f"live-drop-task-{task_id}" in self.elements

    def card_html(self, task_id):
        start = self.text.index(f'id="live-put-task-{task_id}"')
        return self.text[start : self.text.index("</article>", start)]


async def connect(user, query=""):
    board = WebsocketCommunicator(BoardConsumer.as_asgi(), f"/ws/board/?{query}")
    board.scope["user"] = user
    connected, _ = await board.connect()
    assert connected
    return board


async def next_push(board, timeout=2):
    return Push(await board.receive_from(timeout=timeout))


async def latest_event_id():
    return await db(live.latest_seq_now)()


@pytest.fixture(autouse=True)
async def close_thread_connections():
    """Close the connections the consumers' database thread opened (PostgreSQL keeps them)."""
    yield
    await db(connections.close_all)()


@pytest.fixture
async def lead_board(lead):
    board = await connect(lead)
    yield board
    await board.disconnect()


# Who may listen --------------------------------------------------------------------------------


async def test_anonymous_socket_is_refused(db):
    board = WebsocketCommunicator(BoardConsumer.as_asgi(), "/ws/board/")
    board.scope["user"] = AnonymousUser()
    connected, _ = await board.connect()
    assert not connected
    await board.disconnect()


async def test_full_stack_refuses_a_socket_without_a_session(db):
    board = WebsocketCommunicator(
        application, "/ws/board/", headers=[(b"origin", b"http://127.0.0.1")]
    )
    connected, _ = await board.connect()
    assert not connected
    await board.disconnect()


async def test_logged_in_user_is_accepted_and_hears_nothing_without_changes(lead_board):
    assert await lead_board.receive_nothing(timeout=0.2)


# One message per workflow rule -----------------------------------------------------------------


async def test_activate_moves_card_to_active_and_updates_counts(make_task, lead_board):
    await db(make_task)("DEV-1")
    await db(workflow.activate)(task_id="DEV-1", actor="lead")
    push = await next_push(lead_board)
    assert push.seq == await latest_event_id()
    assert push.order[0] == "live-meta"
    assert push.dropped("DEV-1")
    put = push.put("DEV-1")
    assert put["hx-swap-oob"] == "beforeend:#lane-DevPod-active"
    assert put["data-version"] == "2"
    assert 'data-status="active"' in push.card_html("DEV-1")
    assert push.order.index("live-drop-task-DEV-1") < push.order.index("live-put-task-DEV-1")
    assert push.elements["count-DevPod-active"]["hx-swap-oob"] == "true"
    assert "count-DevPod-ready" in push.elements
    assert "wip-DevPod" in push.elements
    assert "data-flash" not in put
    for key, attrs in push.elements.items():
        assert attrs.get("hx-swap-oob"), key


async def test_claim_next_shows_the_holding_instance(make_task, pods, lead_board):
    await db(make_task)("DEV-1")
    await db(workflow.claim_next)(pod=pods["DevPod"], instance="DevPod#7")
    push = await next_push(lead_board)
    assert push.put("DEV-1")["data-lane"] == "lane-DevPod-active"
    assert "DevPod#7" in push.card_html("DEV-1")


async def test_sync_completion_pushes_done_card_and_active_successor_both_flashing(
    make_task, lead_board
):
    await db(make_task)("PROD-1", pod="ProductPod", status="active", handoff_mode="sync")
    await db(make_task)("DEV-1", depends_on=["PROD-1"], handoff_from_id="PROD-1")
    await db(workflow.complete)(task_id="PROD-1", handoff_note="Go")
    push = await next_push(lead_board)
    done, successor = push.put("PROD-1"), push.put("DEV-1")
    assert done["hx-swap-oob"] == "afterbegin:#lane-ProductPod-done"
    assert successor["hx-swap-oob"] == "beforeend:#lane-DevPod-active"
    assert done["data-flash"] == successor["data-flash"] == "1"
    assert {"count-ProductPod-done", "count-DevPod-active"} <= set(push.elements)
    # One rule, one announcement: the handoffs and the completion arrive in this one push,
    # and the cards are not sent again.
    assert push.seq == await latest_event_id()
    assert await lead_board.receive_nothing(timeout=0.3)


async def test_async_completion_leaves_successor_ready(make_task, lead_board):
    await db(make_task)("PROD-1", pod="ProductPod", status="active", handoff_mode="async")
    await db(make_task)("DEV-1", depends_on=["PROD-1"])
    await db(workflow.complete)(task_id="PROD-1")
    push = await next_push(lead_board)
    assert push.put("PROD-1")["data-lane"] == "lane-ProductPod-done"
    assert push.put("DEV-1")["data-lane"] == "lane-DevPod-ready"
    assert push.put("DEV-1")["data-flash"] == "1"
    assert "blocked" not in push.card_html("DEV-1")


async def test_scale_out_shows_continuation_card_and_flashes_both(make_task, lead_board):
    await db(make_task)("DEV-1", status="active", claimed_by="DevPod#1")
    await db(workflow.scale_out)(task_id="DEV-1", instance="DevPod#1", token_count=15000)
    push = await next_push(lead_board)
    assert push.put("DEV-1")["data-lane"] == "lane-DevPod-done"
    continuation = push.put("DEV-1.2")
    assert continuation["data-lane"] == "lane-DevPod-ready"
    assert continuation["data-flash"] == push.put("DEV-1")["data-flash"] == "1"
    # A dotted id is escaped in the CSS selector htmx uses to find the old card.
    assert push.elements["live-drop-task-DEV-1.2"]["hx-swap-oob"] == "delete:#task-DEV-1\\.2"
    assert "is-continuation" in push.card_html("DEV-1.2")


async def test_auto_handoff_links_and_starts_the_next_task(make_task, lead_board):
    await db(make_task)("PROD-1", pod="ProductPod", status="done")
    await db(make_task)("DEV-1")
    await db(workflow.auto_handoff)(task_id="PROD-1", next_task_id="DEV-1", actor="lead")
    push = await next_push(lead_board)
    assert push.put("DEV-1")["data-lane"] == "lane-DevPod-active"
    assert push.put("DEV-1")["data-flash"] == "1"
    assert push.put("PROD-1")["data-flash"] == "1"  # the giver flashes too


async def test_move_to_another_pod_lane(make_task, lead_board):
    task = await db(make_task)("DEV-1")
    await db(workflow.move)(task_id="DEV-1", actor="lead", to_pod="QAPod", version=task.version)
    push = await next_push(lead_board)
    assert push.dropped("DEV-1")
    assert push.put("DEV-1")["data-lane"] == "lane-QAPod-ready"
    assert {"count-DevPod-ready", "count-QAPod-ready"} <= set(push.elements)


async def test_lease_expiry_returns_card_to_ready(make_task, lead_board):
    past = timezone.now() - timedelta(minutes=1)
    await db(make_task)("DEV-1", status="active", claimed_by="DevPod#1", lease_expires_at=past)
    assert await db(workflow.expire_leases)() == 1
    push = await next_push(lead_board)
    assert push.put("DEV-1")["data-lane"] == "lane-DevPod-ready"
    assert "DevPod#1" not in push.card_html("DEV-1")


async def test_import_sends_one_refresh_not_a_card_per_task(make_task, lead_board):
    ids = [f"IMP-{n}" for n in range(30)]
    for task_id in ids:
        await db(make_task)(task_id)

    def import_them():
        # What the rule runner announces for an import: one ``imported`` Event per task, in
        # one publish after commit.
        events = [
            Event.objects.create(task_id=t, task_key=t, kind=EventKind.IMPORTED, actor="lead")
            for t in ids
        ]
        live.publish(events)

    await db(import_them)()
    push = await next_push(lead_board)
    assert set(push.elements) == {"live-meta"}
    assert push.elements["live-meta"]["data-refresh"] == "import"
    assert push.elements["live-meta"]["data-count"] == "30"
    assert push.seq == await latest_event_id()
    assert await lead_board.receive_nothing(timeout=0.2)


async def test_deleted_task_is_dropped_everywhere(make_task, lead_board):
    await db(make_task)("DEV-1")

    def delete_and_announce():
        task = Task.objects.get(pk="DEV-1")
        event = Event.objects.create(task=None, task_key="DEV-1", kind=EventKind.DELETED)
        task.delete()
        live.publish([event])

    await db(delete_and_announce)()
    push = await next_push(lead_board)
    assert push.elements["live-drop-task-DEV-1"]["data-gone"] == "1"
    assert push.put("DEV-1") is None


# Filters ---------------------------------------------------------------------------------------


async def test_board_filtered_to_another_pod_gets_no_card(make_task, lead):
    await db(make_task)("DEV-1")
    qa_board = await connect(lead, "pod=QAPod")
    try:
        await db(workflow.activate)(task_id="DEV-1")
        push = await next_push(qa_board)
        assert push.put("DEV-1") is None
        assert not any(key.startswith("count-DevPod") for key in push.elements)
        assert push.seq == await latest_event_id()  # its sequence still advances
    finally:
        await qa_board.disconnect()


async def test_card_that_stops_matching_the_filter_is_only_removed(make_task, lead):
    await db(make_task)("DEV-1", task_type="build")
    build_board = await connect(lead, "type=build")
    try:
        await db(workflow.activate)(task_id="DEV-1")
        assert (await next_push(build_board)).put("DEV-1") is not None

        def retype():
            workflow.edit_task(
                task_id="DEV-1",
                actor="admin",
                apply=lambda: Task.objects.filter(pk="DEV-1").update(task_type="qa"),
                changed=["task_type"],
            )

        await db(retype)()
        push = await next_push(build_board)
        assert push.dropped("DEV-1")
        assert push.put("DEV-1") is None
    finally:
        await build_board.disconnect()


async def test_search_filter_and_its_counts(make_task, lead):
    await db(make_task)("DEV-1", title="Sign-in form")
    await db(make_task)("DEV-2", title="Payments")
    await db(make_task)("DEV-3", title="Sign-up form")
    board = await connect(lead, "q=sign")
    everyone = await connect(lead)
    try:
        await db(workflow.activate)(task_id="DEV-1")
        push = await next_push(board)
        assert push.put("DEV-1") is not None
        # The filtered board counts what it shows: DEV-3 in Ready, not DEV-2.
        assert ">1</span>" in board_count(push, "count-DevPod-ready")
        assert ">2</span>" in board_count(await next_push(everyone), "count-DevPod-ready")

        await db(workflow.activate)(task_id="DEV-2")
        push = await next_push(board)
        assert push.put("DEV-2") is None and push.dropped("DEV-2")
    finally:
        await board.disconnect()
        await everyone.disconnect()


def board_count(push, dom_id):
    start = push.text.index(f'id="{dom_id}"')
    return push.text[start : push.text.index("</span>", start) + 7]


# Catch-up --------------------------------------------------------------------------------------


def unannounced(monkeypatch):
    """Changes made from here on are not announced, so the only frame that can report them to
    a board connecting afterwards is its catch-up (an announcement that a loaded machine
    delivers after the connect would be a frame of its own)."""
    monkeypatch.setattr(live, "publish", lambda events: None)


async def test_reconnect_with_since_replays_what_was_missed(make_task, lead, monkeypatch):
    await db(make_task)("DEV-1")
    await db(make_task)("DEV-2")
    seen = await latest_event_id()
    unannounced(monkeypatch)
    await db(workflow.activate)(task_id="DEV-1")
    await db(workflow.move)(task_id="DEV-2", actor="lead", to_pod="QAPod")
    board = await connect(lead, f"since={seen}")
    try:
        push = await next_push(board)
        assert push.seq == await latest_event_id()
        assert push.put("DEV-1")["data-lane"] == "lane-DevPod-active"
        assert push.put("DEV-2")["data-lane"] == "lane-QAPod-ready"
        assert await board.receive_nothing(timeout=0.2)
    finally:
        await board.disconnect()


async def test_up_to_date_board_gets_no_catch_up(make_task, lead, monkeypatch):
    await db(make_task)("DEV-1")
    unannounced(monkeypatch)
    await db(workflow.activate)(task_id="DEV-1")
    board = await connect(lead, f"since={await latest_event_id()}")
    try:
        assert await board.receive_nothing(timeout=0.2)
    finally:
        await board.disconnect()


async def test_large_gap_asks_for_a_refresh(make_task, lead, monkeypatch):
    monkeypatch.setattr(live.changes, "CATCH_UP_LIMIT", 3)
    for n in range(5):
        await db(make_task)(f"DEV-{n}")
    seen = await latest_event_id()
    unannounced(monkeypatch)
    for n in range(5):
        await db(workflow.activate)(task_id=f"DEV-{n}")
    board = await connect(lead, f"since={seen}")
    try:
        push = await next_push(board)
        assert push.elements["live-meta"]["data-refresh"] == "gap"
        assert push.seq == await latest_event_id()
    finally:
        await board.disconnect()


async def test_changes_nobody_announced_arrive_by_the_periodic_check(
    make_task, lead, settings, monkeypatch
):
    settings.PODBOARD_LIVE_POLL_SECONDS = 0.2
    await db(make_task)("DEV-1")
    board = await connect(lead, f"since={await latest_event_id()}")
    try:
        # Another process (a CLI on the in-memory layer) changes the task: no announcement here.
        unannounced(monkeypatch)
        await db(workflow.activate)(task_id="DEV-1")
        push = await next_push(board, timeout=3)
        assert push.put("DEV-1")["data-lane"] == "lane-DevPod-active"
        assert push.seq == await latest_event_id()
    finally:
        await board.disconnect()


# Publishing ------------------------------------------------------------------------------------


async def test_cards_render_once_per_change_whatever_the_number_of_boards(
    make_task, lead, monkeypatch
):
    from tasks_app import board as board_module

    calls = []
    real = board_module.render_cards
    monkeypatch.setattr(
        board_module,
        "render_cards",
        lambda ids, request=None: calls.append(list(ids)) or real(ids, request),
    )
    await db(make_task)("DEV-1")
    boards = [await connect(lead) for _ in range(5)]
    try:
        await db(workflow.activate)(task_id="DEV-1")
        for board in boards:
            assert (await next_push(board)).put("DEV-1") is not None
        assert calls == [["DEV-1"]]
    finally:
        for board in boards:
            await board.disconnect()


async def test_broadcast_failure_does_not_break_the_change(
    make_task, lead_board, monkeypatch, caplog
):
    async def broken(*args, **kwargs):
        raise ConnectionError("redis is down")

    await db(make_task)("DEV-1")
    monkeypatch.setattr(live.get_channel_layer(), "group_send", broken)
    task = await db(workflow.activate)(task_id="DEV-1")
    assert task.status == "active"
    assert (await db(Task.objects.get)(pk="DEV-1")).status == "active"
    assert "could not announce" in caplog.text


async def test_publish_from_the_event_loop_thread_still_arrives(make_task, lead_board):
    await db(make_task)("DEV-1")
    await db(workflow.activate)(task_id="DEV-1")
    await next_push(lead_board)
    event = await db(Event.objects.order_by("-id").first)()
    live.publish([event])  # on this thread async_to_sync would refuse
    push = await next_push(lead_board)
    assert push.seq == event.id
    await asyncio.sleep(0)
