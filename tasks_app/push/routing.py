"""The HTTP side of PodBoard's ASGI application: ``/mcp/`` beside Django (API, pages).

``podboard/asgi.py`` wraps this in the body limit, so ``/mcp/`` is bounded like ``/api/``.
"""

from .longpoll import LongPollMiddleware
from .mcp import McpApp

MCP_PREFIX = "/mcp"


def http_application(django_app):
    """Return the HTTP application: MCP at ``/mcp/``, everything else through Django (with
    long-poll ``next``). MCP tools call the API through the same long-poll layer."""
    api = LongPollMiddleware(django_app)
    mcp = McpApp(api)

    async def app(scope, receive, send):
        path = scope.get("path", "")
        if path == MCP_PREFIX or path.startswith(MCP_PREFIX + "/"):
            return await mcp(scope, receive, send)
        return await api(scope, receive, send)

    app.mcp = mcp
    return app
