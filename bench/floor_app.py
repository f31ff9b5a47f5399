"""The bare floor: a django-ninja app with one authenticated write and nothing of PodBoard's.

``bench/bench_api.py`` serves it with its own uvicorn process on PodBoard's database and
compares PodBoard's endpoints with it, so "how far is PodBoard from what the framework costs"
is measured against the framework, not against PodBoard's own stack.

``POST /api/_floor`` with ``Authorization: Bearer <pod token>``: find the token by its SHA-256
hash in PodBoard's ``tasks_app_podtoken`` table (one indexed query), refuse a revoked one, then
one ``UPDATE`` of its ``last_used_at`` in ``atomic()``. No middleware, no sessions, no
templates, no PodBoard code: Django's own database backends, configured from ``DATABASE_URL``
with the same connection options PodBoard uses (SQLite: WAL, ``BEGIN IMMEDIATE``, 20 s busy
timeout; PostgreSQL: a psycopg pool and server-side binding), so the floor differs from
PodBoard by its code only.
``FLOOR_SQLITE_ENGINE`` names another SQLite backend (``podboard.sqlite_backend``) to see how
much of a difference is the backend's.

    DATABASE_URL=sqlite:///var/db.sqlite3 .venv/bin/python -m uvicorn bench.floor_app:application
"""

import hashlib
import os

import dj_database_url
import django
from django.conf import settings

SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
}
POSTGRES_OPTIONS = {
    "connect_timeout": 5,
    "server_side_binding": True,
    "prepare_threshold": 5,
    "pool": {"min_size": 2, "max_size": 16, "timeout": 10},
}


def database():
    db = dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=0)
    if db["ENGINE"] == "django.db.backends.sqlite3":
        db["ENGINE"] = os.environ.get("FLOOR_SQLITE_ENGINE") or db["ENGINE"]
        db["OPTIONS"] = dict(SQLITE_OPTIONS)
        if db["ENGINE"] != "django.db.backends.sqlite3":
            db["OPTIONS"]["idle_connections"] = 16
    elif db["ENGINE"] == "django.db.backends.postgresql":
        db["OPTIONS"] = dict(POSTGRES_OPTIONS)
    return db


if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-floor-not-secret",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[],
        MIDDLEWARE=[],
        DATABASES={"default": database()},
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
    django.setup()

from django.db import models, transaction  # noqa: E402 - needs the settings above
from django.urls import path  # noqa: E402
from django.utils import timezone  # noqa: E402
from ninja import NinjaAPI  # noqa: E402
from ninja.security import HttpBearer  # noqa: E402


class PodToken(models.Model):
    """PodBoard's token table, read and written in place."""

    key_hash = models.CharField(max_length=64, unique=True)
    last_used_at = models.DateTimeField(null=True)
    revoked_at = models.DateTimeField(null=True)

    class Meta:
        app_label = "floor"
        db_table = "tasks_app_podtoken"
        managed = False

    def __str__(self):
        return f"token {self.pk}"


class Bearer(HttpBearer):
    def authenticate(self, request, token):
        digest = hashlib.sha256(token.encode()).hexdigest()
        found = PodToken.objects.filter(key_hash=digest).only("pk", "revoked_at").first()
        if found is not None and found.revoked_at is None:
            return found
        return None


api = NinjaAPI(auth=Bearer(), docs_url=None, urls_namespace="floor")


@api.post("/_floor")
def floor(request):
    """The token lookup (in ``Bearer``) and one atomic UPDATE."""
    with transaction.atomic():
        PodToken.objects.filter(pk=request.auth.pk).update(last_used_at=timezone.now())
    return {"ok": True}


urlpatterns = [path("api/", api.urls)]

from django.core.asgi import get_asgi_application  # noqa: E402

application = get_asgi_application()
