"""``/metrics/prometheus``: PodBoard's figures in the Prometheus text format.

Workflow figures (claims, completions, handoffs by resolved mode, scale-outs, stalls, Events by
kind, tasks per pod and status, queue depth, webhook deliveries) are read from the database at
scrape time, so every server process answers the same totals however many there are. Counters
count Events, which are never deleted, so they only grow.

Request counts and the live lag are per process. Request counts are ``prometheus_client``
counters: with several worker processes, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory
(the same for every worker, wiped at deploy) and each scrape adds up all workers' counts
(``prometheus_client``'s multiprocess mode); without it a scrape sees the process it reached.
The live lag is the lag of the process that answers (each process has its own boards).

The endpoint needs ``Authorization: Bearer <PODBOARD_METRICS_TOKEN>``; with no token
configured it does not exist (404), so a fresh install exposes nothing.
"""

import hmac
import os
import time

from django.conf import settings
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder

from .sql import DELIVERY, DEPENDS, EVENT, POD, TASK, dialect, fetch

CACHE_SECONDS = 5.0

REQUESTS = Counter(
    "podboard_http_requests",
    "HTTP requests answered, by method, route pattern and status code.",
    ["method", "route", "status"],
    registry=None,
)

NAMED_COUNTERS = (
    ("podboard_claims", "Tasks claimed by pod instances.", "claimed"),
    ("podboard_completions", "Tasks completed.", "completed"),
    ("podboard_scale_outs", "Tasks scaled out to a continuation.", "scaled_out"),
    ("podboard_stalls", "Leases that ran out (the task went back to Ready).", "lease_expired"),
    ("podboard_send_backs", "Tasks sent back for rework.", "sent_back"),
)


def configured_token():
    """The bearer token scrapers must send; empty when metrics are off."""
    return getattr(settings, "PODBOARD_METRICS_TOKEN", "") or os.environ.get(
        "PODBOARD_METRICS_TOKEN", ""
    )


def authorized(request, token):
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(raw.strip().encode(), token.encode())


class RequestMetricsMiddleware:
    """Count every answered request by method, URL pattern (not the path: ids would make
    a series per task) and status."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = match.route if match is not None and match.route else "unmatched"
        REQUESTS.labels(request.method, route[:100], str(response.status_code)).inc()
        return response


class DatabaseCollector:
    """Figures read from the database at scrape time (cached for ``CACHE_SECONDS``, so several
    scrapers at once cost one set of queries)."""

    _cache = {"at": float("-inf"), "families": []}

    def collect(self):
        now = time.monotonic()
        if now - self._cache["at"] > CACHE_SECONDS:
            self._cache["families"] = list(self._families())
            self._cache["at"] = now
        yield from self._cache["families"]

    def _families(self):
        by_kind = dict(fetch(f"SELECT kind, COUNT(*) FROM {EVENT} GROUP BY kind"))
        for name, doc, kind in NAMED_COUNTERS:
            yield CounterMetricFamily(name, doc, value=by_kind.get(kind, 0))
        events = CounterMetricFamily(
            "podboard_events", "Events recorded, by kind.", labels=["kind"]
        )
        for kind, count in sorted(by_kind.items()):
            events.add_metric([kind], count)
        yield events

        mode = dialect().json_text("payload", "mode")
        handoffs = CounterMetricFamily(
            "podboard_handoffs", "Batons passed, by resolved mode (sync/async).", labels=["mode"]
        )
        rows = dict(
            fetch(f"SELECT {mode}, COUNT(*) FROM {EVENT} WHERE kind = 'handoff' GROUP BY {mode}")
        )
        for name in ("sync", "async"):
            handoffs.add_metric([name], rows.get(name, 0))
        yield handoffs

        tasks = GaugeMetricFamily(
            "podboard_tasks", "Tasks by pod and status.", labels=["pod", "status"]
        )
        queue = GaugeMetricFamily(
            "podboard_queue_depth", "Ready tasks of a pod that nothing blocks.", labels=["pod"]
        )
        paused = GaugeMetricFamily(
            "podboard_pod_paused", "1 while a pod is paused.", labels=["pod"]
        )
        pods = fetch(f"SELECT name, paused FROM {POD} ORDER BY name")
        counts = fetch(
            f"SELECT p.name, t.status, COUNT(*) FROM {TASK} t JOIN {POD} p "
            "ON p.id = t.pod_owner_id GROUP BY p.name, t.status"
        )
        ready = dict(
            fetch(
                f"SELECT p.name, COUNT(*) FROM {TASK} t JOIN {POD} p ON p.id = t.pod_owner_id "
                f"WHERE t.status = 'ready' AND NOT EXISTS (SELECT 1 FROM {DEPENDS} d "
                f"JOIN {TASK} dt ON dt.id = d.to_task_id WHERE d.from_task_id = t.id "
                "AND dt.status <> 'done') GROUP BY p.name"
            )
        )
        for pod, status, count in counts:
            tasks.add_metric([pod, status], count)
        for pod, is_paused in pods:
            queue.add_metric([pod], ready.get(pod, 0))
            paused.add_metric([pod], 1 if is_paused else 0)
        yield tasks
        yield queue
        yield paused

        deliveries = GaugeMetricFamily(
            "podboard_webhook_deliveries",
            "Webhook deliveries by state (pending: still to send or retry; failed: gave up).",
            labels=["state"],
        )
        states = dict(fetch(f"SELECT state, COUNT(*) FROM {DELIVERY} GROUP BY state"))
        for state in ("pending", "delivered", "failed"):
            deliveries.add_metric([state], states.get(state, 0))
        yield deliveries


class LiveLagCollector:
    """How far behind the database this process's live boards are."""

    def collect(self):
        from .. import live

        lag = getattr(live, "lag_seconds", None)
        stats = getattr(live, "lag_stats", None)
        yield GaugeMetricFamily(
            "podboard_live_lag_seconds",
            "Age of the newest change in the last frame sent to a board (this process).",
            value=float(lag()) if lag else 0.0,
        )
        figures = stats() if stats else {}
        yield GaugeMetricFamily(
            "podboard_live_lag_peak_seconds",
            "Worst board lag this process has seen.",
            value=float(figures.get("peak", 0.0)),
        )
        yield CounterMetricFamily(
            "podboard_live_frames",
            "Frames sent to boards by this process.",
            value=int(figures.get("frames", 0)),
        )


class _Requests:
    def collect(self):
        return REQUESTS.collect()


def registry():
    """A registry for one scrape: the database figures, the live lag, and request counts
    (added up over every worker in multiprocess mode)."""
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(DatabaseCollector())
    scrape.register(LiveLagCollector())
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(scrape)
    else:
        scrape.register(_Requests())
    return scrape


def exposition(accept_header):
    """Return ``(body, content type)`` of a scrape, in the format the scraper asked for."""
    encoder, content_type = choose_encoder(accept_header or "")
    return encoder(registry()), content_type
