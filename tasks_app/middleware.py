"""Request guards: body size for the API, security headers, page compression, and a clear page
when the database is not ready."""

from django.conf import settings
from django.db.utils import OperationalError, ProgrammingError
from django.http import HttpResponse, JsonResponse
from django.middleware.gzip import GZipMiddleware


class BodySizeLimitMiddleware:
    """Refuse API request bodies whose declared length is over ``PODBOARD_MAX_BODY_BYTES``
    with 413 ``too_large``.

    Served over ASGI, bodies are bounded earlier, as they stream and before any of this runs
    (``podboard.body_limit``); this keeps the bound where no ASGI server sits in front (WSGI,
    Django's test client)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = settings.PODBOARD_MAX_BODY_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit and request.path.startswith("/api/"):
            return JsonResponse(
                {
                    "code": "too_large",
                    "detail": f"Request body is {length} bytes; the limit is {limit}.",
                },
                status=413,
            )
        return self.get_response(request)


class PermissionsPolicyMiddleware:
    """Send ``Permissions-Policy`` (``PODBOARD_PERMISSIONS_POLICY``): the browser features
    PodBoard never uses stay off, for its pages and anything injected into them."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        policy = getattr(settings, "PODBOARD_PERMISSIONS_POLICY", "")
        if policy:
            response.headers.setdefault("Permissions-Policy", policy)
        return response


class PageCompressionMiddleware(GZipMiddleware):
    """Gzip the pages for clients that accept it; never ``/api/`` (its server chain leaves this
    layer out as well) nor bodies that are compressed already (zip exports, images).

    BREACH: a page's one secret is its CSRF token, masked afresh for every response, and Django
    pads each gzip stream with random bytes. API JSON stays uncompressed: it puts what one pod
    sent beside what others wrote. docs/operations.md#security records the choice."""

    PRECOMPRESSED = ("application/zip", "image/png", "image/jpeg", "image/webp", "font/woff2")

    def process_response(self, request, response):
        content_type = response.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type in self.PRECOMPRESSED or request.path.startswith("/api/"):
            return response
        return super().process_response(request, response)


MIGRATE_HINT = "The database has no PodBoard tables yet: run `python manage.py migrate`."
UNREACHABLE = "The database is unreachable right now; try again in a moment."
REQUIRED_TABLES = ("tasks_app_task", "tasks_app_event", "django_session", "auth_user")


def missing_tables():
    """Return the tables PodBoard needs that the database does not have."""
    from django.db import connection

    present = set(connection.introspection.table_names())
    return [name for name in REQUIRED_TABLES if name not in present]


def _unavailable(request, detail):
    if request.path.startswith("/api/"):
        return JsonResponse({"code": "unavailable", "detail": detail}, status=503)
    return HttpResponse(detail, status=503, content_type="text/plain; charset=utf-8")


class DatabaseUnavailableMiddleware:
    """Turn a missing schema or an unreachable database into a message a person understands.

    Listed before the session middleware, so a failure there (no ``django_session`` table)
    reaches it as a 500; only then does it look at the schema, so a healthy request pays
    nothing. Errors raised by views are translated in ``process_exception``.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code == 500:
            try:
                missing = missing_tables()
            except OperationalError:
                return _unavailable(request, UNREACHABLE)
            if missing:
                return _unavailable(request, MIGRATE_HINT)
        return response

    def process_exception(self, request, exception):
        if isinstance(exception, ProgrammingError | OperationalError):
            text = str(exception).lower()
            if "no such table" in text or "does not exist" in text:
                detail = MIGRATE_HINT
            elif "could not connect" in text or "connection" in text or "server closed" in text:
                detail = UNREACHABLE
            else:
                return None
            return _unavailable(request, detail)
        return None
