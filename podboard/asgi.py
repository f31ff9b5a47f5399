"""ASGI entry point: HTTP through Django (bodies bounded as they stream), the MCP server at
/mcp/ beside it (tasks_app.push.routing), websockets through Channels (same-origin sockets
only)."""

import os

import django
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.test.utils import override_settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "podboard.settings")
django.setup(set_prefix=False)


class SyncChainHandler(ASGIHandler):
    """Django's ASGI handler with its middleware chain built as WSGI builds it: every layer
    and the view run on one worker thread, entered once per request.

    Every view and most middleware here are synchronous. Built for ASGI, Django makes the
    layers that can run either way asynchronous and adapts at each border, so a request
    crossed between the event loop and threads five times (each crossing a hand-off through
    the loop); this way it crosses once.
    """

    def load_middleware(self, is_async=False):
        super().load_middleware(is_async=False)
        self._middleware_chain = sync_to_async(self._middleware_chain, thread_sensitive=True)


class ApiHandler(SyncChainHandler):
    """Django for ``/api/``: the same project with ``API_MIDDLEWARE``, a shorter chain (every
    layer a pod request skips is time the claim does not wait for)."""

    def load_middleware(self, is_async=False):
        with override_settings(MIDDLEWARE=settings.API_MIDDLEWARE):
            super().load_middleware(is_async)


pages_app = SyncChainHandler()
api_app = ApiHandler()


async def django_asgi_app(scope, receive, send):
    if scope.get("path", "").startswith("/api/"):
        return await api_app(scope, receive, send)
    return await pages_app(scope, receive, send)


from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from podboard.body_limit import BodyLimitMiddleware  # noqa: E402
from podboard.routing import origin_checked, websocket_urlpatterns  # noqa: E402
from tasks_app.push.routing import http_application  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": BodyLimitMiddleware(http_application(django_asgi_app)),
        "websocket": origin_checked(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
