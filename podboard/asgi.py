"""ASGI entry point: HTTP through Django (bodies bounded as they stream), the MCP server at
/mcp/ beside it (tasks_app.push.routing), websockets through Channels (same-origin sockets
only)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "podboard.settings")
django_asgi_app = get_asgi_application()

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
