"""``prepared`` queries answer exactly what their querysets answer, with each call's values."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Case, F, IntegerField, Value, When
from django.db.models.functions import Coalesce

from tasks_app.models import Pod, Status, Task
from tasks_app.prepared import prepared, prepared_update

pytestmark = pytest.mark.django_db


@prepared(pod=int, status=str)
def _tasks_in(pod, status):
    return Task.objects.filter(pod_owner_id=pod, status=status).order_by("id")


@prepared(pod=int, title=str)
def _title_first(pod, title):
    first = Case(When(title=title, then=Value(0)), default=Value(1), output_field=IntegerField())
    return (
        Task.objects.filter(pod_owner_id=pod)
        .select_related("pod_owner")
        .order_by(first, "-priority", "id")
        .values_list("id", "pod_owner__name")[:2]
    )


@prepared(task=str)
def _with_pod(task):
    return Task.objects.select_related("pod_owner").filter(pk=task)[:1]


def test_a_prepared_query_returns_what_its_queryset_returns_for_each_calls_values(make_task, pods):
    make_task("DEV-2", pod="DevPod", status=Status.READY, priority=1, title="b")
    make_task("DEV-1", pod="DevPod", status=Status.ACTIVE, priority=3, title="a")
    make_task("DEV-3", pod="DevPod", status=Status.READY, priority=2, title="c")
    make_task("QA-1", pod="QAPod", status=Status.READY)
    dev, qa = pods["DevPod"].pk, pods["QAPod"].pk

    ready = _tasks_in(pod=dev, status=Status.READY)
    assert [t.pk for t in ready] == ["DEV-2", "DEV-3"]
    assert all(isinstance(t, Task) and t.inputs == {} for t in ready)
    assert [t.pk for t in _tasks_in(pod=dev, status=Status.ACTIVE)] == ["DEV-1"]
    assert [t.pk for t in _tasks_in(pod=qa, status=Status.READY)] == ["QA-1"]
    assert _tasks_in(pod=qa, status=Status.DONE) == []

    # A parameter that appears twice (the filter and the CASE) takes the new value in both.
    assert _title_first(pod=dev, title="b") == [("DEV-2", "DevPod"), ("DEV-1", "DevPod")]
    assert _title_first(pod=dev, title="c") == [("DEV-3", "DevPod"), ("DEV-1", "DevPod")]


def test_select_related_and_converters_come_back_as_the_orm_builds_them(make_task):
    made = make_task("DEV-9", pod="DevPod", status=Status.ACTIVE)
    (task,) = _with_pod(task="DEV-9")
    assert task.pod_owner.name == "DevPod"
    assert task.created_at == Task.objects.get(pk="DEV-9").created_at == made.created_at
    assert task.created_at.tzinfo is not None
    assert _with_pod(task="DEV-404") == []


def test_wrong_arguments_are_refused():
    with pytest.raises(TypeError, match=r"takes \['pod', 'status'\]"):
        _tasks_in(pod=1)


def test_an_argument_that_does_not_reach_the_sql_as_a_parameter_is_refused():
    @prepared(name=str)
    def _ignores_name(name):
        return Pod.objects.all()

    with pytest.raises(ImproperlyConfigured, match=r"\['name'\] must reach the SQL"):
        _ignores_name(name="DevPod")


def test_only_int_and_str_arguments_may_be_declared():
    @prepared(when=float)
    def _by_float(when):
        return Pod.objects.filter(wip_limit=when)

    with pytest.raises(ImproperlyConfigured, match="must be int, str or datetime"):
        _by_float(when=1.5)


@prepared_update(task=str, status=str, when=datetime)
def _set_status(task, status, when):
    return Task.objects.filter(pk=task, claimed_by=""), {
        "status": status,
        "updated_at": when,
        "version": F("version") + 1,
        "started_at": Coalesce(F("started_at"), Value(when)),
    }


def test_a_prepared_update_changes_what_the_queryset_update_would_and_counts_rows(make_task):
    make_task("DEV-1", status=Status.READY)
    make_task("DEV-2", status=Status.READY, claimed_by="DevPod#1")
    first = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)

    assert _set_status(task="DEV-1", status=Status.ACTIVE, when=first) == 1
    assert _set_status(task="DEV-2", status=Status.ACTIVE, when=first) == 0  # held: no row
    assert _set_status(task="DEV-404", status=Status.ACTIVE, when=first) == 0

    one, two = Task.objects.get(pk="DEV-1"), Task.objects.get(pk="DEV-2")
    assert (one.status, one.updated_at, one.started_at) == (Status.ACTIVE, first, first)
    assert one.version == two.version + 1
    assert (two.status, two.started_at) == (Status.READY, None)

    later = first + timedelta(hours=2)
    assert _set_status(task="DEV-1", status=Status.DONE, when=later) == 1
    one = Task.objects.get(pk="DEV-1")
    assert (one.status, one.updated_at, one.started_at) == (Status.DONE, later, first)


def test_neighbours_reads_dependency_states_and_successors_in_one_query(
    make_task, django_assert_num_queries
):
    from tasks_app.graph import dependency_states, neighbours, successor_ids

    make_task("PROD-1", pod="ProductPod", status=Status.DONE)
    make_task("PROD-2", pod="ProductPod", status=Status.ACTIVE)
    make_task("DEV-1", depends_on=["PROD-2", "PROD-1"], status=Status.ACTIVE)
    make_task("QA-1", pod="QAPod", depends_on=["DEV-1"])
    make_task("QA-2", pod="QAPod", handoff_from_id="DEV-1")
    make_task("QA-3", pod="QAPod", depends_on=["DEV-1"], handoff_from_id="DEV-1")
    make_task("QA-4", pod="QAPod", depends_on=["PROD-1"])

    with django_assert_num_queries(1):
        dependencies, successors = neighbours("DEV-1")
    assert dependencies == [("PROD-1", "done"), ("PROD-2", "active")]
    assert successors == {"QA-1", "QA-2", "QA-3"}
    assert (dependencies, successors) == (dependency_states("DEV-1"), successor_ids("DEV-1"))
    assert neighbours("PROD-1") == ([], {"DEV-1", "QA-4"})
    assert neighbours("QA-404") == ([], set())


def test_insert_row_writes_what_save_writes_and_sets_the_primary_key(make_task):
    from tasks_app.models import Event, HandoffNote
    from tasks_app.prepared import insert_row

    make_task("DEV-1", status=Status.DONE)
    at = datetime(2026, 5, 1, 12, 30, tzinfo=UTC)
    written = insert_row(
        Event(
            task_id="DEV-1",
            task_key="DEV-1",
            kind="completed",
            actor="DevPod#1",
            from_status="active",
            to_status="done",
            payload={"successors": [{"id": "QA-1", "mode": "sync"}], "note": None},
            created_at=at,
        )
    )
    again = insert_row(Event(task_key="DEV-404", kind="deleted", payload={}))
    assert isinstance(written.pk, int) and again.pk == written.pk + 1
    assert not written._state.adding
    stored = Event.objects.get(pk=written.pk)
    assert (stored.task_id, stored.kind, stored.actor, stored.created_at) == (
        "DEV-1",
        "completed",
        "DevPod#1",
        at,
    )
    assert stored.payload == {"successors": [{"id": "QA-1", "mode": "sync"}], "note": None}
    assert Event.objects.get(pk=again.pk).task_id is None

    note = insert_row(HandoffNote(from_task_id="DEV-1", note="Read the spec.", token_count=7))
    assert HandoffNote.objects.filter(pk=note.pk, to_task=None, note="Read the spec.").exists()


def test_update_row_sets_the_named_fields_increments_and_counts_rows(make_task, pods):
    from tasks_app.prepared import update_row

    task = make_task("DEV-1", status=Status.ACTIVE, claimed_by="DevPod#1", version=3)
    task.status, task.claimed_by, task.outputs = Status.DONE, "", [{"kind": "pr", "n": 1}]
    task.lease_expires_at, task.pod_owner = None, pods["QAPod"]
    task.title = "not written: not named"
    assert (
        update_row(
            task,
            ("status", "claimed_by", "outputs", "lease_expires_at", "pod_owner"),
            increment=("version",),
        )
        == 1
    )
    stored = Task.objects.get(pk="DEV-1")
    assert (stored.status, stored.claimed_by, stored.outputs, stored.pod_owner_id) == (
        "done",
        "",
        [{"kind": "pr", "n": 1}],
        pods["QAPod"].pk,
    )
    assert stored.lease_expires_at is None and stored.version == 4
    assert stored.title == "Task DEV-1"
    Task.objects.filter(pk="DEV-1").delete()
    assert update_row(task, ("status",)) == 0
