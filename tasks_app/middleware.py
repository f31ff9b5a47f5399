"""Request guards: body size for the API, and a clear page when the database is not ready."""

from django.conf import settings
from django.db.utils import OperationalError, ProgrammingError
from django.http import HttpResponse, JsonResponse


class BodySizeLimitMiddleware:
    """Refuse request bodies over ``PODBOARD_MAX_BODY_BYTES`` with 413 ``too_large``."""

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


class DatabaseUnavailableMiddleware:
    """Turn a missing schema or an unreachable database into a message a person understands."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, ProgrammingError | OperationalError):
            text = str(exception).lower()
            if "no such table" in text or "does not exist" in text:
                detail = "The database has no PodBoard tables yet: run `python manage.py migrate`."
                status = 503
            elif "could not connect" in text or "connection" in text or "server closed" in text:
                detail = "The database is unreachable right now; try again in a moment."
                status = 503
            else:
                return None
            if request.path.startswith("/api/"):
                return JsonResponse({"code": "unavailable", "detail": detail}, status=status)
            return HttpResponse(detail, status=status, content_type="text/plain; charset=utf-8")
        return None
