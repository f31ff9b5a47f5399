"""Webhooks to pods: the outbox written with the change, signed sends, retries, the worker.

The live tests run a real HTTP receiver in this process and the delivery worker as its own
process (``manage.py deliver_webhooks``) on the test database, as in production.
"""

import json
import os
import signal
import subprocess
import time
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from tasks_app import workflow
from tasks_app.models import DeliveryAttempt, Event, Pod, Task, WebhookDelivery
from tasks_app.push import signing, worker
from tasks_app.push.pods import set_webhook
from tasks_app.push.urls import check_url
from tests.support.receiver import Receiver
from tests.support.servers import PYTHON, ROOT, stop_process
from tests.support.testdb import env_on_test_database

FAST = {
    "PODBOARD_WEBHOOK_POLL_SECONDS": "0.1",
    "PODBOARD_WEBHOOK_BACKOFF_SECONDS": "0.2",
}


def hook(pod_name, url="http://127.0.0.1:9/hook"):
    pod = Pod.objects.get(name=pod_name)
    return set_webhook(pod, url)


def kinds():
    return sorted(WebhookDelivery.objects.values_list("kind", "task_key", "pod__name"))


# Which changes write a delivery -----------------------------------------------------------------


def test_a_sync_handoff_writes_task_reserved_for_the_successors_pod(make_task):
    hook("DevPod")
    make_task("PROD-1", pod="ProductPod", status="active", handoff_mode="sync")
    make_task("DEV-1", depends_on=["PROD-1"], handoff_from_id="PROD-1")

    workflow.complete(task_id="PROD-1", actor="lead")

    delivery = WebhookDelivery.objects.get()
    assert (delivery.kind, delivery.task_key, delivery.pod.name) == (
        "task.reserved", "DEV-1", "DevPod",
    )  # fmt: skip
    event = Event.objects.get(kind="handoff", task_id="DEV-1")
    assert delivery.payload == {
        "type": "task.reserved",
        "task_id": "DEV-1",
        "pod": "DevPod",
        "event_id": event.id,
        "at": delivery.payload["at"],
    }
    assert delivery.payload["at"].endswith("Z")
    assert delivery.webhook_id.startswith("msg_") and delivery.state == "pending"


def test_an_async_handoff_and_a_continuation_write_task_ready(make_task):
    hook("DevPod")
    hook("QAPod")
    make_task("DEV-1", status="active", handoff_mode="async")
    make_task("QA-1", pod="QAPod", depends_on=["DEV-1"])
    make_task("DEV-2", status="active")

    workflow.complete(task_id="DEV-1", actor="lead")
    workflow.scale_out(task_id="DEV-2", actor="lead")

    assert kinds() == [("task.ready", "DEV-2.2", "DevPod"), ("task.ready", "QA-1", "QAPod")]


def test_a_successor_still_blocked_gets_nothing(make_task):
    hook("QAPod")
    make_task("DEV-1", status="active")
    make_task("DEV-2")
    make_task("QA-1", pod="QAPod", depends_on=["DEV-1", "DEV-2"])
    workflow.complete(task_id="DEV-1", actor="lead")
    assert not WebhookDelivery.objects.exists()


def test_lease_expiry_a_move_to_ready_and_a_new_task_write_task_ready(make_task, pods):
    hook("DevPod")
    hook("QAPod")
    make_task("DEV-1", status="active", claimed_by="DevPod#1",
              lease_expires_at=timezone.now() - timezone.timedelta(seconds=5))  # fmt: skip
    make_task("DEV-2", status="done")
    make_task("DEV-BLOCKED", status="active")
    workflow.expire_leases()
    workflow.move(task_id="DEV-2", actor="lead", to_status="ready", to_pod="QAPod")
    workflow.create_task(id="DEV-3", title="New", pod_owner=pods["DevPod"])
    workflow.create_task(
        id="DEV-4", title="Waits", pod_owner=pods["DevPod"], depends_on=["DEV-BLOCKED"]
    )
    assert kinds() == [
        ("task.ready", "DEV-1", "DevPod"),
        ("task.ready", "DEV-2", "QAPod"),
        ("task.ready", "DEV-3", "DevPod"),
    ]


def test_a_human_activation_reserves_the_task_for_its_pod(make_task):
    hook("DevPod")
    make_task("DEV-1")
    workflow.move(task_id="DEV-1", actor="lead", to_status="active")
    assert kinds() == [("task.reserved", "DEV-1", "DevPod")]


def test_pods_without_a_webhook_get_no_rows(make_task):
    make_task("PROD-1", pod="ProductPod", status="active", handoff_mode="sync")
    make_task("DEV-1", depends_on=["PROD-1"])
    workflow.complete(task_id="PROD-1", actor="lead")
    assert not WebhookDelivery.objects.exists()


def test_claims_and_traces_pay_no_query_for_webhooks(make_task, pods):
    hook("DevPod")
    make_task("DEV-1")
    with CaptureQueriesContext(connection) as queries:
        workflow.claim_next(pod=pods["DevPod"], instance="DevPod#1")
        workflow.trace(task_id="DEV-1", instance="DevPod#1", token_count=10)
    outbox = [
        q for q in queries if "webhookdelivery" in q["sql"] or "webhook_url\" = ''" in q["sql"]
    ]
    assert not outbox


def test_the_delivery_rolls_back_with_the_change(make_task):
    hook("DevPod")
    make_task("PROD-1", pod="ProductPod", status="active", handoff_mode="sync")
    make_task("DEV-1", depends_on=["PROD-1"])
    with pytest.raises(RuntimeError), transaction.atomic():
        workflow.complete(task_id="PROD-1", actor="lead")
        assert WebhookDelivery.objects.count() == 1
        raise RuntimeError("the request fails after the rule")
    assert not WebhookDelivery.objects.exists()
    assert Task.objects.get(pk="DEV-1").status == "ready"


# Signing, URLs, backoff --------------------------------------------------------------------------


def test_signatures_verify_with_standardwebhooks():
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    body = json.dumps({"type": "task.ready", "task_id": "DEV-1"})
    headers = signing.headers_for(secret, "msg_1", body)
    assert Webhook(secret).verify(body, headers) == {"type": "task.ready", "task_id": "DEV-1"}
    with pytest.raises(Exception, match="signature"):
        Webhook(signing.new_secret()).verify(body, headers)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "javascript:alert(1)",
        "http://",
        "http://user:pw@example.com/hook",
        "http://127.0.0.1:8000/api/hook",  # PodBoard's own origin (PODBOARD_PUBLIC_URL)
        "http://localhost:8000/hook",
    ],
)
def test_bad_or_self_pointing_urls_are_refused(url):
    with pytest.raises(ValidationError):
        check_url(url)


def test_private_receivers_are_allowed_unless_switched_off(settings):
    check_url("http://127.0.0.1:9100/hook")
    check_url("http://10.1.2.3/hook")
    settings.PODBOARD_WEBHOOK_ALLOW_PRIVATE = False
    for url in ("http://127.0.0.1:9100/hook", "http://10.1.2.3/hook", "http://localhost:1/h"):
        with pytest.raises(ValidationError, match="PODBOARD_WEBHOOK_ALLOW_PRIVATE"):
            check_url(url, resolve=True)
    check_url("https://93.184.215.14/hook", resolve=True)


def test_backoff_doubles_with_jitter_to_at_most_an_hour(settings):
    settings.PODBOARD_WEBHOOK_BACKOFF_SECONDS = 5
    for attempts, full in [(1, 5), (2, 10), (3, 20), (10, 2560), (20, 3600)]:
        for _ in range(20):
            assert full / 2 <= worker.backoff(attempts) <= full


def test_retries_last_at_least_an_hour_then_the_delivery_fails(make_task, settings):
    hook("DevPod")
    make_task("DEV-1")
    workflow.move(task_id="DEV-1", actor="lead", to_status="active")
    delivery = WebhookDelivery.objects.select_related("pod").get()
    assert worker.record(delivery, 500, "HTTP 500", 3) == "pending"
    delivery.refresh_from_db()
    assert delivery.next_attempt_at > timezone.now()
    assert settings.PODBOARD_WEBHOOK_RETRY_HOURS >= 1
    later = delivery.created_at + timezone.timedelta(hours=settings.PODBOARD_WEBHOOK_RETRY_HOURS)
    assert worker.record(delivery, None, "timed out", 10_000, now=later) == "failed"
    assert list(DeliveryAttempt.objects.values_list("status_code", "error")) == [
        (500, "HTTP 500"),
        (None, "timed out"),
    ]


# Commands --------------------------------------------------------------------------------------


def test_create_pod_webhook_prints_the_secret_once(pods):
    out, err = StringIO(), StringIO()
    call_command(
        "create_pod_webhook", "DevPod", "http://127.0.0.1:9100/hook", stdout=out, stderr=err
    )
    secret = out.getvalue().strip()
    pod = Pod.objects.get(name="DevPod")
    assert secret.startswith("whsec_") and pod.webhook_secret == secret
    assert pod.webhook_url == "http://127.0.0.1:9100/hook"
    assert "shown once" in err.getvalue()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["NoPod", "http://127.0.0.1:9/h"], "No pod named"),
        (["DevPod", "ftp://x/h"], "http:// or https://"),
        (["DevPod", "http://127.0.0.1:8000/h"], "PodBoard itself"),
    ],
)
def test_create_pod_webhook_refuses_bad_input(pods, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("create_pod_webhook", *args, stdout=StringIO(), stderr=StringIO())


# Admin and the task page -----------------------------------------------------------------------


def test_admin_shows_a_new_secret_once_and_refuses_a_bad_url(client, staff, pods):
    client.force_login(staff)
    pod = pods["DevPod"]
    url = f"/admin/tasks_app/pod/{pod.pk}/change/"
    form = {
        "name": "DevPod", "description": "", "order": 1, "context_limit": 12000,
        "webhook_url": "file:///etc/passwd", "tokens-TOTAL_FORMS": 0,
        "tokens-INITIAL_FORMS": 0, "tokens-MIN_NUM_FORMS": 0, "tokens-MAX_NUM_FORMS": 1000,
    }  # fmt: skip
    response = client.post(url, form)
    assert response.status_code == 200
    assert b"http:// or https://" in response.content or b"Enter a valid URL" in response.content
    form["webhook_url"] = "http://127.0.0.1:9100/hook"
    response = client.post(url, form)
    pod.refresh_from_db()
    assert response.status_code == 200
    assert pod.webhook_secret.startswith("whsec_")
    assert pod.webhook_secret.encode() in response.content
    assert pod.context_limit == 12000
    page = client.get(url)
    assert pod.webhook_secret.encode() not in page.content
    assert b"Deliveries and attempts" in page.content


def test_admin_lists_deliveries_and_sends_one_again(client, staff, make_task):
    hook("DevPod")
    make_task("DEV-1")
    workflow.move(task_id="DEV-1", actor="lead", to_status="active")
    delivery = WebhookDelivery.objects.select_related("pod").get()
    worker.record(delivery, 500, "HTTP 500: boom", 12)
    WebhookDelivery.objects.update(state="failed")
    client.force_login(staff)
    assert client.get("/admin/tasks_app/webhookdelivery/").status_code == 200
    page = client.get(f"/admin/tasks_app/webhookdelivery/{delivery.pk}/change/")
    assert b"HTTP 500: boom" in page.content
    client.post(
        "/admin/tasks_app/webhookdelivery/",
        {"action": "send_again", "_selected_action": [delivery.pk]},
    )
    delivery.refresh_from_db()
    assert delivery.state == "pending" and delivery.next_attempt_at <= timezone.now()


def test_the_task_page_shows_each_delivery_attempt(client, lead, make_task):
    hook("DevPod")
    make_task("DEV-1")
    workflow.move(task_id="DEV-1", actor="lead", to_status="active")
    delivery = WebhookDelivery.objects.select_related("pod").get()
    worker.record(delivery, None, "No answer within 10 s.", 10_000)
    client.force_login(lead)
    page = client.get("/tasks/DEV-1/").content.decode()
    assert "Webhook deliveries" in page and "task.reserved" in page
    assert "No answer within 10 s." in page


# The worker against a real receiver --------------------------------------------------------------


def worker_env(**extra):
    """The environment of a worker process on this test's database."""
    return env_on_test_database(**{**FAST, **extra})


class WorkerProcess:
    def __init__(self, env, log_path):
        self.env, self.log_path, self.process = env, log_path, None

    def start(self):
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            [PYTHON, "manage.py", "deliver_webhooks", "--concurrency", "4"],
            cwd=ROOT, env=self.env, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while b"Delivering webhooks" not in self.log_path.read_bytes():
            assert self.process.poll() is None, self.log_path.read_text()
            assert time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.05)
        return self

    def kill(self):
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self):
        stop_process(self.process)


@pytest.fixture
def start_worker(tmp_path):
    started = []

    def start(**extra):
        process = WorkerProcess(worker_env(**extra), tmp_path / f"worker-{len(started)}.log")
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


@pytest.mark.django_db(transaction=True)
def test_receiver_gets_task_reserved_within_a_second_and_retries_after_500s(
    pods, make_task, start_worker
):
    with Receiver(answers=[500, 500, 200]) as receiver:
        secret = hook("DevPod", receiver.url)
        make_task("PROD-1", pod="ProductPod", status="active", handoff_mode="sync")
        make_task("DEV-1", depends_on=["PROD-1"], handoff_from_id="PROD-1")
        start_worker()

        committed = time.monotonic()
        workflow.complete(task_id="PROD-1", actor="lead")

        first, second, third = receiver.wait_for(3, timeout=10)
        assert first[0] - committed < 1.0
        for _at, headers, body in (first, second, third):
            payload = Webhook(secret).verify(body, headers)
            assert payload["type"] == "task.reserved" and payload["task_id"] == "DEV-1"
        # One delivery: every retry carries the same webhook-id.
        assert {r[1]["webhook-id"] for r in (first, second, third)} == {
            WebhookDelivery.objects.get().webhook_id
        }
        deadline = time.monotonic() + 5
        while WebhookDelivery.objects.get().state != "delivered":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    attempts = list(DeliveryAttempt.objects.order_by("at").values_list("status_code", flat=True))
    assert attempts == [500, 500, 200]


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_delivery_loses_nothing(pods, make_task, start_worker):
    with Receiver(answers=["hang", 200]) as receiver:
        hook("DevPod", receiver.url)
        make_task("DEV-1")
        killed = start_worker(PODBOARD_WEBHOOK_CLAIM_SECONDS="2")
        workflow.move(task_id="DEV-1", actor="lead", to_status="active")
        receiver.wait_for(1)
        killed.kill()  # SIGKILL while the receiver holds the request
        assert WebhookDelivery.objects.get().state == "pending"

        start_worker(PODBOARD_WEBHOOK_CLAIM_SECONDS="2")
        requests = receiver.wait_for(2, timeout=15)
        assert requests[0][1]["webhook-id"] == requests[1][1]["webhook-id"]
        deadline = time.monotonic() + 5
        while WebhookDelivery.objects.get().state != "delivered":
            assert time.monotonic() < deadline
            time.sleep(0.05)


@pytest.mark.django_db(transaction=True)
def test_hanging_and_dropping_receivers_are_retried_and_logged(pods, make_task, settings):
    settings.PODBOARD_WEBHOOK_TIMEOUT = 0.5
    settings.PODBOARD_WEBHOOK_BACKOFF_SECONDS = 0.05
    with Receiver(answers=["hang", "drop", 204]) as receiver:
        hook("DevPod", receiver.url)
        make_task("DEV-1")
        started = time.monotonic()
        workflow.move(task_id="DEV-1", actor="lead", to_status="active")
        assert time.monotonic() - started < 0.5  # the rule never waits for a receiver
        run = worker.Worker(concurrency=2)
        deadline = time.monotonic() + 10
        while WebhookDelivery.objects.get().state != "delivered":
            assert time.monotonic() < deadline
            run.run(once=True)
            time.sleep(0.05)
    errors = list(DeliveryAttempt.objects.order_by("at").values_list("status_code", "error"))
    assert errors[0] == (None, "No answer within 0.5 s.")
    assert errors[1][0] is None and errors[1][1]
    assert errors[2] == (204, "")


@pytest.mark.django_db(transaction=True)
def test_two_workers_never_send_the_same_delivery_twice(pods, make_task):
    with Receiver(answers=[200]) as receiver:
        hook("DevPod", receiver.url)
        for n in range(30):
            make_task(f"DEV-{n}")
            workflow.move(task_id=f"DEV-{n}", actor="lead", to_status="active")
        import threading

        threads = [threading.Thread(target=worker.Worker(concurrency=4).run, kwargs={"once": True})
                   for _ in range(2)]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        ids = [r[1]["webhook-id"] for r in receiver.requests]
    assert len(ids) == len(set(ids)) == 30
    assert WebhookDelivery.objects.filter(state="delivered").count() == 30


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_with_redis_a_worker_is_woken_at_once_not_at_its_next_poll(
    pods, make_task, start_worker, redis_url
):
    with Receiver(answers=[200]) as receiver:
        hook("DevPod", receiver.url)
        make_task("DEV-1")
        start_worker(PODBOARD_WEBHOOK_POLL_SECONDS="10", redis_url=redis_url)
        time.sleep(1.0)  # the worker joined its wake-up group
        committed = time.monotonic()
        workflow.move(task_id="DEV-1", actor="lead", to_status="active")
        (first,) = receiver.wait_for(1, timeout=15)
    assert first[0] - committed < 1.0


def test_review_decisions_and_answers_map_to_their_kinds(db):
    from tasks_app.models import Event
    from tasks_app.push.workable import workable

    def event(kind, task, to_status="", **payload):
        e = Event(kind=kind, task_key=task, from_pod="DevPod", to_pod="DevPod",
                  from_status="review", to_status=to_status, payload=payload)  # fmt: skip
        e.id = 1
        return e

    items, _wake = workable(
        [
            event("reviewed", "DEV-1", "ready", verdict="changes_requested"),
            event("reviewed", "DEV-2", "done", verdict="approve"),
            event("answered", "DEV-3"),
        ]
    )
    assert sorted((i.kind, i.task_id, i.claimable) for i in items) == [
        ("task.answered", "DEV-3", False),
        ("task.review_decided", "DEV-1", True),
        ("task.review_decided", "DEV-2", False),
    ]
