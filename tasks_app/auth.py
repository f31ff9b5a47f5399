"""Pod token authentication for the API: ``Authorization: Bearer <token>``.

A token is stored as its SHA-256 hash; one indexed query finds it with its pod. ``last_used_at``
is written at most once a minute per token, so a busy pod does not pay a write per request.
"""

from datetime import timedelta

from django.utils import timezone
from ninja.errors import AuthenticationError
from ninja.security import HttpBearer

from .models import PodToken, hash_token
from .prepared import prepared

LAST_USED_EVERY = timedelta(seconds=60)


class Unauthorized(AuthenticationError):
    """A missing, malformed, unknown or revoked token; ``detail`` says which."""

    def __init__(self, detail):
        super().__init__(401, detail)
        self.detail = detail


@prepared(key_hash=str)
def _token_by_hash(key_hash):
    return PodToken.objects.select_related("pod").filter(key_hash=key_hash).order_by()[:1]


def find_token(raw):
    """Return the active ``PodToken`` (with its pod) for ``raw``; raise ``Unauthorized``."""
    # No ORDER BY: the hash is unique, and the model's default ordering would add a sort.
    found = _token_by_hash(key_hash=hash_token(raw))
    token = found[0] if found else None
    if token is None:
        raise Unauthorized("This bearer token is not a PodBoard pod token.")
    if token.revoked_at is not None:
        raise Unauthorized(f"The token {token.prefix}… was revoked; ask an admin for a new one.")
    touch(token)
    return token


def touch(token, now=None):
    """Record that ``token`` was used, unless that was already recorded in the last minute."""
    now = now or timezone.now()
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_EVERY:
        return
    PodToken.objects.filter(pk=token.pk).update(last_used_at=now)
    token.last_used_at = now


class PodTokenAuth(HttpBearer):
    """Let a request act for the pod its bearer token belongs to (``request.auth`` is the token)."""

    def __call__(self, request):
        header = request.headers.get("Authorization", "")
        if not header:
            raise Unauthorized("Send the pod token as 'Authorization: Bearer <token>'.")
        scheme, _, raw = header.partition(" ")
        raw = raw.strip()
        if scheme.lower() != "bearer" or not raw:
            raise Unauthorized("The Authorization header must be 'Bearer <token>'.")
        return self.authenticate(request, raw)

    def authenticate(self, request, token):
        if len(token) > 200 or not token.isprintable():
            raise Unauthorized("This bearer token is not a PodBoard pod token.")
        return find_token(token)
