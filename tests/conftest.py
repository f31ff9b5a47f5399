"""Shared fixtures: personas (a lead, a staff admin), pods, tokens, task factory."""

import os
import socket

import pytest
from django.db import connection

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _reachable(host, port):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def pytest_collection_modifyitems(config, items):
    on_postgres = connection.vendor == "postgresql"
    redis_url = os.environ.get("REDIS_URL", "")
    for item in items:
        if "postgres" in item.keywords and not on_postgres:
            item.add_marker(
                pytest.mark.skip(
                    reason="needs PostgreSQL: runs in the PostgreSQL pass (DATABASE_URL)"
                )
            )
        if "redis" in item.keywords and not redis_url:
            if IN_CI and on_postgres:
                continue  # the PostgreSQL + Redis pass: the fixture below fails loudly
            item.add_marker(
                pytest.mark.skip(
                    reason="needs Redis: runs in the PostgreSQL + Redis pass (REDIS_URL)"
                )
            )


@pytest.fixture
def redis_url():
    url = os.environ.get("REDIS_URL", "")
    if not url:
        if IN_CI:
            pytest.fail("REDIS_URL is not set under CI=true")
        pytest.skip("needs Redis (REDIS_URL)")
    return url


@pytest.fixture
def pods(db):
    from tasks_app.models import Pod

    return {
        name: Pod.objects.create(name=name, order=i)
        for i, name in enumerate(["ProductPod", "DevPod", "QAPod"])
    }


@pytest.fixture
def make_task(pods):
    from tasks_app.models import Task

    def make(id, pod="DevPod", depends_on=(), **fields):
        fields.setdefault("title", f"Task {id}")
        task = Task.objects.create(id=id, pod_owner=pods[pod], **fields)
        if depends_on:
            task.depends_on.add(*depends_on)
        return task

    return make


@pytest.fixture
def lead(db, django_user_model):
    """A human lead: may move tasks and run actions (the ``change task`` permission)."""
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("lead", password="lead-password-1")
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="tasks_app", codename="change_task")
    )
    return user


@pytest.fixture
def viewer(db, django_user_model):
    """A signed-in user without the ``change task`` permission: sees a read-only board."""
    return django_user_model.objects.create_user("viewer", password="viewer-password-1")


@pytest.fixture
def staff(db, django_user_model):
    return django_user_model.objects.create_superuser(
        "admin", "admin@example.com", "admin-password-1"
    )


@pytest.fixture
def pod_tokens(pods):
    from tasks_app.models import PodToken

    return {name: PodToken.issue(pod=pod, label="test")[1] for name, pod in pods.items()}
