"""The Pod API: django-ninja app, mounted at ``/api/`` (see ``tasks_app.api.urls``)."""

from django.conf import settings
from ninja import NinjaAPI, Swagger

from ..auth import PodTokenAuth
from ..insight.api import router as metrics_router
from . import errors
from .control import router as control_router
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
    # Swagger UI from ninja's own static files ("ninja" in INSTALLED_APPS), and no call to the
    # public validator service: the docs page loads nothing from outside PodBoard.
    docs=Swagger(settings={"validatorUrl": None}),
    urls_namespace="api",
    auth=PodTokenAuth(),
)
errors.install(api)
api.add_router("", router)
api.add_router("", control_router)
api.add_router("", metrics_router)
