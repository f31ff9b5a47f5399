"""The board's websocket: authenticate, join the board group, forward what this board shows."""

import asyncio
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.http import QueryDict

from . import live

log = logging.getLogger(__name__)


class BoardConsumer(AsyncWebsocketConsumer):
    """One open board.

    The querystring holds the board's filters (``pod``, ``type``, ``q``) and ``since``, the
    last sequence number the board has seen; on connect the board gets what it missed since
    then. Every few seconds the socket also compares its sequence with the newest Event, so
    changes announced in another process without a shared channel layer still arrive.
    """

    seq = 0
    watcher = None

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        params = QueryDict(self.scope.get("query_string", b"").decode("latin-1"))
        self.filters = live.board_filters(params)
        since = _int(params.get("since"))
        self.gap_mark = None
        await self.channel_layer.group_add(live.BOARD_GROUP, self.channel_name)
        await self.accept()
        live.local_boards().boards.add(self)
        self.seq = await database_sync_to_async(live.latest_seq_now)()
        if since is None:
            # A board that does not say what it saw: replay the last moments (harmless, as
            # boards ignore a card whose version they already show).
            since = await database_sync_to_async(live.recent_seq)()
        if since < self.seq:
            await self.catch_up(since)
        self.watcher = asyncio.ensure_future(self.watch())

    async def disconnect(self, code):
        live.local_boards().boards.discard(self)
        if self.watcher is not None:
            self.watcher.cancel()
        await self.channel_layer.group_discard(live.BOARD_GROUP, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        """Boards only listen; anything they send is ignored."""

    async def board_events(self, message):
        """Queue an announcement for this process's render loop, which calls ``forward``."""
        live.local_boards().submit(message)

    async def board_refresh(self, message):
        await self.forward(message)

    async def forward(self, message):
        counts = await live.counts_for(message, self.filters)
        self.seq = max(self.seq, message["seq"])
        await self.send(text_data=live.fragments_for(message, self.filters, counts))

    async def catch_up(self, since):
        message = await database_sync_to_async(live.catch_up_message)(since)
        if message is not None:
            await self.forward(message)

    async def watch(self):
        """Catch up when the newest Event stays ahead of this board for a whole poll."""
        while True:
            await asyncio.sleep(live.poll_seconds())
            try:
                latest = await live.latest_seq()
                if latest <= self.seq:
                    self.gap_mark = None
                elif self.gap_mark is not None and self.seq < self.gap_mark:
                    self.gap_mark = None
                    await self.catch_up(self.seq)
                else:
                    # Maybe an announcement still on its way: look again next poll.
                    self.gap_mark = latest
            except asyncio.CancelledError:
                raise
            except OSError:
                # The socket is gone (the server's ClientDisconnected is an OSError): stop
                # watching instead of failing every poll until the process ends.
                live.local_boards().boards.discard(self)
                return
            except Exception:
                log.exception("board catch-up failed")


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
