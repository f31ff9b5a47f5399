"""The Pod API: django-ninja app, mounted at ``/api/`` (see ``tasks_app.api.urls``)."""

from django.conf import settings
from ninja import NinjaAPI

from ..auth import PodTokenAuth
from . import errors
from .routes import router

api = NinjaAPI(
    title="PodBoard",
    version="1.0",
    description=(
        "The task system of a chain of AI agent pods. A pod pulls its next task, traces its "
        "work, completes it with a handoff note, and the next pod takes the baton."
    ),
    servers=[{"url": settings.PODBOARD_PUBLIC_URL}],
    openapi_url="/openapi.json",
    docs_url="/docs",
    urls_namespace="api",
    auth=PodTokenAuth(),
)
errors.install(api)
api.add_router("", router)
