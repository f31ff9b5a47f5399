"""The delivery chain view: which tasks a chain holds, how it is drawn, and that it stays live."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from tasks_app import workflow
from tasks_app.insight.chains import build_chain, chain_ids
from tasks_app.models import Event, Task

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def minutes(n):
    return T0 + timedelta(minutes=n)


@pytest.fixture
def chain(make_task):
    """PROD-1 → DEV-1 (scaled out to DEV-1.2) → QA-1, which sent DEV-1.2 back (DEV-1.fix1);
    DOC-1 waits for QA-1. OTHER-1 is unrelated."""
    make_task("PROD-1", pod="ProductPod", status="done", token_count=900,
              created_at=minutes(0), completed_at=minutes(60))  # fmt: skip
    make_task("DEV-1", depends_on=["PROD-1"], handoff_from_id="PROD-1", status="done",
              token_count=15000, created_at=minutes(0), completed_at=minutes(120))  # fmt: skip
    make_task("DEV-1.2", handoff_from_id="DEV-1", scale_root="DEV-1", status="done",
              token_count=4000, created_at=minutes(120), completed_at=minutes(180))  # fmt: skip
    make_task("DEV-1.fix1", status="done", token_count=300, created_at=minutes(200),
              completed_at=minutes(220))  # fmt: skip
    make_task("QA-1", pod="QAPod", depends_on=["DEV-1.2", "DEV-1.fix1"],
              handoff_from_id="DEV-1.2", status="active", claimed_by="QAPod#1",
              created_at=minutes(0))  # fmt: skip
    make_task("DOC-1", pod="ProductPod", depends_on=["QA-1"], created_at=minutes(0))
    make_task("OTHER-1", created_at=minutes(0))

    def event(key, kind, at, **payload):
        Event.objects.create(task_id=key, task_key=key, kind=kind, created_at=at, payload=payload)

    event("DEV-1", "handoff", minutes(60), mode="sync", why="auto: DevPod under its WIP limit")
    event("DEV-1", "claimed", minutes(61))
    event("DEV-1.2", "created", minutes(120), continuation_of="DEV-1")
    event("DEV-1.2", "claimed", minutes(150))
    event("QA-1", "handoff", minutes(180), mode="async", why="async")
    event("QA-1", "claimed", minutes(190))
    event("QA-1", "handoff", minutes(220), mode="async", why="async")
    event("QA-1", "claimed", minutes(235))
    return "QA-1"


def test_the_chain_holds_everything_linked_and_nothing_else(chain):
    for start in ("QA-1", "PROD-1", "DEV-1.fix1", "DOC-1"):
        assert set(chain_ids(start)) == {
            "PROD-1",
            "DEV-1",
            "DEV-1.2",
            "DEV-1.fix1",
            "QA-1",
            "DOC-1",
        }
    assert chain_ids("OTHER-1") == ["OTHER-1"]


def test_edges_name_how_tasks_are_linked(chain):
    graph = build_chain("QA-1")
    edges = {(e.source, e.target): e.kind for e in graph.edges}
    assert edges[("PROD-1", "DEV-1")] == "baton"
    assert edges[("DEV-1", "DEV-1.2")] == "continuation"
    assert edges[("DEV-1.2", "QA-1")] == "baton"
    assert edges[("DEV-1.fix1", "QA-1")] == "rework"
    assert edges[("DEV-1.2", "DEV-1.fix1")] == "rework"  # the rework of DEV-1's latest part
    assert edges[("QA-1", "DOC-1")] == "dependency"


def test_nodes_carry_mode_tokens_and_wait(chain):
    nodes = build_chain("QA-1").nodes
    assert nodes["DEV-1"].mode == "auto→sync"
    assert nodes["DEV-1"].wait_s == 60
    assert nodes["DEV-1.2"].mode == "scale"
    assert nodes["DEV-1.2"].wait_s == 30 * 60
    assert nodes["QA-1"].mode == "async"
    assert nodes["QA-1"].wait_s == 15 * 60  # the latest baton: the rework's, to the claim
    assert nodes["DEV-1"].tokens == 15000


def test_layout_runs_left_to_right_with_a_lane_per_pod(chain):
    graph = build_chain("QA-1")
    nodes = graph.nodes
    assert nodes["PROD-1"].x < nodes["DEV-1"].x < nodes["DEV-1.2"].x < nodes["QA-1"].x
    assert nodes["QA-1"].x < nodes["DOC-1"].x
    assert [lane[0] for lane in graph.lanes] == ["ProductPod", "DevPod", "QAPod"]
    product, dev, qa = graph.lanes
    assert product[1] <= nodes["PROD-1"].y < product[1] + product[2]
    assert dev[1] <= nodes["DEV-1.2"].y < dev[1] + dev[2]
    assert qa[1] <= nodes["QA-1"].y < qa[1] + qa[2]


def test_the_critical_path_runs_back_through_the_last_finisher(chain):
    graph = build_chain("QA-1")
    critical = {n.id for n in graph.nodes.values() if n.critical}
    # DOC-1 (not done) ends last; QA-1 gates it; of QA-1's inputs the rework finished last.
    assert critical == {"DOC-1", "QA-1", "DEV-1.fix1", "DEV-1.2", "DEV-1", "PROD-1"}
    assert all(e.critical for e in graph.edges if (e.source, e.target) == ("QA-1", "DOC-1"))


def test_the_page_draws_the_graph_and_a_table(client, chain, viewer):
    client.force_login(viewer)
    response = client.get("/chains/QA-1/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<svg" in html and 'class="chain-svg"' in html
    for key in ("PROD-1", "DEV-1", "DEV-1.2", "DEV-1.fix1", "QA-1", "DOC-1"):
        assert f'id="node-{key}"' in html
        assert f'href="/tasks/{key}/"' in html
    assert "OTHER-1" not in html
    assert "auto→sync · 15.0k tok" in html
    assert "waited 15m" in html
    assert 'class="node status-active critical focus"' in html
    assert "style=" not in html  # no inline styles: the page runs under a strict CSP
    assert "<script>" not in html
    assert "js/chain.js" in html


def test_unknown_task_is_404_and_the_page_needs_a_sign_in(client, chain, viewer):
    assert client.get("/chains/QA-1/").status_code == 302
    client.force_login(viewer)
    assert client.get("/chains/NOPE-1/").status_code == 404


def test_the_detail_page_links_to_the_chain(client, chain, viewer):
    client.force_login(viewer)
    assert 'href="/chains/QA-1/"' in client.get("/tasks/QA-1/").content.decode()


def test_the_graph_fragment_answers_204_until_the_chain_changes(client, chain, lead):
    client.force_login(lead)
    page = client.get("/chains/QA-1/").content.decode()
    stamp = re.search(r'data-stamp="([0-9a-f]+)"', page).group(1)
    assert client.get(f"/chains/QA-1/graph/?stamp={stamp}").status_code == 204
    workflow.complete(task_id="QA-1", instance="QAPod#1")
    response = client.get(f"/chains/QA-1/graph/?stamp={stamp}", headers={"HX-Request": "true"})
    assert response.status_code == 200
    fragment = response.content.decode()
    assert fragment.lstrip().startswith('<div id="chain-graph"')
    assert "<html" not in fragment
    assert f'data-stamp="{stamp}"' not in fragment
    # DOC-1 was ready all along; QA-1's completion now shows done.
    assert 'class="node status-done' in fragment


def test_a_chain_of_200_tasks_renders_in_a_few_queries(client, make_task, viewer, settings):
    previous = None
    pods = ["ProductPod", "DevPod", "QAPod"]
    for i in range(200):
        key = f"C-{i:03}"
        make_task(
            key,
            pod=pods[i % 3],
            depends_on=[previous] if previous else (),
            handoff_from_id=previous,
            created_at=minutes(i),
        )
        previous = key
    graph = build_chain("C-100")
    assert len(graph.nodes) == 200
    assert graph.nodes["C-199"].rank == 199
    client.force_login(viewer)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        response = client.get("/chains/C-100/")
    assert response.status_code == 200
    assert response.content.decode().count('class="node-link"') == 200
    assert len(queries) < 20


def test_a_huge_component_is_capped(make_task):
    make_task("HUB")
    Task.objects.bulk_create(
        [
            Task(
                id=f"S-{i}",
                title="s",
                pod_owner_id=Task.objects.get(pk="HUB").pod_owner_id,
                handoff_from_id="HUB",
            )
            for i in range(450)
        ]  # fmt: skip
    )
    graph = build_chain("HUB")
    assert graph.truncated
    assert len(graph.nodes) == 400
    assert "HUB" in graph.nodes
