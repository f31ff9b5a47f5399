"""/metrics/prometheus: refused without the token, parseable text with ``podboard_`` figures."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tasks_app import workflow
from tasks_app.insight import prometheus
from tasks_app.models import Event, Pod, WebhookDelivery

TOKEN = "scrape-secret-1"


@pytest.fixture(autouse=True)
def _fresh_cache():
    prometheus.DatabaseCollector._cache["at"] = float("-inf")


@pytest.fixture
def metrics_token(settings):
    settings.PODBOARD_METRICS_TOKEN = TOKEN
    return TOKEN


def scrape(client, token=TOKEN):
    return client.get("/metrics/prometheus", headers={"Authorization": f"Bearer {token}"})


def samples(response):
    out = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_without_a_configured_token_the_endpoint_does_not_exist(client, settings, monkeypatch):
    settings.PODBOARD_METRICS_TOKEN = ""
    monkeypatch.delenv("PODBOARD_METRICS_TOKEN", raising=False)
    assert client.get("/metrics/prometheus").status_code == 404
    assert scrape(client, "anything").status_code == 404


def test_the_token_may_come_from_the_environment(client, settings, monkeypatch, db):
    settings.PODBOARD_METRICS_TOKEN = ""
    monkeypatch.setenv("PODBOARD_METRICS_TOKEN", TOKEN)
    assert scrape(client).status_code == 200
    assert scrape(client, "wrong").status_code == 401


def test_a_missing_or_wrong_token_is_401(client, metrics_token, db):
    response = client.get("/metrics/prometheus")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert scrape(client, "not-the-token").status_code == 401
    assert client.get("/metrics/prometheus", headers={"Authorization": TOKEN}).status_code == 401


def test_a_signed_in_session_is_not_enough(client, metrics_token, staff):
    client.force_login(staff)
    assert client.get("/metrics/prometheus").status_code == 401


def test_the_scrape_parses_and_names_podboard_figures(client, metrics_token, make_task):
    make_task("PROD-1", pod="ProductPod", handoff_mode="sync")
    make_task("DEV-1", depends_on=["PROD-1"], handoff_from_id="PROD-1")
    make_task("DEV-2")
    make_task("QA-1", pod="QAPod", depends_on=["DEV-1"])
    workflow.start(task_id="PROD-1", instance="ProductPod#1")
    workflow.complete(task_id="PROD-1", instance="ProductPod#1")  # sync baton to DEV-1
    workflow.start(task_id="DEV-1", instance="DevPod#1")
    workflow.scale_out(task_id="DEV-1", instance="DevPod#1")
    Event.objects.create(task_key="DEV-2", kind="lease_expired")
    WebhookDelivery.objects.create(
        pod=Pod.objects.get(name="DevPod"),
        kind="task.ready",
        task_key="DEV-2",
        webhook_id="w1",
        url="http://x/",
    )

    response = scrape(client)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    figures = samples(response)
    assert figures[("podboard_claims_total", ())] == 2
    assert figures[("podboard_completions_total", ())] == 1
    assert figures[("podboard_scale_outs_total", ())] == 1
    assert figures[("podboard_stalls_total", ())] == 1
    assert figures[("podboard_handoffs_total", (("mode", "sync"),))] == 1
    assert figures[("podboard_handoffs_total", (("mode", "async"),))] == 0
    assert figures[("podboard_webhook_deliveries", (("state", "pending"),))] == 1
    assert figures[("podboard_webhook_deliveries", (("state", "failed"),))] == 0
    # DEV-2 and the continuation DEV-1.2 are ready; QA-1 waits for DEV-1.2.
    assert figures[("podboard_queue_depth", (("pod", "DevPod"),))] == 2
    assert figures[("podboard_queue_depth", (("pod", "QAPod"),))] == 0
    assert figures[("podboard_tasks", (("pod", "DevPod"), ("status", "done")))] == 1
    assert ("podboard_live_lag_seconds", ()) in figures
    names = {name for name, _ in figures}
    assert all(name.startswith("podboard_") for name in names)


def test_requests_are_counted_by_route_and_status(client, metrics_token, db):
    client.get("/api/tasks")  # 401: no token
    figures = samples(scrape(client))
    key = (
        "podboard_http_requests_total",
        (("method", "GET"), ("route", "api/tasks"), ("status", "401")),
    )
    assert figures.get(key, 0) >= 1


def test_figures_come_from_the_database_so_every_process_agrees(client, metrics_token, db):
    before = samples(scrape(client))[("podboard_claims_total", ())]
    Event.objects.create(task_key="X-1", kind="claimed")  # as if another process claimed
    prometheus.DatabaseCollector._cache["at"] = float("-inf")
    assert samples(scrape(client))[("podboard_claims_total", ())] == before + 1
