"""The environment of a subprocess (a server, a worker) that works on this test's database."""

import os

from tests.support.databases import with_database
from tests.support.servers import django_env


def env_on_test_database(**extra):
    """Return ``django_env`` for the test database pytest-django set up (SQLite file or
    PostgreSQL), with the in-memory channel layer unless ``redis_url`` is given."""
    from django.conf import settings
    from django.db import connection

    redis_url = extra.pop("redis_url", "")
    name = settings.DATABASES["default"]["NAME"]
    if connection.vendor == "postgresql":
        url = with_database(os.environ["DATABASE_URL"], name)
        return django_env(database_url=url, redis_url=redis_url, **extra)
    return django_env(database_url="", redis_url=redis_url, PODBOARD_SQLITE_PATH=name, **extra)
