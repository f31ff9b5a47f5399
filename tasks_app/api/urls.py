"""URL patterns of the Pod API: ninja's routes, JSON 405s, and a JSON 404 for anything else."""

from django.urls import URLPattern, re_path

from . import api
from .errors import json_method_not_allowed, not_found_view

app_name = "api"


def _patterns():
    patterns, _app, _namespace = api.urls
    wrapped = []
    for pattern in patterns:
        if isinstance(pattern, URLPattern):
            pattern = URLPattern(
                pattern.pattern,
                json_method_not_allowed(pattern.callback),
                pattern.default_args,
                pattern.name,
            )
        wrapped.append(pattern)
    return [*wrapped, re_path(r"^.*$", not_found_view)]


urlpatterns = _patterns()
