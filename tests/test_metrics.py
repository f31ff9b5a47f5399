"""Flow metrics: every figure of a small hand-made Event history, whose answers are known.

The history (day 0 is two days before today, all times UTC):

- PROD-1 (ProductPod, 1,000 tokens): created 08:00, claimed 08:10, completed 09:10.
- DEV-1 (DevPod, 5,000): created 08:00, a sync baton at 09:10 reserves it, claimed 09:10:30,
  scaled out at 10:50 to DEV-1.2.
- DEV-1.2 (DevPod, 3,000): created 10:50, claimed 11:00, stalls 11:20 (lease ran out), claimed
  again 11:30, completed 12:30.
- QA-1 (QAPod, review gate, 2,000): created 08:00, an async baton at 12:30, claimed 12:40, sends
  DEV-1.2 back at 12:45; the rework DEV-1.fix1 (DevPod, 400) is created 12:45, claimed 12:50,
  completed 12:55 with an async baton to QA-1, which is claimed 13:05, submitted 13:10, sent
  back by its reviewer 13:20, claimed 13:30, submitted 13:40 and approved 13:50.
- DEV-2 (DevPod): created day 0 16:00, a blocked baton day 1 08:00, claimed day 1 09:00; active.
- QA-2 (QAPod): created day 1 09:00; ready.
"""

from datetime import UTC, datetime, time, timedelta

import pytest
from django.utils import timezone

from tasks_app.insight.flow import flow_metrics
from tasks_app.models import Event, Pod, PodToken, Task

TODAY = timezone.now().astimezone(UTC).date()
DAY0 = TODAY - timedelta(days=2)


def at(hhmmss, day=0):
    h, m, *s = (int(x) for x in hhmmss.split(":"))
    base = datetime.combine(DAY0 + timedelta(days=day), time(h, m, s[0] if s else 0), tzinfo=UTC)
    return base


def event(task_id, kind, when, frm="", to="", payload=None, **fields):
    pod = Task.objects.get(pk=task_id).pod_owner.name
    payload = {**(payload or {}), **fields}
    Event.objects.create(
        task_id=task_id,
        task_key=task_id,
        kind=kind,
        created_at=when,
        from_status=frm,
        to_status=to,
        from_pod=pod,
        to_pod=pod,
        payload=payload,
    )


@pytest.fixture
def history(pods):
    qa = pods["QAPod"]
    qa.review_required = True
    qa.save()

    def task(id, pod, status, tokens=0, created="08:00", day=0, **fields):
        return Task.objects.create(
            id=id,
            title=f"Task {id}",
            pod_owner=pods[pod],
            status=status,
            token_count=tokens,
            created_at=at(created, day),
            **fields,
        )

    task("PROD-1", "ProductPod", "done", 1000)
    task("DEV-1", "DevPod", "done", 5000, handoff_from_id="PROD-1")
    task("DEV-1.2", "DevPod", "done", 3000, "10:50", scale_root="DEV-1", handoff_from_id="DEV-1")
    task("QA-1", "QAPod", "done", 2000, handoff_from_id="DEV-1.2")
    task("DEV-1.fix1", "DevPod", "done", 400, "12:45")
    task("DEV-2", "DevPod", "active", 0, "16:00")
    task("QA-2", "QAPod", "ready", 0, "09:00", day=1)
    Task.objects.get(pk="DEV-1").depends_on.add("PROD-1")
    Task.objects.get(pk="QA-1").depends_on.add("DEV-1.2", "DEV-1.fix1")

    for key in ("PROD-1", "DEV-1", "QA-1"):
        event(key, "created", at("08:00"), to="ready")
    event("PROD-1", "claimed", at("08:10"), "ready", "active")
    event("PROD-1", "completed", at("09:10"), "active", "done")
    event("DEV-1", "handoff", at("09:10"), "ready", "active", mode="sync", blocked=False)
    event("DEV-1", "claimed", at("09:10:30"), "active", "active")
    event("DEV-1", "scaled_out", at("10:50"), "active", "done", continuation="DEV-1.2")
    event("DEV-1.2", "created", at("10:50"), to="ready", continuation_of="DEV-1")
    event("DEV-1.2", "claimed", at("11:00"), "ready", "active")
    event("DEV-1.2", "lease_expired", at("11:20"), "active", "ready")
    event("DEV-1.2", "claimed", at("11:30"), "ready", "active")
    event("DEV-1.2", "completed", at("12:30"), "active", "done")
    event("QA-1", "handoff", at("12:30"), "ready", "ready", mode="async", blocked=False)
    event("QA-1", "claimed", at("12:40"), "ready", "active")
    event(
        "QA-1",
        "sent_back",
        at("12:45"),
        "active",
        "ready",
        payload={"rework": "DEV-1.fix1", "to": "DEV-1.2"},
    )
    event("DEV-1.fix1", "created", at("12:45"), to="ready")
    event("DEV-1.fix1", "claimed", at("12:50"), "ready", "active")
    event("DEV-1.fix1", "completed", at("12:55"), "active", "done")
    event("QA-1", "handoff", at("12:55"), "ready", "ready", mode="async", blocked=False)
    event("QA-1", "claimed", at("13:05"), "ready", "active")
    event("QA-1", "submitted", at("13:10"), "active", "review")
    event("QA-1", "reviewed", at("13:20"), "review", "ready", verdict="changes_requested")
    event("QA-1", "claimed", at("13:30"), "ready", "active")
    event("QA-1", "submitted", at("13:40"), "active", "review")
    event("QA-1", "reviewed", at("13:50"), "review", "done", verdict="approve")
    event("DEV-2", "created", at("16:00"), to="ready")
    event("DEV-2", "handoff", at("08:00", 1), "ready", "ready", mode="async", blocked=True)
    event("DEV-2", "claimed", at("09:00", 1), "ready", "active")
    event("QA-2", "created", at("09:00", 1), to="ready")
    return pods


def by_pod(data):
    return {p["pod"]: p for p in data["pods"]}


def test_window_runs_over_utc_days_up_to_today(history):
    data = flow_metrics(days=30)
    assert data["to"] == TODAY.isoformat()
    assert data["from"] == (TODAY - timedelta(days=29)).isoformat()
    assert [p["pod"] for p in data["pods"]] == ["ProductPod", "DevPod", "QAPod"]
    assert len(data["pods"][0]["throughput"]) == 30


def test_done_counts_completions_scale_outs_and_approvals(history):
    pods = by_pod(flow_metrics(days=7))
    assert pods["ProductPod"]["done"] == 1
    assert pods["DevPod"]["done"] == 3  # DEV-1 (scaled out), DEV-1.2, DEV-1.fix1
    assert pods["QAPod"]["done"] == 1  # approved, not the submissions


def test_throughput_is_per_utc_day(history):
    pods = by_pod(flow_metrics(days=3))
    assert pods["DevPod"]["throughput"] == [
        {"day": DAY0.isoformat(), "done": 3},
        {"day": (DAY0 + timedelta(days=1)).isoformat(), "done": 0},
        {"day": TODAY.isoformat(), "done": 0},
    ]


def test_cycle_time_runs_from_the_first_claim_to_done_or_approval(history):
    pods = by_pod(flow_metrics(days=7))
    assert pods["ProductPod"]["cycle_time_s"] == {"p50": 3600, "p85": 3600}
    # DEV-1 5,970 s, DEV-1.2 5,400 s (from its first claim), DEV-1.fix1 300 s
    assert pods["DevPod"]["cycle_time_s"] == {"p50": 5400, "p85": 5799}
    # QA-1: first claim 12:40 → approval 13:50
    assert pods["QAPod"]["cycle_time_s"] == {"p50": 4200, "p85": 4200}


def test_lead_time_runs_from_creation_to_done(history):
    pods = by_pod(flow_metrics(days=7))
    assert pods["ProductPod"]["lead_time_s"] == {"p50": 4200, "p85": 4200}
    # 10,200 s, 6,000 s, 600 s
    assert pods["DevPod"]["lead_time_s"] == {"p50": 6000, "p85": 8940}
    assert pods["QAPod"]["lead_time_s"] == {"p50": 21000, "p85": 21000}


def test_handoff_wait_runs_from_a_workable_baton_to_the_claim_by_mode(history):
    pods = by_pod(flow_metrics(days=7))
    assert pods["DevPod"]["handoff_wait_s"] == {
        "sync": {"p50": 30, "p85": 30},
        "async": {"p50": None, "p85": None},  # DEV-2's baton left it blocked
    }
    assert pods["QAPod"]["handoff_wait_s"] == {
        "sync": {"p50": None, "p85": None},
        "async": {"p50": 600, "p85": 600},  # both batons waited ten minutes
    }
    assert pods["ProductPod"]["handoff_wait_s"]["async"] == {"p50": None, "p85": None}


def test_scale_outs_stalls_rejections_and_send_backs(history):
    pods = by_pod(flow_metrics(days=7))
    dev, qa = pods["DevPod"], pods["QAPod"]
    assert (dev["scale_outs"], dev["stalls"], dev["changes_requested"]) == (1, 1, 0)
    assert dev["send_backs"] == 1  # the rework task is DevPod's
    assert (qa["scale_outs"], qa["stalls"], qa["changes_requested"], qa["send_backs"]) == (
        0,
        0,
        1,
        0,
    )
    assert dev["claims"] == 5 and qa["claims"] == 3


def test_tokens_of_the_tasks_done(history):
    pods = by_pod(flow_metrics(days=7))
    assert pods["DevPod"]["tokens"]["total"] == 8400
    assert pods["DevPod"]["tokens"]["per_task_p50"] == 3000
    assert pods["DevPod"]["tokens"]["per_chain_p50"] == 4200  # DEV-1 + DEV-1.2 = 8,000; fix 400
    assert pods["QAPod"]["tokens"] == {"total": 2000, "per_task_p50": 2000, "per_chain_p50": 2000}


def test_a_window_without_data_answers_nulls_and_zeros(history):
    pods = by_pod(flow_metrics(days=1))
    dev = pods["DevPod"]
    assert dev["done"] == 0
    assert dev["cycle_time_s"] == {"p50": None, "p85": None}
    assert dev["lead_time_s"] == {"p50": None, "p85": None}
    assert dev["tokens"] == {"total": 0, "per_task_p50": None, "per_chain_p50": None}
    assert dev["scale_outs"] == dev["stalls"] == dev["send_backs"] == 0


def test_cumulative_flow_counts_each_status_at_the_end_of_each_day(history):
    cfd = {(r["day"], r["pod"]): r for r in flow_metrics(days=4)["cfd"]}
    day = [(DAY0 + timedelta(days=i)).isoformat() for i in (-1, 0, 1, 2)]
    empty = {"ready": 0, "active": 0, "review": 0, "done": 0}

    def counts(d, pod):
        row = cfd[(d, pod)]
        return {k: row[k] for k in empty}

    assert counts(day[0], "DevPod") == empty
    assert counts(day[1], "DevPod") == {**empty, "ready": 1, "done": 3}
    assert counts(day[2], "DevPod") == {**empty, "active": 1, "done": 3}
    assert counts(day[3], "DevPod") == {**empty, "active": 1, "done": 3}
    assert counts(day[1], "QAPod") == {**empty, "done": 1}
    assert counts(day[2], "QAPod") == {**empty, "ready": 1, "done": 1}
    assert counts(day[1], "ProductPod") == {**empty, "done": 1}
    assert len(cfd) == 4 * 3


def test_a_task_still_in_review_shows_in_the_review_column(pods):
    task = Task.objects.create(
        id="QA-9", title="t", pod_owner=pods["QAPod"], status="review", created_at=at("08:00")
    )
    event(task.pk, "created", at("08:00"), to="ready")
    event(task.pk, "claimed", at("09:00"), "ready", "active")
    event(task.pk, "submitted", at("10:00"), "active", "review")
    rows = [r for r in flow_metrics(days=3)["cfd"] if r["pod"] == "QAPod"]
    assert [(r["ready"], r["active"], r["review"]) for r in rows] == [(0, 0, 1)] * 3


def test_pods_argument_limits_the_answer(history):
    data = flow_metrics(days=7, pods=["QAPod"])
    assert [p["pod"] for p in data["pods"]] == ["QAPod"]
    assert {r["pod"] for r in data["cfd"]} == {"QAPod"}


# The JSON route --------------------------------------------------------------------------------


@pytest.fixture
def token(pods):
    return PodToken.issue(pod=pods["QAPod"], label="metrics")[1]


def get(client, query="", token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get(f"/api/metrics/flow{query}", headers=headers)


def test_route_answers_the_contract_shape_for_a_pod_token(client, history, token):
    response = get(client, "?days=7", token)
    assert response.status_code == 200
    data = response.json()
    assert set(data) == {"from", "to", "pods", "cfd"}
    pod = data["pods"][1]
    assert {
        "pod",
        "done",
        "throughput",
        "cycle_time_s",
        "lead_time_s",
        "handoff_wait_s",
        "scale_outs",
        "stalls",
        "changes_requested",
        "send_backs",
        "tokens",
    } <= set(pod)
    assert set(pod["handoff_wait_s"]) == {"sync", "async"}
    assert {"total", "per_task_p50"} <= set(pod["tokens"])
    assert set(data["cfd"][0]) == {"day", "pod", "ready", "active", "review", "done"}
    assert pod["pod"] == "DevPod" and pod["cycle_time_s"] == {"p50": 5400, "p85": 5799}


def test_route_defaults_to_thirty_days(client, history, token):
    data = get(client, "", token).json()
    assert data["from"] == (TODAY - timedelta(days=29)).isoformat()
    assert data["to"] == TODAY.isoformat()


def test_route_filters_by_pod(client, history, token):
    data = get(client, "?days=7&pod=DevPod", token).json()
    assert [p["pod"] for p in data["pods"]] == ["DevPod"]
    assert data["pods"][0]["done"] == 3
    assert {r["pod"] for r in data["cfd"]} == {"DevPod"}


@pytest.mark.parametrize("days", ["0", "366", "-1", "many"])
def test_days_outside_1_to_365_is_422(client, pods, token, days):
    response = get(client, f"?days={days}", token)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


@pytest.mark.parametrize("days", ["1", "365"])
def test_days_at_the_bounds_is_fine(client, pods, token, days):
    assert get(client, f"?days={days}", token).status_code == 200


def test_an_unknown_pod_is_404_not_found(client, pods, token):
    response = get(client, "?pod=NoSuchPod", token)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_no_token_is_401(client, pods):
    response = get(client)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


def test_a_bad_token_is_401_even_with_a_session(client, pods, lead):
    client.force_login(lead)
    response = get(client, "", "pb_not-a-token")
    assert response.status_code == 401


def test_a_signed_in_person_may_read_it_without_a_token(client, pods, viewer):
    client.force_login(viewer)
    assert get(client).status_code == 200


def test_the_route_is_in_the_openapi_document_with_the_one_bearer_scheme(client):
    document = client.get("/api/openapi.json").json()
    operation = document["paths"]["/api/metrics/flow"]["get"]
    assert operation["operationId"] == "flowMetrics"
    assert len(document["components"]["securitySchemes"]) == 1


def test_metrics_are_computed_in_a_constant_number_of_queries(
    history, django_assert_max_num_queries
):
    with django_assert_max_num_queries(12):
        flow_metrics(days=30)


# The page --------------------------------------------------------------------------------------


def test_the_page_needs_a_sign_in(client, pods):
    response = client.get("/metrics/")
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_the_page_shows_each_chart_with_its_table(client, history, viewer):
    client.force_login(viewer)
    response = client.get("/metrics/?days=7")
    assert response.status_code == 200
    html = response.content.decode()
    for canvas in ("chart-throughput", "chart-times"):
        assert f'id="{canvas}"' in html
    assert 'class="cfd-canvas"' in html
    assert "vendor/chartjs/chart.umd.min.js" in html
    assert 'id="metrics-data"' in html
    # the per-pod table, readable without JavaScript: DevPod's cycle p50 / p85
    assert "1:30:00 / 1:36:39" in html
    assert f"/metrics/done/?pod=DevPod&amp;day={DAY0.isoformat()}" in html
    assert "<script>" not in html  # no inline script: the page runs under a strict CSP


def test_the_page_can_show_chosen_pods(client, history, viewer):
    client.force_login(viewer)
    html = client.get("/metrics/?days=7&pod=QAPod").content.decode()
    assert '<th scope="row">QAPod</th>' in html
    assert '<th scope="row">DevPod</th>' not in html


def test_a_bar_links_to_the_tasks_behind_it(client, history, viewer):
    client.force_login(viewer)
    response = client.get(f"/metrics/done/?pod=DevPod&day={DAY0.isoformat()}")
    assert response.status_code == 200
    html = response.content.decode()
    for key in ("DEV-1", "DEV-1.2", "DEV-1.fix1"):
        assert f'href="/tasks/{key}/"' in html
    assert "QA-1" not in html


def test_the_board_header_links_to_the_metrics(client, pods, viewer):
    client.force_login(viewer)
    assert 'href="/metrics/"' in client.get("/").content.decode()


@pytest.mark.parametrize("name", ["ProductPod"])
def test_pods_stay_in_board_order(history, name):
    Pod.objects.filter(name=name).update(order=99)
    assert [p["pod"] for p in flow_metrics(days=7)["pods"]][-1] == name


def test_a_baton_that_waited_longer_than_the_lookback_still_counts(pods):
    now = datetime.combine(TODAY, time(6, 0), tzinfo=UTC)
    Task.objects.create(id="OLD-1", title="t", pod_owner=pods["QAPod"], status="active")
    Task.objects.create(id="OLD-2", title="t", pod_owner=pods["QAPod"], status="active")
    event("OLD-1", "handoff", now - timedelta(days=40), "ready", "ready", mode="async")
    event("OLD-1", "claimed", now, "ready", "active")
    # OLD-2 was claimed after its baton, released, and claimed again: only the first waited.
    event("OLD-2", "handoff", now - timedelta(days=50), "ready", "ready", mode="sync")
    event("OLD-2", "claimed", now - timedelta(days=45), "ready", "active")
    event("OLD-2", "claimed", now, "ready", "active")
    waits = by_pod(flow_metrics(days=7))["QAPod"]["handoff_wait_s"]
    assert waits["async"] == {"p50": 40 * 86400, "p85": 40 * 86400}
    assert waits["sync"] == {"p50": None, "p85": None}


def test_imported_tasks_enter_the_cumulative_flow_on_their_import_day(pods):
    """An ``imported`` Event names no status: the task enters with the state it had next."""
    Task.objects.create(id="IMP-1", title="t", pod_owner=pods["DevPod"], status="active")
    Task.objects.create(id="IMP-2", title="t", pod_owner=pods["DevPod"], status="done")
    event("IMP-1", "imported", at("08:00"), created=True)
    event("IMP-1", "claimed", at("09:00", 1), "ready", "active")
    event("IMP-2", "imported", at("08:00", 1), created=True)
    rows = [r for r in flow_metrics(days=4)["cfd"] if r["pod"] == "DevPod"]
    assert [(r["ready"], r["active"], r["done"]) for r in rows] == [
        (0, 0, 0),
        (1, 0, 0),
        (0, 1, 1),
        (0, 1, 1),
    ]
