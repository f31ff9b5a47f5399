"""Request body limits, enforced on the ASGI stream before Django sees the request.

Django reads a whole body before any view, middleware or authentication runs, and trusts
``Content-Length`` for its own bound, so a chunked upload, or one to a page outside the API,
was read whatever its size. Here a body is refused as soon as it is known to be too large: at
once when its declared length says so, otherwise while it streams, the moment the bytes
received pass the bound. Nothing after this (sessions, tokens, views) runs for it.

Bounds, by path (DESIGN.md, "Limits"):

- ``/api/`` and ``/mcp/``: ``PODBOARD_MAX_BODY_BYTES`` (413 JSON ``{code: "too_large"}``);
- ``/import/`` (the zip upload): ``PODBOARD_MAX_UPLOAD_BYTES``;
- every other page (forms, the admin): ``PODBOARD_MAX_PAGE_BODY_BYTES``, a plain 413 page.
"""

import json

from django.conf import settings

JSON_PREFIXES = ("/api/", "/mcp/")
UPLOAD_PREFIXES = ("/import/",)


def limit_for(path):
    """Return the body bound, in bytes, of a request to ``path``."""
    if path.startswith(JSON_PREFIXES) or path in ("/api", "/mcp"):
        return settings.PODBOARD_MAX_BODY_BYTES
    if path.startswith(UPLOAD_PREFIXES):
        return settings.PODBOARD_MAX_UPLOAD_BYTES
    return settings.PODBOARD_MAX_PAGE_BODY_BYTES


def _declared_length(scope):
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyLimitMiddleware:
    """ASGI middleware: answer 413 to an HTTP request whose body passes its path's bound."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        limit = limit_for(path)
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            return await refuse(send, path, limit, declared)

        received = 0
        over = False
        started = False

        async def limited_receive():
            nonlocal received, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # The application sees the client go away and stops reading; the refusal
                    # below is then the answer.
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def tracked_send(message):
            nonlocal started
            if over and not started:
                # The application's own answer to the cut-off body (Django sends none, the MCP
                # server a 500): the refusal below replaces it.
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, limited_receive, tracked_send)
        if over and not started:
            await refuse(send, path, limit, None)


async def refuse(send, path, limit, declared):
    """Send the 413 answer: JSON ``too_large`` under the API, a short page elsewhere."""
    size = f"{declared} bytes" if declared is not None else f"more than {limit} bytes"
    if path.startswith(JSON_PREFIXES):
        body = json.dumps(
            {
                "code": "too_large",
                "detail": f"Request body is {size}; the limit is {limit}.",
                "limit": limit,
            }
        ).encode()
        content_type = b"application/json"
    else:
        body = (
            "<!doctype html><html lang=en><meta charset=utf-8><title>Too large · PodBoard</title>"
            f"<h1>Request too large</h1><p>The request body is {size}; this page accepts at "
            f"most {limit} bytes.</p><p><a href=/>Back to the board</a></p></html>"
        ).encode()
        content_type = b"text/html; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                # The rest of the body is not read: the connection cannot be reused.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
