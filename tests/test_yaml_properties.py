"""Property tests: any valid task directory round-trips byte for byte; a broken one is refused
with problems that name its files, and the database is left as it was."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks_app import yamlio
from tasks_app.models import Event, HandoffNote, Pod, Task

SETTINGS = settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Any text the database can hold: no NUL, no lone surrogates.
chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
line = st.text(chars, max_size=20)
text = st.one_of(line, st.lists(line, min_size=2, max_size=4).map("\n".join))
title = text.filter(lambda t: t.strip())
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
counts = st.integers(0, 2**31 - 1)
step_numbers = st.integers(1, 1_000_000)  # DESIGN.md, "Ids": steps are 1…1,000,000
# Floats PostgreSQL's jsonb gives back as the same float (no exponents, no -0.0).
numbers = st.floats(-1e6, 1e6, allow_nan=False).filter(lambda f: f != 0 or str(f) == "0.0")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | numbers | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(line, inner, max_size=3),
    max_leaves=8,
)
task_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,8}", fullmatch=True)
pod_names = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,8}", fullmatch=True)


@st.composite
def directories(draw):
    """Return ``(pods, records)`` for a valid directory (dependencies only point backwards)."""
    names = draw(st.lists(pod_names, min_size=1, max_size=3, unique=True))
    pods = [
        yamlio.PodRecord(
            name=n,
            description=draw(text),
            order=draw(st.integers(-5, 5)),
            wip_limit=draw(st.none() | st.integers(0, 9)),
        )
        for n in names
    ]
    pods.sort(key=lambda p: (p.order, p.name))  # the order export lists them in
    ids = draw(st.lists(task_ids, min_size=1, max_size=5, unique=True))
    records = []
    for index, task_id in enumerate(ids):
        earlier = ids[:index]
        record = yamlio.TaskRecord(
            id=task_id,
            title=draw(title),
            description=draw(text),
            pod_owner=draw(st.sampled_from(names)),
            status=draw(st.sampled_from(["ready", "active", "done"])),
            task_type=draw(line),
            priority=draw(st.integers(-(2**31), 2**31 - 1)),
            handoff_mode=draw(st.sampled_from(["sync", "async", "auto"])),
            depends_on=sorted(
                draw(st.sets(st.sampled_from(earlier), max_size=3)) if earlier else []
            ),
            handoff_from=draw(st.none() | st.sampled_from(earlier)) if earlier else None,
            prompt=draw(text),
            inputs=draw(st.dictionaries(line, json_values, max_size=3)),
            outputs=draw(
                st.lists(
                    st.fixed_dictionaries({"name": line, "uri": line, "summary": text}), max_size=2
                )
            ),
            claimed_by=draw(line),
            lease_expires_at=draw(st.none() | moments),
            token_count=draw(counts),
            created_at=draw(moments),
            started_at=draw(st.none() | moments),
            completed_at=draw(st.none() | moments),
            continuation_of=draw(st.just("") | task_ids),
            reasoning_summary=draw(text),
        )
        record.notes = draw(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "to": st.none() | st.sampled_from(ids),
                        "note": text,
                        "reason": line,
                        "handoff_type": st.sampled_from(["normal", "scale"]),
                        "mode": st.sampled_from(["sync", "async"]),
                        "token_count": counts,
                        "author": line,
                        "created_at": moments,
                    }
                ),
                max_size=2,
            )
        )
        record.steps = draw(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "step": step_numbers,
                        "action": text,
                        "rationale": text,
                        "tokens": counts,
                        "at": moments,
                    }
                ),
                max_size=2,
            )
        )
        record.thoughts = draw(
            st.lists(
                st.fixed_dictionaries({"step": step_numbers, "thought": text, "at": moments}),
                max_size=2,
            )
        )
        records.append(record)
    return pods, records


def tree(root):
    root = Path(root)
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def wipe():
    Event.objects.all().delete()
    Task.objects.all().delete()
    Pod.objects.all().delete()


def state():
    return (
        sorted(Pod.objects.values_list("name", "order")),
        sorted(Task.objects.values_list("id", "title", "status", "version", "priority")),
        HandoffNote.objects.count(),
        Event.objects.count(),
    )


@SETTINGS
@given(directory=directories())
def test_valid_directories_round_trip_byte_identically(db, tmp_path_factory, directory):
    wipe()
    pods, records = directory
    root = tmp_path_factory.mktemp("valid")
    yamlio.write_directory(root / "in", pods=pods, records=records)
    yamlio.import_directory(root / "in")
    yamlio.export_directory(root / "out")
    assert tree(root / "out") == tree(root / "in")


def break_directory(root, records, how):
    """Break the directory at ``root`` in one way; return the file that is now wrong."""
    first = records[0].id
    task_yaml = root / "tasks" / first / "task.yaml"
    text = task_yaml.read_text(encoding="utf-8")
    if how == "status":
        text = text.replace(f"status: {records[0].status}", "status: finished", 1)
    elif how == "unknown field":
        text += "colour: blue\n"
    elif how == "not yaml":
        text += "bad: [unclosed\n"
    elif how == "missing dependency":
        text = text.replace("depends_on: [", "depends_on: [MISSING-1, ", 1).replace(
            "depends_on: []", "depends_on: [MISSING-1]", 1
        )
    elif how == "cycle":
        text = text.replace("depends_on: [", f"depends_on: [{first}, ", 1).replace(
            "depends_on: []", f"depends_on: [{first}]", 1
        )
    elif how == "priority":
        text = text.replace(f"priority: {records[0].priority}\n", "priority: high\n", 1)
    elif how == "not utf-8":
        prompt = root / "tasks" / first / "prompt.txt"
        prompt.write_bytes(b"\xff\xfe broken")
        return f"tasks/{first}/prompt.txt"
    task_yaml.write_text(text, encoding="utf-8")
    return f"tasks/{first}/task.yaml"


@SETTINGS
@given(
    directory=directories(),
    how=st.sampled_from(
        [
            "status",
            "unknown field",
            "not yaml",
            "missing dependency",
            "cycle",
            "priority",
            "not utf-8",
        ]
    ),
)
def test_broken_directories_are_refused_and_change_nothing(db, tmp_path_factory, directory, how):
    wipe()
    pods, records = directory
    root = tmp_path_factory.mktemp("broken")
    yamlio.write_directory(root, pods=pods, records=records)
    yamlio.import_directory(root)
    before = state()
    broken_file = break_directory(root, records, how)

    with pytest.raises(yamlio.ImportErrors) as caught:
        yamlio.import_directory(root)

    assert state() == before
    problems = caught.value.problems
    assert broken_file in {p.file for p in problems}
    assert all((root / p.file).exists() for p in problems)
    assert all(str(p).startswith(p.file + ":") and p.message for p in problems)
