"""Every API failure as JSON ``{code, detail}`` with the status HTTP means."""

import json
import logging

from django.core.exceptions import RequestDataTooBig
from django.db import OperationalError
from django.http import Http404, HttpResponse
from ninja.errors import AuthenticationError, HttpError, ValidationError

from ..middleware import DatabaseUnavailableMiddleware
from ..workflow import RuleError

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "validation_error",
    429: "throttled",
}


def error(status, code, detail, **extra):
    """Return a JSON error response."""
    body = {"code": code, "detail": detail, **extra}
    return HttpResponse(json.dumps(body), status=status, content_type="application/json")


def field_errors(errors):
    """Turn ninja's validation errors into ``[{field, message, type}]`` with dotted paths.

    ``loc`` is ``("body", <parameter name>, field, …)``, ``("path", name)`` or ``("query",
    name)``; the parameter name of a body tells a client nothing, so it is dropped.
    """
    out = []
    for item in errors:
        loc = [str(part) for part in item.get("loc", ())]
        if len(loc) >= 2 and loc[0] == "body":
            loc = loc[2:] or ["body"]
        elif len(loc) >= 2:
            loc = loc[1:]
        message = str(item.get("msg", "invalid"))
        out.append({"field": ".".join(loc) or "body", "message": message, "type": item["type"]})
    return out


def on_validation_error(request, exc):
    errors = field_errors(exc.errors)
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:10])
    return error(422, "validation_error", detail or "Invalid request.", errors=errors)


# The HTTP status of each refusal code of the rules (``RuleError.code``); any other is 409.
RULE_STATUS = {
    "not_found": 404,
    "forbidden_pod": 403,
    "forbidden": 403,
    "validation_error": 422,
    "too_large": 413,
}


def status_for(refusal):
    """Return the HTTP status of a ``RuleError``."""
    return RULE_STATUS.get(refusal.code, 409)


def on_rule_error(request, exc):
    return error(status_for(exc), exc.code, exc.detail, **exc.extra)


def on_authentication_error(request, exc):
    response = error(401, "unauthorized", getattr(exc, "detail", None) or str(exc))
    response["WWW-Authenticate"] = 'Bearer realm="podboard"'
    return response


def on_http_error(request, exc):
    if exc.status_code == 400 and str(exc).startswith("Cannot parse request body"):
        return error(400, "bad_request", "The request body is not valid JSON.")
    return error(exc.status_code, HTTP_CODES.get(exc.status_code, "error"), str(exc))


def on_not_found(request, exc):
    return error(404, "not_found", "Not found.")


def on_unexpected(request, exc):
    """Answer a failure nobody foresaw with JSON; a locked SQLite database is a 503 to retry."""
    if isinstance(exc, RequestDataTooBig):
        # Only outside the ASGI body bound (podboard/body_limit.py), e.g. under WSGI.
        return error(413, "too_large", str(exc))
    if isinstance(exc, OperationalError) and "locked" in str(exc).lower():
        response = error(503, "busy", "The database is busy; retry in a moment.")
        response["Retry-After"] = "1"
        return response
    known = DatabaseUnavailableMiddleware(None).process_exception(request, exc)
    if known is not None:
        return known
    log.exception("API request failed: %s %s", request.method, request.path, exc_info=exc)
    return error(500, "server_error", "Something went wrong on the server; it has been logged.")


def install(api):
    """Register the handlers on ``api``."""
    api.add_exception_handler(ValidationError, on_validation_error)
    api.add_exception_handler(RuleError, on_rule_error)
    api.add_exception_handler(AuthenticationError, on_authentication_error)
    api.add_exception_handler(HttpError, on_http_error)
    api.add_exception_handler(Http404, on_not_found)
    api.add_exception_handler(Exception, on_unexpected)


def not_found_view(request, *args, **kwargs):
    """Answer a path under /api/ that no route matches."""
    return error(404, "not_found", f"No API route at {request.path}. See /api/docs.")


def json_method_not_allowed(view):
    """Wrap a ninja path view so a wrong method answers JSON 405 with an ``Allow`` header."""

    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        if response.status_code == 405 and not response.get("Content-Type", "").startswith(
            "application/json"
        ):
            allowed = response.get("Allow", "")
            response = error(
                405,
                "method_not_allowed",
                f"{request.method} is not allowed here; use {allowed or 'another method'}.",
            )
            response["Allow"] = allowed
        return response

    for attr in ("csrf_exempt",):
        if hasattr(view, attr):
            setattr(wrapped, attr, getattr(view, attr))
    return wrapped
