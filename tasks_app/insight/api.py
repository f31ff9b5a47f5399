"""``GET /api/metrics/flow``: the flow metrics as JSON, for a pod token or a signed-in person."""

import json

from django.http import HttpResponse
from ninja import Query, Router
from pydantic import BaseModel, ConfigDict, Field

from ..api import schemas as s
from ..auth import PodTokenAuth
from ..models import Pod
from ..workflow import RuleError
from .flow import DEFAULT_DAYS, MAX_DAYS, flow_metrics


class PodTokenOrSession(PodTokenAuth):
    """A pod token, or (with no Authorization header) the session of a signed-in person, so the
    metrics page's own scripts and a person's browser can read the route too.

    It keeps ``PodTokenAuth``'s name: the OpenAPI document declares the pod token as its one
    security scheme (what a GPT Action accepts); the session is a browser convenience.
    """

    def __call__(self, request):
        user = getattr(request, "user", None)
        if not request.headers.get("Authorization") and user and user.is_authenticated:
            return user
        return super().__call__(request)


PodTokenOrSession.__name__ = PodTokenOrSession.__qualname__ = PodTokenAuth.__name__

router = Router(tags=["metrics"])


class Percentiles(s.Out):
    p50: float | None = Field(description="Median, seconds; null without data.")
    p85: float | None = Field(description="85th percentile, seconds; null without data.")


class Waits(s.Out):
    sync: Percentiles
    async_: Percentiles = Field(alias="async")


class DayDone(s.Out):
    day: str = Field(description="A UTC date, YYYY-MM-DD.")
    done: int


class Tokens(s.Out):
    total: float = Field(description="Tokens of the tasks done in the window.")
    per_task_p50: float | None
    per_chain_p50: float | None = Field(
        None, description="Median tokens of a task with its continuations."
    )


class PodFlow(s.Out):
    pod: str
    done: int = Field(description="Tasks done in the window.")
    throughput: list[DayDone]
    cycle_time_s: Percentiles = Field(description="First claim to done (approval if reviewed).")
    lead_time_s: Percentiles = Field(description="Created to done.")
    handoff_wait_s: Waits = Field(description="Workable baton to claim, by resolved mode.")
    scale_outs: int
    stalls: int = Field(description="Leases that ran out.")
    changes_requested: int
    send_backs: int = Field(description="Rework tasks created for the pod.")
    claims: int
    tokens: Tokens


class CfdDay(s.Out):
    day: str
    pod: str
    ready: int
    active: int
    review: int
    done: int


class FlowOut(s.Out):
    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from", description="First UTC date of the window.")
    to: str = Field(description="Last UTC date of the window (today).")
    pods: list[PodFlow]
    cfd: list[CfdDay]


class FlowQuery(BaseModel):
    days: int = Field(DEFAULT_DAYS, ge=1, le=MAX_DAYS, description="UTC days, today included.")
    pod: s.Text(64) | None = Field(None, description="Only this pod.")


@router.get(
    "/metrics/flow",
    response={200: FlowOut, 401: s.ErrorOut, 404: s.ErrorOut, 422: s.ErrorOut},
    auth=PodTokenOrSession(),
    by_alias=True,
    operation_id="flowMetrics",
    summary="Flow metrics per pod",
    description=(
        "Per pod over the last N UTC days: throughput per day, cycle, lead and handoff-wait "
        "percentiles in seconds, scale-outs, stalls, review rejections, send-backs, tokens, and "
        "the cumulative flow diagram."
    ),
    openapi_extra={"x-openai-isConsequential": False},
)
def flow(request, query: Query[FlowQuery]):
    pods = None
    if query.pod is not None:
        if not Pod.objects.filter(name=query.pod).exists():
            raise RuleError("not_found", f"No pod named {query.pod!r}.")
        pods = [query.pod]
    data = flow_metrics(days=query.days, pods=pods)
    return HttpResponse(json.dumps(data), content_type="application/json")
