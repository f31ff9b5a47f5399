"""An import streams: between check and write it holds a small entry per task, never the
tasks' records (prompts, notes, traces); writing reads the changed tasks again a chunk at a
time, and refuses a task whose files changed since they were checked."""

import gc
import shutil
import tracemalloc
import weakref

import pytest

from tasks_app import workflow, yamlio
from tasks_app.live.announce import announcement_for
from tasks_app.management.commands.generate_tasks import generate
from tasks_app.models import Event, HandoffNote, Task, TraceStep
from tasks_app.yamlio import plan as plan_module
from tasks_app.yamlio.reader import Reader

pytestmark = pytest.mark.django_db

N = 1000


@pytest.fixture(scope="module")
def directory(tmp_path_factory):
    root = tmp_path_factory.mktemp("streaming") / "tasks"
    pods, records = generate(N, seed=5)
    yamlio.write_directory(root, pods=pods, records=records)
    return root


@pytest.fixture
def alive(monkeypatch):
    """Count the records the reader returns that are still alive: ``alive.counts`` holds, at
    each read, how many records read before it are; ``alive.now()`` how many are now."""
    live = [0]
    counts = []
    read_task = Reader.read_task

    def gone():
        live[0] -= 1

    def watching(self, dirname):
        counts.append(live[0])  # records hold no cycles: refcounting frees them at once
        record = read_task(self, dirname)
        if record is not None:
            live[0] += 1
            weakref.finalize(record, gone)
        return record

    def now():
        gc.collect()
        return live[0]

    monkeypatch.setattr(Reader, "read_task", watching)
    watching.counts, watching.now = counts, now
    return watching


def test_reading_keeps_no_task_record(directory, alive):
    plan = yamlio.read_directory(directory)
    gc.collect()
    assert len(plan.entries) == N
    assert len(alive.counts) == N
    # At each read only the record just before it is still bound (the loop's variable).
    assert max(alive.counts) == 1
    assert alive.now() == 0


def test_writing_reads_the_tasks_again_a_chunk_at_a_time(directory, alive, monkeypatch):
    monkeypatch.setattr(plan_module, "WRITE_CHUNK", 100)
    summary = yamlio.import_directory(directory)
    assert len(summary["created"]) == Task.objects.count() == N
    reads, writes = alive.counts[:N], alive.counts[N:]
    assert max(reads) == 1
    assert len(writes) == N  # each task read once more, to write it
    # While the 100th task of a chunk is read, the chunk's 99 others are alive and nothing of
    # the chunk before.
    assert max(writes) == 99
    assert writes[100] == 0
    assert alive.now() == 0


def test_the_plan_holds_well_under_a_kilobyte_per_task(directory):
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        plan = yamlio.read_directory(directory)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(plan.entries) == N
    # The records themselves (prompt, notes, trace, thoughts) take ~3.4 KB a task here.
    assert held < N * 1024, f"the plan holds {held / N:.0f} bytes a task"


def test_an_import_saves_an_event_per_task_and_announces_their_count(
    directory, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(plan_module, "WRITE_CHUNK", 300)
    announced = []
    monkeypatch.setattr("tasks_app.live.publish", lambda events: announced.append(events))
    with django_capture_on_commit_callbacks(execute=True):
        yamlio.import_directory(directory, actor="ops")
    events = Event.objects.filter(kind="imported").order_by("id")
    assert events.count() == N
    assert set(events.values_list("actor", flat=True)) == {"ops"}
    assert len(announced) == 1
    message = announcement_for(announced[0], at=0)
    assert message == {
        "type": "board.events",
        "seq": events.last().id,
        "first": events.first().id,
        "at": 0,
        "refresh": "import",
        "count": N,
    }
    # The count travels with the announcement only, not in the saved rows.
    assert "count" not in events.last().payload


def test_a_task_changed_after_its_check_is_refused_and_nothing_is_written(directory, tmp_path):
    copy = shutil.copytree(directory, tmp_path / "copy")
    plan = yamlio.read_directory(copy)
    changed = sorted(plan.entries)[-1]
    task_file = copy / "tasks" / changed / "task.yaml"
    task_file.write_text(task_file.read_text().replace("title: ", "title: Renamed ", 1))
    with pytest.raises(yamlio.ImportErrors) as caught:
        workflow.import_plan(plan=plan, actor="import")
    assert str(caught.value) == (
        f"tasks/{changed}: changed while it was being imported; nothing was imported"
    )
    assert Task.objects.count() == 0
    assert HandoffNote.objects.count() == 0
    assert TraceStep.objects.count() == 0
    assert Event.objects.count() == 0
