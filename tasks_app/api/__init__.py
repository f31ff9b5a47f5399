"""The Pod API: django-ninja app, mounted at ``/api/`` (see ``tasks_app.api.urls``)."""

from django.conf import settings
from ninja import NinjaAPI, Swagger

from ..auth import PodTokenAuth
from ..insight.api import router as metrics_router
from . import errors
from .control import router as control_router
from .routes import router


class PodBoardAPI(NinjaAPI):
    """The API, whose OpenAPI ``servers`` entry is read when the document is built: the demo
    sets ``PODBOARD_PUBLIC_URL`` to the port it serves after the URLs are loaded."""

    def get_openapi_schema(self, *args, **kwargs):
        self.servers = [{"url": settings.PODBOARD_PUBLIC_URL}]
        return super().get_openapi_schema(*args, **kwargs)


api = PodBoardAPI(
    title="PodBoard",
    version="1.0",
    description=(
        "The task system of a chain of AI agent pods. A pod pulls its next task, traces its "
        "work, completes it with a handoff note, and the next pod takes the baton."
    ),
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
