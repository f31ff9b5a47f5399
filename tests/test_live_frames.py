"""What a frame says: deleted tasks leave every board, and every frame carries its lag."""

import logging
import time

import pytest
from channels.db import database_sync_to_async
from django.db import connections

from tasks_app import live, workflow
from tasks_app.live import announce, lag
from tasks_app.models import Event

from .test_consumers import connect, next_push, unannounced

pytestmark = pytest.mark.django_db(transaction=True)

db = database_sync_to_async


@pytest.fixture(autouse=True)
async def close_thread_connections():
    lag.reset()
    yield
    await db(connections.close_all)()
    lag.reset()


@pytest.fixture
async def lead_board(lead):
    board = await connect(lead)
    yield board
    await board.disconnect()


async def test_deleting_a_task_removes_its_card_and_redraws_its_successor(
    make_task, lead, lead_board
):
    await db(make_task)("DEV-1")
    await db(make_task)("QA-1", pod="QAPod", depends_on=["DEV-1"])
    filtered = await connect(lead, "pod=QAPod")
    try:
        assert await db(workflow.delete_tasks)(task_ids=["DEV-1"], actor="lead") == 1
        for board in (lead_board, filtered):
            push = await next_push(board)
            assert push.seq == await db(live.latest_seq_now)()
            assert push.elements["live-drop-task-DEV-1"]["data-gone"] == "1"
            assert push.put("DEV-1") is None
            # Its successor is no longer blocked by a task that is gone.
            assert push.put("QA-1")["data-lane"] == "lane-QAPod-ready"
            assert "is-blocked" not in push.card_html("QA-1")
    finally:
        await filtered.disconnect()


async def test_deleted_card_counts_update_on_the_board(make_task, lead_board):
    await db(make_task)("DEV-1")
    await db(make_task)("DEV-2")
    await db(workflow.delete_tasks)(task_ids=["DEV-1"], actor="lead")
    push = await next_push(lead_board)
    assert push.elements["live-drop-task-DEV-1"]["data-gone"] == "1"
    start = push.text.index('id="count-DevPod-ready"')
    assert push.text[start : push.text.index("</span>", start)].endswith(">1")


async def test_every_frame_carries_the_age_of_its_newest_change(make_task, lead_board):
    await db(make_task)("DEV-1")
    await db(workflow.activate)(task_id="DEV-1")
    push = await next_push(lead_board)
    assert 0 <= int(push.elements["live-meta"]["data-lag"]) < 2000
    assert 0 <= live.lag_seconds() < 2
    assert live.lag_stats()["frames"] == 1


async def test_a_late_frame_shows_its_lag_then_an_all_clear_follows(make_task, lead_board, caplog):
    await db(make_task)("DEV-1")
    await db(workflow.activate)(task_id="DEV-1")
    await next_push(lead_board)
    event = await db(Event.objects.order_by("-id").first)()
    # The same change, as if its announcement had waited 3 s somewhere on the way.
    caplog.set_level(logging.WARNING, logger="tasks_app.live.lag")
    announce.send(announce.announcement_for([event], at=time.time() - 3))
    push = await next_push(lead_board)
    assert int(push.elements["live-meta"]["data-lag"]) >= 3000
    assert live.lag_seconds() >= 3
    assert live.lag_stats()["peak"] >= 3
    assert "behind the database" in caplog.text
    clear = await next_push(lead_board, timeout=3)
    assert set(clear.elements) == {"live-meta"}
    assert clear.elements["live-meta"]["data-lag"] == "0"
    assert clear.seq == push.seq
    assert live.lag_seconds() == 0
    assert await lead_board.receive_nothing(timeout=1.5)


async def test_a_replay_on_connect_carries_no_lag(make_task, lead, monkeypatch):
    await db(make_task)("DEV-1")
    seen = await db(live.latest_seq_now)()
    unannounced(monkeypatch)  # the only frame that can name DEV-1 is the replay
    await db(workflow.activate)(task_id="DEV-1")
    board = await connect(lead, f"since={seen}")
    try:
        push = await next_push(board)
        assert push.put("DEV-1") is not None
        assert "data-lag" not in push.elements["live-meta"]
    finally:
        await board.disconnect()


async def test_deleting_a_task_in_the_admin_removes_its_card_from_open_boards(
    make_task, lead_board, admin_user
):
    from django.test import Client
    from django.urls import reverse

    await db(make_task)("DEV-1")
    client = Client()
    await db(client.force_login)(admin_user)
    url = reverse("admin:tasks_app_task_delete", args=["DEV-1"])
    response = await db(client.post)(url, {"post": "yes"})
    assert response.status_code == 302
    push = await next_push(lead_board)
    assert push.elements["live-drop-task-DEV-1"]["data-gone"] == "1"
    assert push.put("DEV-1") is None
    deleted = await db(Event.objects.get)(kind="deleted")
    assert (deleted.task_key, deleted.actor) == ("DEV-1", "admin")
