"""One board's outbox: latest state wins, a backlog is bounded, the sender never blocks the
hub. Plain unit tests: no database, no socket."""

import asyncio

from tasks_app.board import NO_FILTERS
from tasks_app.live.fanout import Outbox


class FakeBoard:
    def __init__(self, filters=NO_FILTERS):
        self.filters = filters
        self.sent = []
        self.gate = None

    async def send(self, text_data=None):
        if self.gate is not None:
            await self.gate.wait()
        self.sent.append(text_data)


def card(task_id, version, stamp, *, flash=False, pod="DevPod", status="ready"):
    return {
        "id": task_id,
        "pod": pod,
        "status": status,
        "task_type": "",
        "title": task_id,
        "version": version,
        "lane": f"lane-{pod}-{status}",
        "before": None,
        "html": f'<article id="task-{task_id}" data-version="{version}"></article>',
        "flash": flash,
        "stamp": stamp,
    }


def frame(seq, *cards, stamp=None, gone=(), counts=None, at=None):
    return {
        "kind": "change",
        "seq": seq,
        "at": at,
        "stamp": stamp or max([c["stamp"] for c in cards] or [seq]),
        "cards": {c["id"]: c for c in cards},
        "gone": list(gone),
        "counts": counts or {},
        "narrowed": {},
    }


async def test_the_latest_state_of_a_card_wins_and_a_flash_sticks():
    outbox = Outbox(FakeBoard())
    outbox.offer(frame(1, card("A", 2, 1, flash=True)))
    outbox.offer(frame(2, card("A", 3, 2), card("B", 5, 2)))
    outbox.offer(frame(3, card("B", 4, 1)))  # an older rendering offered late
    assert outbox.cards["A"]["version"] == 3 and outbox.cards["A"]["flash"]
    assert outbox.cards["B"]["version"] == 5
    assert outbox.seq == 3
    text, _lag = outbox.take()
    assert text.count('id="live-put-task-A"') == 1
    assert 'data-version="3"' in text and 'data-flash="1"' in text
    assert outbox.take() == (None, None)


async def test_a_deleted_card_replaces_its_pending_state():
    outbox = Outbox(FakeBoard())
    outbox.offer(frame(1, card("A", 2, 1)))
    outbox.offer(frame(2, stamp=2, gone=["A"]))
    text, _lag = outbox.take()
    assert 'data-gone="1"' in text and "live-put-task-A" not in text


async def test_a_backlog_past_the_bound_becomes_one_refresh():
    outbox = Outbox(FakeBoard(), limit=10)
    for n in range(25):
        outbox.offer(frame(n + 1, card(f"T-{n}", 1, n + 1)))
    assert outbox.refresh == ("behind", 11)
    assert not outbox.cards
    text, _lag = outbox.take()
    assert 'data-refresh="behind"' in text and 'data-seq="25"' in text
    assert "live-put" not in text


async def test_a_stalled_sender_keeps_at_most_the_bound_and_resumes_with_the_newest():
    board = FakeBoard()
    board.gate = asyncio.Event()
    outbox = Outbox(board, limit=50)
    outbox.start()
    try:
        outbox.offer(frame(1, card("A", 1, 1)))
        await asyncio.sleep(0.05)  # the sender took it and now waits on the socket
        for n in range(2, 40):
            outbox.offer(frame(n, card("A", n, n)))
        assert len(outbox.cards) == 1
        board.gate.set()
        await asyncio.sleep(0.05)
        assert len(board.sent) == 2
        assert 'data-version="39"' in board.sent[1] and 'data-seq="39"' in board.sent[1]
    finally:
        outbox.stop()


async def test_held_outbox_sends_nothing_until_released():
    board = FakeBoard()
    outbox = Outbox(board)
    outbox.start()
    try:
        outbox.hold()
        outbox.offer(frame(1, card("A", 1, 1)))
        await asyncio.sleep(0.05)
        assert board.sent == []
        outbox.release()
        await asyncio.sleep(0.05)
        assert len(board.sent) == 1
    finally:
        outbox.stop()


async def test_boards_that_kept_up_share_one_rendering_of_the_fragments():
    shared = frame(7, card("A", 2, 1), counts={"DevPod": '<span id="count-DevPod-ready">1</span>'})
    first, second = Outbox(FakeBoard()), Outbox(FakeBoard())
    first.offer(shared)
    second.offer(shared)
    one, _ = first.take()
    two, _ = second.take()
    assert list(shared["texts"]) == [NO_FILTERS]
    assert one.split("</div>", 1)[1] == two.split("</div>", 1)[1] == shared["texts"][NO_FILTERS]
    # A board with two frames pending builds its own message from the merged state.
    first.offer(frame(8, card("A", 3, 2)))
    first.offer(frame(9, card("B", 1, 3)))
    merged, _ = first.take()
    assert 'data-version="3"' in merged and "live-put-task-B" in merged
