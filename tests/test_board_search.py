"""The board's text search: a search matching few tasks is looked up once for the page, and it
shows exactly what the per-column filter shows."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tasks_app import board

pytestmark = pytest.mark.django_db


@pytest.fixture
def client_lead(client, lead):
    client.force_login(lead)
    return client


@pytest.fixture
def tasks(make_task):
    for i in range(30):
        make_task(f"DEV-{i:03}", title=f"Sign-in form part {i}", status="ready")
        make_task(f"QA-{i:03}", pod="QAPod", title=f"Check part {i}", status="done")
    make_task("DEV-900", title="Unrelated work", status="active")


def shown(html):
    return re.findall(r'<article class="card[^"]*"[^>]*\bid="task-([^"]+)"', html)


def test_a_sparse_search_is_looked_up_once(tasks):
    filters = board.Filters(q="part 1").with_matches()
    assert sorted(filters.matches) == sorted(
        [f"DEV-{i:03}" for i in (1, *range(10, 20))] + [f"QA-{i:03}" for i in (1, *range(10, 20))]
    )
    assert filters == board.Filters(q="part 1")
    assert filters.with_matches() is filters


def test_a_dense_search_keeps_the_per_column_filter(tasks, monkeypatch):
    monkeypatch.setattr(board, "SPARSE_MATCHES", 5)
    filters = board.Filters(q="part")
    assert filters.with_matches() is filters
    assert filters.matches is None


def test_no_text_search_looks_nothing_up(tasks):
    filters = board.Filters(task_type="build")
    with CaptureQueriesContext(connection) as queries:
        assert filters.with_matches() is filters
    assert len(queries) == 0


@pytest.mark.parametrize("q", ["part 1", "dev-02", "QA-00", "nothing like it"])
def test_both_ways_show_the_same_board(client_lead, tasks, monkeypatch, q):
    sparse = client_lead.get("/", {"q": q})
    monkeypatch.setattr(board, "SPARSE_MATCHES", 0)
    dense = client_lead.get("/", {"q": q})
    assert sparse.status_code == 200
    assert dense.status_code == 200
    assert shown(sparse.content.decode()) == shown(dense.content.decode())
    counts = re.compile(r'id="count-[^"]+">(\d+)<')
    assert counts.findall(sparse.content.decode()) == counts.findall(dense.content.decode())


def test_a_search_shows_its_matches_with_their_counts(client_lead, tasks):
    html = client_lead.get("/", {"q": "dev-02"}).content.decode()
    assert sorted(shown(html)) == [f"DEV-{i:03}" for i in range(20, 30)]
    assert re.search(r'id="count-DevPod-ready">10<', html)
    assert re.search(r'id="count-QAPod-done">0<', html)


def test_show_more_pages_through_a_sparse_search(client_lead, make_task):
    for i in range(45):
        make_task(f"DEV-{i:03}", title=f"Needle {i}")
        make_task(f"DEV-{i + 100:03}", title=f"Hay {i}")
    response = client_lead.get("/board/DevPod/ready/more/", {"q": "needle", "offset": 40})
    assert response.status_code == 200
    assert sorted(shown(response.content.decode())) == [f"DEV-{i:03}" for i in range(40, 45)]
