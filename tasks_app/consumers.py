"""The board's websocket: authenticate, register with the process's hub, catch up on connect."""

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
    then. After that it only listens: the process's hub (``live.hub``) hears every
    announcement once for all boards and fills this board's outbox, whose sender calls
    ``send``.
    """

    # No channel of its own: the hub holds the process's one subscription to the board group.
    # (An alias that is not configured makes Channels skip the per-socket channel.)
    channel_layer_alias = "podboard-boards-listen-through-the-hub"

    outbox = None
    hub = None

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        params = QueryDict(self.scope.get("query_string", b"").decode("latin-1"))
        self.filters = live.board_filters(params)
        since = _int(params.get("since"))
        self.hub = live.current_hub()
        self.outbox = self.hub.join(self)
        # Nothing goes out before the catch-up: the board must not note a sequence number
        # past events it has not been shown. The socket opens once the board is subscribed
        # and knows where it stands, so a change made after the open is never replayed.
        self.outbox.hold()
        try:
            await self.hub.wait_ready()
            latest = await database_sync_to_async(live.latest_seq_now)()
            if since is None:
                # A board that does not say what it saw: replay the last moments (harmless, as
                # boards ignore a card whose version they already show).
                since = await database_sync_to_async(live.recent_seq)()
            self.outbox.note_seq(latest)
            if since < latest:
                frame = await database_sync_to_async(live.catch_up_frame)(
                    since, narrowing=[self.filters]
                )
                if frame is not None:
                    self.outbox.offer(frame)
            await self.accept()
        except BaseException:
            await self.hub.leave(self)
            raise
        self.outbox.release()

    async def disconnect(self, code):
        if self.hub is not None:
            await self.hub.leave(self)

    async def receive(self, text_data=None, bytes_data=None):
        """Boards only listen; anything they send is ignored."""


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
