"""Sign-in throttling for the board's and the admin's login forms (django-axes).

After ``AXES_FAILURE_LIMIT`` failed sign-ins for one username from one address, that pair is
refused, even with the right password, until ``AXES_COOLOFF_TIME`` has passed since the last
failure. Pods never sign in (they use bearer tokens), so the API is not concerned.
"""

import math

from axes.backends import AxesStandaloneBackend
from axes.helpers import get_client_username, get_cool_off
from django.shortcuts import render


class SignInThrottleBackend(AxesStandaloneBackend):
    """django-axes' guard, for sign-ins made over HTTP.

    ``authenticate()`` without a request (a management command checking a password) is no
    sign-in attempt from an address: it is left to the next backend instead of refused.
    """

    def authenticate(self, request=None, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def lockout_response(request, original_response=None, credentials=None):
    """The answer to a locked-out sign-in: 429 with a page that says what happened, for how
    long, and a ``Retry-After`` header."""
    cool_off = get_cool_off(request)
    seconds = math.ceil(cool_off.total_seconds()) if cool_off else None
    context = {
        "username": get_client_username(request, credentials) or "",
        "minutes": math.ceil(seconds / 60) if seconds else None,
    }
    response = render(request, "registration/locked.html", context, status=429)
    if seconds:
        response["Retry-After"] = str(seconds)
    return response
