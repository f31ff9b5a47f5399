"""The pod simulator: it works the real pod API and moves cards the way the demo promises."""

from datetime import timedelta

import httpx
import pytest
from django.core import signals
from django.core.management import call_command
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from django.utils import timezone

from tasks_app import workflow
from tasks_app.models import Event, HandoffNote, PodToken, Task
from tasks_app.simulator import Chances, PodApi, Simulator, VirtualClock


@pytest.fixture
def http():
    """An httpx client that calls Django in this thread, inside the test's transaction."""
    # Like Django's test client: a request must not close the test's database connection.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    client = httpx.Client(
        transport=httpx.WSGITransport(app=get_wsgi_application()), base_url="http://testserver"
    )
    yield client
    client.close()
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def simulate(http, pod_tokens, *, seed=7, actions=400, **options):
    simulator = Simulator(
        PodApi(http, pod_tokens), seed=seed, clock=VirtualClock(), speed=0, **options
    )
    simulator.run(max_actions=actions)
    return simulator


def test_simulated_pods_move_cards_through_the_chain(http, pod_tokens):
    simulator = simulate(http, pod_tokens)
    stats = simulator.stats

    assert stats.filed >= 3, stats.line()
    assert stats.completed >= 10, stats.line()
    done = Task.objects.filter(status="done")
    assert {t.pod_owner.name for t in done} == {"ProductPod", "DevPod", "QAPod"}
    # Completions carry what a pod reports: outputs, a trace, thoughts, tokens.
    qa = done.filter(pod_owner__name="QAPod", scale_root="").first()
    assert qa.outputs and qa.reasoning_summary and qa.token_count > 0
    assert qa.trace_steps.exists() and qa.thoughts.exists()
    assert HandoffNote.objects.filter(reason="completed").exclude(to_task=None).exists()
    assert Event.objects.filter(kind="completed").count() == stats.completed


def test_simulated_pods_scale_out_hand_off_and_stall(http, pod_tokens):
    stats = simulate(http, pod_tokens).stats

    assert stats.scaled_out >= 1 and stats.stalled >= 1, stats.line()
    assert stats.sync_handoffs + stats.auto_handoffs >= 1, stats.line()
    continuation = Task.objects.exclude(scale_root="").first()
    note = HandoffNote.objects.get(to_task=continuation, handoff_type="scale")
    # It scaled out when the server advised it: at 90 % of the pod's 15,000-token limit.
    assert note.reason == "capacity_reached" and note.token_count >= 13_500
    assert Event.objects.filter(kind="traced", payload__token_count__gte=13_500).exists()
    assert Event.objects.filter(kind="handoff").exists()

    # A stalled instance stopped heartbeating: its task keeps a dead claim until expiry.
    stalled = Task.objects.filter(status="active").exclude(claimed_by="")
    assert stalled.exists()
    later = timezone.now() + timedelta(hours=1)
    assert workflow.expire_leases(now=later) >= 1
    assert HandoffNote.objects.filter(reason="stalled").exists()


def test_a_pod_whose_queue_runs_dry_files_new_work(http, pod_tokens):
    simulator = simulate(http, pod_tokens, actions=5, instances=1)
    filed = Task.objects.filter(pk__startswith="PROD-")
    assert filed.exists()
    chain = Task.objects.get(pk=filed.first().pk.replace("PROD-", "DEV-"))
    assert list(chain.depends_on.values_list("pk", flat=True)) == [filed.first().pk]
    assert any("filed" in line for line in simulator.transcript)


def test_filed_chain_numbers_skip_ids_that_are_taken(http, pod_tokens, make_task):
    for n in range(1000, 1006):
        make_task(f"PROD-{n}", pod="ProductPod", status="done")
    simulate(http, pod_tokens, actions=3, instances=1, pods=["ProductPod"])
    assert Task.objects.filter(pk="PROD-1006").exists()


def test_same_seed_gives_the_same_run(http, pod_tokens):
    def transcript(seed):
        with transaction.atomic():
            lines = simulate(http, pod_tokens, seed=seed, actions=120).transcript
            transaction.set_rollback(True)
        return lines

    first, second, other = transcript(3), transcript(3), transcript(4)
    assert first == second
    assert first != other


def test_simulator_drops_a_task_it_lost_and_keeps_going(http, pod_tokens, make_task):
    make_task("DEV-1", priority=5)
    simulator = Simulator(
        PodApi(http, pod_tokens),
        pods=["DevPod"],
        instances=1,
        seed=1,
        clock=VirtualClock(),
        speed=0,
        chances=Chances(0, 0, 0),
    )
    simulator.run(max_actions=1)  # pulled DEV-1
    assert Task.objects.get(pk="DEV-1").claimed_by == "DevPod#1"
    workflow.move(task_id="DEV-1", actor="lead", to_status="ready")  # a human takes it back
    workflow.move(task_id="DEV-1", actor="lead", to_pod="QAPod")
    simulator.run(max_actions=3)
    assert simulator.stats.lost == 1
    assert any("lost DEV-1" in line for line in simulator.transcript)


@pytest.mark.django_db(transaction=True)
def test_simulate_pods_command_works_a_live_server(live_server, pods, capsys):
    call_command("simulate_pods", url=live_server.url, seed=5, speed=0, max_actions=40, instances=1)
    out = capsys.readouterr().out
    assert "pulled" in out and "completed" in out
    assert Event.objects.filter(kind="completed").exists()
    # The tokens it issued for itself are revoked when it stops.
    assert PodToken.objects.count() == 3
    assert not PodToken.objects.filter(revoked_at=None).exists()


def test_simulated_pods_pass_next_steps_on(http, pod_tokens):
    simulate(http, pod_tokens)
    done = Task.objects.filter(status="done", pod_owner__name="ProductPod").exclude(next_steps=[])
    assert done.exists()
    assert done.first().next_steps == [
        "Start from the acceptance criteria",
        "Keep the change small",
    ]
