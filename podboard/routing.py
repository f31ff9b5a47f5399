"""Websocket routes, and the Origin check every board socket passes first."""

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.urls import path

from tasks_app import consumers

websocket_urlpatterns = [
    path("ws/board/", consumers.BoardConsumer.as_asgi()),
]

DEFAULT_PORTS = {"http": 80, "https": 443}


def _header(scope, name):
    for key, value in scope.get("headers") or ():
        if key == name:
            return value.decode("latin1")
    return None


def _origin(text):
    """Return ``(scheme, host, port)`` of an Origin header, or None when it is not one."""
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or DEFAULT_PORTS[parts.scheme]


def _allowed_hosts():
    """``ALLOWED_HOSTS`` as Django's own host check reads it, at the time of the request."""
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        return [".localhost", "127.0.0.1", "[::1]"]
    return allowed


def same_origin(scope):
    """Return True when the socket's Origin is the page's own: its host is allowed
    (``ALLOWED_HOSTS``) and its scheme's host *and port* are those the browser connected to
    (the Host header), or the origin is listed in ``CSRF_TRUSTED_ORIGINS`` (a proxy that
    rewrites Host).

    Channels' ``AllowedHostsOriginValidator`` compares host names only, so a page served by
    any other program on the same host (``http://localhost:9999``) could open a signed-in
    board socket.
    """
    origin_text = _header(scope, b"origin")
    origin = _origin(origin_text or "")
    if origin is None:
        return False
    trusted = {_origin(o) for o in settings.CSRF_TRUSTED_ORIGINS}
    if origin in trusted:
        return True
    scheme, host, port = origin
    if not validate_host(f"[{host}]" if ":" in host else host, _allowed_hosts()):
        return False
    host_header = _header(scope, b"host") or ""
    domain, host_port = split_domain_port(host_header)
    if not domain:
        return False
    domain = domain.strip("[]").lower()
    expected = int(host_port) if host_port else DEFAULT_PORTS[scheme]
    return domain == host.strip("[]") and port == expected


class SameOriginValidator:
    """Deny a websocket whose Origin is not the page's own host and port (``same_origin``)."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not same_origin(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


def origin_checked(application):
    """Wrap a websocket application so only same-origin sockets reach it."""
    return SameOriginValidator(application)
