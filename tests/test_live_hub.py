"""The live path under load: one subscription per process, bursts coalesced, slow sockets
isolated, one poll per process."""

import asyncio
import random
import re
import time

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from tasks_app import live
from tasks_app.consumers import BoardConsumer
from tasks_app.live import changes
from tasks_app.models import Event, EventKind, Status, Task

from .test_consumers import Push, connect

pytestmark = pytest.mark.django_db(transaction=True)

db = database_sync_to_async

COUNT = re.compile(r'<span class="count" id="count-([^"]+)-(ready|active|done)"[^>]*>(\d+)</span>')


@pytest.fixture(autouse=True)
async def close_thread_connections():
    # A card links to its detail page: load the URLconf now, not inside the first render.
    reverse("board")
    yield
    await db(connections.close_all)()


def change_task(task_id, *, pod, status):
    """Change one task as a rule would: one transaction, its Event, one publish after commit."""
    now = timezone.now()
    with transaction.atomic():
        task = Task.objects.select_related("pod_owner").get(pk=task_id)
        Task.objects.filter(pk=task_id).update(
            pod_owner=pod,
            status=status,
            version=F("version") + 1,
            updated_at=now,
            started_at=now if status == Status.ACTIVE else task.started_at,
            completed_at=now if status == Status.DONE else None,
        )
        event = Event.objects.create(
            task_id=task_id,
            task_key=task_id,
            kind=EventKind.MOVED,
            actor="test",
            from_status=task.status,
            to_status=status,
            from_pod=task.pod_owner.name,
            to_pod=pod.name,
        )
    live.publish([event])
    return task.version + 1


def burst(task_ids, pods, *, changes_count, seconds, seed, log=None):
    """Make ``changes_count`` changes to ``task_ids``, spread evenly over ``seconds``.

    ``log``: a list that receives ``(task id, version, time published)`` per change.
    """
    rng = random.Random(seed)
    pods = list(pods.values())
    start = time.monotonic()
    for n in range(changes_count):
        task_id = rng.choice(task_ids)
        status = rng.choice([Status.READY, Status.ACTIVE, Status.DONE])
        version = change_task(task_id, pod=rng.choice(pods), status=status)
        if log is not None:
            log.append((task_id, version, time.monotonic()))
        ahead = start + seconds * (n + 1) / changes_count - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    return time.monotonic() - start


async def drain(board, *, quiet=1.0, limit=200):
    """Return every message ``board`` receives until it stays quiet for ``quiet`` seconds."""
    pushes = []
    # (receive_from's timeout would also cancel the consumer: look before taking.)
    while len(pushes) < limit and not await board.receive_nothing(timeout=quiet):
        pushes.append(Push(await board.receive_from()))
    return pushes


def board_state():
    """Return ``({card: (lane, version)}, {(pod, status): count})`` as the database has it."""
    cards = {
        t.pk: (f"lane-{t.pod_owner.name}-{t.status}", t.version)
        for t in Task.objects.select_related("pod_owner")
    }
    counts = {}
    for lane, _version in cards.values():
        _, pod, status = lane.split("-", 2)
        counts[(pod, status)] = counts.get((pod, status), 0) + 1
    return cards, counts


def apply_pushes(cards, counts, pushes):
    """Apply ``pushes`` to a board showing ``cards`` and ``counts``, as live.js does."""
    for push in pushes:
        for key, attrs in push.elements.items():
            if key.startswith("live-drop-task-"):
                task_id = key.removeprefix("live-drop-task-")
                if attrs.get("data-gone"):
                    cards.pop(task_id, None)
                    continue
                version = int(attrs["data-version"])
                shown = cards.get(task_id)
                assert shown is None or version >= shown[1], f"{task_id} went back in time"
                put = push.put(task_id)
                if put is None:
                    cards.pop(task_id, None)
                else:
                    assert int(put["data-version"]) == version
                    cards[task_id] = (put["data-lane"], version)
        for pod, status, n in COUNT.findall(push.text):
            counts[(pod, status)] = int(n)
    return cards, counts


async def test_one_channel_per_process_joins_the_board_group_whatever_the_number_of_boards(
    lead, monkeypatch
):
    layer = live.get_channel_layer()
    joined, left = [], []
    real_add, real_discard = layer.group_add, layer.group_discard

    async def group_add(group, channel):
        joined.append((group, channel))
        await real_add(group, channel)

    async def group_discard(group, channel):
        left.append((group, channel))
        await real_discard(group, channel)

    monkeypatch.setattr(layer, "group_add", group_add)
    monkeypatch.setattr(layer, "group_discard", group_discard)
    boards = [await connect(lead) for _ in range(5)]
    try:
        assert len(set(joined)) == 1 and joined[0][0] == live.BOARD_GROUP
        assert len(live.current_hub().outboxes) == 5
    finally:
        for board in boards:
            await board.disconnect()
    assert left == joined[:1]  # the last board to leave takes the subscription down
    assert not live.current_hub().tasks


async def test_a_burst_of_500_changes_arrives_in_few_frames_and_ends_as_the_database(
    make_task, pods, lead
):
    task_ids = [f"C-{n}" for n in range(40)]
    for n, task_id in enumerate(task_ids):
        await db(make_task)(task_id, pod=list(pods)[n % 3], priority=n % 4)
    cards, counts = await db(board_state)()
    board = await connect(lead, f"since={await db(live.latest_seq_now)()}")
    try:
        took = await db(burst)(task_ids, pods, changes_count=500, seconds=1.0, seed=7)
        pushes = await drain(board)
        # At most 20 frames for a one-second burst; a slower machine that needs longer for the
        # writes themselves may add the frames of the extra time (one per ~150 ms at most).
        assert 1 <= len(pushes) <= 20 + 7 * max(0.0, took - 1.0), (len(pushes), took)
        assert not any("data-refresh" in p.elements["live-meta"] for p in pushes)
        assert pushes[-1].seq == await db(live.latest_seq_now)()
        assert (cards, counts) != await db(board_state)()  # the burst changed the board
        shown = apply_pushes(cards, counts, pushes)
        assert shown == await db(board_state)()
    finally:
        await board.disconnect()


class StalledBoard(BoardConsumer):
    """A board whose client never reads: every send waits for ``gate``."""

    gate = None

    async def send(self, text_data=None, bytes_data=None, close=False):
        await self.gate.wait()
        await super().send(text_data=text_data, bytes_data=bytes_data, close=close)


async def test_a_stalled_socket_delays_neither_the_hub_nor_the_other_boards(
    make_task, pods, lead, settings
):
    settings.PODBOARD_LIVE_BACKLOG_CARDS = 100
    task_ids = [f"S-{n}" for n in range(150)]
    for n, task_id in enumerate(task_ids):
        await db(make_task)(task_id, pod=list(pods)[n % 3])
    StalledBoard.gate = asyncio.Event()
    stalled = WebsocketCommunicator(StalledBoard.as_asgi(), "/ws/board/?since=999999999")
    stalled.scope["user"] = lead
    assert (await stalled.connect())[0]
    others = [await connect(lead, "since=999999999") for _ in range(3)]
    arrivals = [{} for _ in others]

    async def listen(board, seen):
        while True:
            push = Push(await board.receive_from(timeout=10))
            now = time.monotonic()
            for key, attrs in push.elements.items():
                if key.startswith("live-put-task-"):
                    task_id = key.removeprefix("live-put-task-")
                    seen.setdefault((task_id, int(attrs["data-version"])), now)

    listeners = [asyncio.ensure_future(listen(b, s)) for b, s in zip(others, arrivals, strict=True)]
    try:
        log = []
        await db(burst)(task_ids, pods, changes_count=300, seconds=1.5, seed=3, log=log)
        await asyncio.sleep(1.0)
        hub = live.current_hub()
        outbox = next(o for b, o in hub.outboxes.items() if isinstance(b, StalledBoard))
        # Its backlog went past the bound (150 distinct cards): a refresh replaced it.
        assert outbox.refresh[0] == "behind" and outbox.refresh[1] > outbox.limit
        assert not outbox.cards
        for seen in arrivals:
            delays = []
            for task_id, version, published in log:
                got = [t for (tid, v), t in seen.items() if tid == task_id and v >= version]
                assert got, f"{task_id} v{version} never arrived"
                delays.append(min(got) - published)
            # (~1 s is the promise; the margin is for a loaded test machine. A hub held up by
            # the stalled socket would deliver nothing at all before the gate opens.)
            assert max(delays) < 1.5, f"slowest change took {max(delays):.2f}s"
        # Once it reads again, the stalled board gets the frame it was stuck on, then a refresh.
        StalledBoard.gate.set()
        first = Push(await stalled.receive_from(timeout=2))
        assert "data-refresh" not in first.elements["live-meta"]
        second = Push(await stalled.receive_from(timeout=2))
        assert second.elements["live-meta"]["data-refresh"] == "behind"
        assert second.seq == await db(live.latest_seq_now)()
    finally:
        for listener in listeners:
            listener.cancel()
        StalledBoard.gate.set()
        for board in [stalled, *others]:
            await board.disconnect()


async def test_a_slow_render_is_not_queued_per_announcement(make_task, pods, lead, monkeypatch):
    """While a render runs, announcements gather into the next one instead of queueing."""
    real = changes.render_frame
    renders = []

    def slow_render(task_ids, **kwargs):
        renders.append(list(task_ids))
        time.sleep(0.3)
        return real(task_ids, **kwargs)

    monkeypatch.setattr(changes, "render_frame", slow_render)
    task_ids = [f"R-{n}" for n in range(30)]
    for task_id in task_ids:
        await db(make_task)(task_id)
    board = await connect(lead, "since=999999999")
    try:
        await db(burst)(task_ids, pods, changes_count=60, seconds=0.6, seed=1)
        pushes = await drain(board)
        assert len(renders) <= 5
        assert pushes[-1].seq == await db(live.latest_seq_now)()
    finally:
        await board.disconnect()


async def test_one_sequence_query_per_poll_per_process(lead, settings, monkeypatch):
    settings.PODBOARD_LIVE_POLL_SECONDS = 0.1
    calls = []
    real = changes.latest_seq_now
    monkeypatch.setattr(changes, "latest_seq_now", lambda: calls.append(1) or real())
    boards = [await connect(lead) for _ in range(6)]
    try:
        calls.clear()
        await asyncio.sleep(0.55)
        assert 2 <= len(calls) <= 6  # about one per poll, not one per board and poll
    finally:
        for board in boards:
            await board.disconnect()


async def test_changes_nobody_announced_reach_every_board_from_one_catch_up(
    make_task, lead, settings, monkeypatch
):
    settings.PODBOARD_LIVE_POLL_SECONDS = 0.2
    await db(make_task)("DEV-1")
    since = await db(live.latest_seq_now)()
    boards = [await connect(lead, f"since={since}") for _ in range(3)]
    catch_ups = []
    real = changes.catch_up_frame
    monkeypatch.setattr(
        changes, "catch_up_frame", lambda *a, **k: catch_ups.append(a) or real(*a, **k)
    )
    try:
        from tasks_app import workflow

        monkeypatch.setattr(live, "publish", lambda events: None)  # another process's change
        await db(workflow.activate)(task_id="DEV-1")
        for board in boards:
            push = Push(await board.receive_from(timeout=3))
            assert push.put("DEV-1")["data-lane"] == "lane-DevPod-active"
            assert int(push.elements["live-meta"]["data-lag"]) >= 0
        assert len(catch_ups) == 1
    finally:
        for board in boards:
            await board.disconnect()


async def test_the_hub_joins_the_group_again_before_the_layer_would_forget_it(
    lead, settings, monkeypatch
):
    settings.PODBOARD_LIVE_POLL_SECONDS = 0.05
    settings.PODBOARD_LIVE_GROUP_REFRESH_SECONDS = 0.1
    layer = live.get_channel_layer()
    joined = []
    real_add = layer.group_add

    async def group_add(group, channel):
        joined.append(channel)
        await real_add(group, channel)

    monkeypatch.setattr(layer, "group_add", group_add)
    board = await connect(lead)
    try:
        await asyncio.sleep(0.5)
        assert len(joined) >= 3 and len(set(joined)) == 1
    finally:
        await board.disconnect()


async def test_a_busy_process_sends_its_announcements_to_the_layer_in_batches(
    make_task, pods, lead, settings, monkeypatch
):
    settings.PODBOARD_LIVE_BATCH_SECONDS = 0.3
    layer = live.get_channel_layer()
    sent = []
    real_send = layer.group_send

    async def group_send(group, message):
        if group == live.BOARD_GROUP:
            sent.append(message)
        await real_send(group, message)

    monkeypatch.setattr(layer, "group_send", group_send)
    task_ids = [f"DEV-{n}" for n in range(8)]
    for task_id in task_ids:
        await db(make_task)(task_id, pod="DevPod")
    cards, counts = await db(board_state)()
    board = await connect(lead, f"since={await db(live.latest_seq_now)()}")
    try:
        started = time.monotonic()
        for task_id in task_ids:
            await db(change_task)(task_id, pod=pods["QAPod"], status=Status.ACTIVE)
        wrote = time.monotonic() - started
        deadline = time.monotonic() + 5
        while sum(len(m.get("batch") or [m]) for m in sent) < len(task_ids):
            assert time.monotonic() < deadline, sent
            await asyncio.sleep(0.02)
        # The first announcement after a quiet moment leaves at once; the ones that follow
        # within the window leave together (a slow machine may need a window more).
        assert "batch" not in sent[0]
        assert 2 <= len(sent) <= 2 + int(wrote / 0.3), (len(sent), wrote)
        announced = [m["seq"] for message in sent for m in message.get("batch") or [message]]
        assert announced == sorted(announced) and len(announced) == len(task_ids)
        # Every change of every batch reaches the board.
        pushes = await drain(board)
        assert pushes[-1].seq == announced[-1] == await db(live.latest_seq_now)()
        shown_cards, shown_counts = apply_pushes(cards, counts, pushes)
        assert (shown_cards, {k: n for k, n in shown_counts.items() if n}) == await db(
            board_state
        )()
    finally:
        await board.disconnect()
