"""The insight pages: flow metrics, the tasks behind a bar, a delivery chain, the activity
feed, Prometheus."""

from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import quote

from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from ..models import Pod, Task
from ..views import login_required_htmx
from . import chains, feed, prometheus
from .flow import DEFAULT_DAYS, MAX_DAYS, MODES, STATUSES, done_in, flow_metrics

DAY_CHOICES = (7, 14, 30, 90, 180, 365)


def _days(value):
    try:
        days = int(value)
    except (TypeError, ValueError):
        return DEFAULT_DAYS
    return min(max(days, 1), MAX_DAYS)


@never_cache
@require_GET
@login_required_htmx
def metrics_page(request):
    """Flow metrics for a range of days and a choice of pods: charts, each with its table."""
    days = _days(request.GET.get("days", DEFAULT_DAYS))
    all_pods = list(Pod.objects.order_by("order", "name").values_list("name", flat=True))
    chosen = [p for p in request.GET.getlist("pod") if p in all_pods]
    data = flow_metrics(days=days, pods=chosen or None)
    # The long tables get their cells as text here: formatting a few hundred numbers and
    # reversing a URL per cell in the template cost more than the queries.
    cfd_by_pod = {}
    for row in data["cfd"]:
        cells = [str(row[status]) for status in STATUSES]
        cfd_by_pod.setdefault(row["pod"], []).append((row["day"], cells))
    context = {
        "days": days,
        "day_choices": sorted({*DAY_CHOICES, days}),
        "all_pods": all_pods,
        "chosen": chosen,
        "data": data,
        "throughput_rows": _throughput_rows(data["pods"], reverse("metrics_done")),
        "cfd_by_pod": cfd_by_pod,
        "modes": MODES,
        "statuses": STATUSES,
        "chart_data": {
            "pods": data["pods"],
            "cfd": data["cfd"],
            "doneUrl": request.build_absolute_uri("/metrics/done/"),
        },
    }
    return render(request, "tasks_app/metrics.html", context)


def _throughput_rows(pods, done_url):
    """``[(day, [(done, link to the tasks or ""), …]), …]``: the throughput table, one row a
    day, its cells as text."""
    if not pods:
        return []
    days = [t["day"] for t in pods[0]["throughput"]]
    quoted = [quote(p["pod"], safe="/") for p in pods]
    rows = []
    for i, day in enumerate(days):
        cells = []
        for pod, name in zip(pods, quoted, strict=True):
            done = pod["throughput"][i]["done"]
            cells.append((str(done), f"{done_url}?pod={name}&day={day}" if done else ""))
        rows.append((day, cells))
    return rows


@never_cache
@require_GET
@login_required_htmx
def done_page(request):
    """The tasks behind a throughput bar: those a pod finished on one UTC day."""
    pod = request.GET.get("pod", "")
    try:
        day = date.fromisoformat(request.GET.get("day", ""))
    except ValueError:
        raise Http404("Give a day as YYYY-MM-DD.") from None
    if not Pod.objects.filter(name=pod).exists():
        raise Http404(f"No pod named {pod!r}.")
    start = datetime.combine(day, time.min, tzinfo=UTC)
    rows = done_in(start, start + timedelta(days=1), pod)
    titles = dict(Task.objects.filter(pk__in=[r[0] for r in rows]).values_list("id", "title"))
    items = [{"id": key, "at": at, "title": titles.get(key, "(deleted)")} for key, at in rows]
    return render(request, "tasks_app/metrics_done.html", {"pod": pod, "day": day, "items": items})


def _chain_or_404(task_id):
    chain = chains.build_chain(task_id)
    if chain is None:
        raise Http404(f"No task with id {task_id!r}.")
    return chain


def _chain_context(chain):
    # Both built with every value escaped; as strings, because 200 nodes through template
    # tags cost more than the queries.
    return {
        "chain": chain,
        "svg": mark_safe(chains.render_svg(chain)),
        "rows": mark_safe(chains.render_rows(chain)),
    }


@never_cache
@require_GET
@login_required_htmx
def chain_page(request, task_id):
    """The delivery chain of a task as a graph (and a table), refreshed while it is open."""
    chain = _chain_or_404(task_id)
    return render(request, "tasks_app/chain.html", _chain_context(chain))


@never_cache
@require_GET
@login_required_htmx
def chain_graph(request, task_id):
    """The chain's graph fragment for the page's poll; 204 when nothing changed since
    ``stamp`` (htmx then leaves the graph as it is)."""
    stamp = request.GET.get("stamp", "")
    if stamp and chains.chain_stamp(task_id) == stamp:
        return HttpResponse(status=204)
    chain = _chain_or_404(task_id)
    return render(request, "tasks_app/chain.html#graph", _chain_context(chain))


@never_cache
@require_GET
def prometheus_metrics(request):
    """Prometheus scrape target; needs ``Authorization: Bearer <PODBOARD_METRICS_TOKEN>``."""
    token = prometheus.configured_token()
    if not token:
        raise Http404("Metrics are off: PODBOARD_METRICS_TOKEN is not set.")
    if not prometheus.authorized(request, token):
        response = HttpResponse(
            "Send 'Authorization: Bearer <PODBOARD_METRICS_TOKEN>'.\n",
            status=401,
            content_type="text/plain; charset=utf-8",
        )
        response["WWW-Authenticate"] = 'Bearer realm="podboard-metrics"'
        return response
    body, content_type = prometheus.exposition(request.headers.get("Accept", ""))
    return HttpResponse(body, content_type=content_type)


# The activity feed -----------------------------------------------------------------------------


def _int(value, default=None):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


@never_cache
@require_GET
@login_required_htmx
def activity_page(request):
    """The latest Events, newest first, filtered by pod and kind; ``before`` pages back."""
    filters = feed.Filters.from_query(request.GET)
    before = _int(request.GET.get("before"))
    rows, older = feed.feed_page(filters, before=before)
    context = {
        "rows": rows,
        "older": older,
        "before": before,
        "filters": filters,
        "filter_query": filters.query_string(),
        "all_pods": list(Pod.objects.order_by("order", "name").values_list("name", flat=True)),
        "kinds": feed.KIND_LABELS.items(),
        # The live poll starts after the newest Event there is (a filter may hide it).
        "after": feed.latest_id() if before is None else None,
    }
    return render(request, "tasks_app/activity.html", context)


@never_cache
@require_GET
@login_required_htmx
def activity_rows(request):
    """Feed rows as an HTML fragment, for the live poll and the board's drawer.

    With ``after``: the Events above that id (and the last seconds' Events just below it,
    which a slower transaction may have committed after a newer one; the page skips the rows
    it shows already), or 204 when there are none. Without: the newest page (``limit``).
    The ``PodBoard-Feed-After`` header says where the next poll starts.
    """
    filters = feed.Filters.from_query(request.GET)
    after = _int(request.GET.get("after"))
    if after is None:
        rows, _older = feed.feed_page(filters, limit=_int(request.GET.get("limit"), 30))
        newest, more = feed.latest_id(), False
    else:
        rows, more = feed.newer_than(filters, after)
        newest = max([after, *(r.id for r in rows)])
        if not rows:
            response = HttpResponse(status=204)
            response["PodBoard-Feed-After"] = str(newest)
            return response
    response = render(request, "tasks_app/activity.html#rows", {"rows": rows, "more": more})
    response["PodBoard-Feed-After"] = str(newest)
    return response
