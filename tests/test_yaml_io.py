"""YAML import/export: the example directory, round trips, re-import, dry runs, commands, zips."""

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from tasks_app import yamlio
from tasks_app.management.commands.generate_tasks import generate
from tasks_app.models import Event, HandoffNote, Pod, Task, Thought, TraceStep

EXAMPLES = Path(settings.BASE_DIR) / "examples" / "tasks"


def tree(root):
    """Return ``{relative path: bytes}`` for every file under ``root``."""
    root = Path(root)
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def wipe():
    """Empty the task tables, as a fresh database would be."""
    Event.objects.all().delete()
    Task.objects.all().delete()
    Pod.objects.all().delete()


def db_state():
    return {
        "pods": sorted(Pod.objects.values_list("name", "order", "wip_limit")),
        "tasks": sorted(Task.objects.values_list("id", "title", "status", "version")),
        "notes": HandoffNote.objects.count(),
        "steps": TraceStep.objects.count(),
        "thoughts": Thought.objects.count(),
        "events": Event.objects.count(),
    }


@pytest.fixture
def example(db, tmp_path):
    """A writable copy of the example directory."""
    target = tmp_path / "example"
    for rel, data in tree(EXAMPLES).items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return target


# The example directory -----------------------------------------------------------------------


def test_example_directory_imports_its_chains_and_continuation(db):
    summary = yamlio.import_directory(EXAMPLES)

    assert len(summary["created"]) == Task.objects.count() == 11
    assert summary["pods_created"] == ["DevPod", "ProductPod", "QAPod"]
    assert Pod.objects.get(name="DevPod").wip_limit == 2
    continuation = Task.objects.get(pk="DEV-101.2")
    assert continuation.scale_root == "DEV-101"
    assert continuation.handoff_from_id == "DEV-101"
    scale_note = HandoffNote.objects.get(from_task_id="DEV-101")
    assert (scale_note.to_task_id, scale_note.handoff_type, scale_note.reason) == (
        "DEV-101.2",
        "scale",
        "capacity_reached",
    )
    assert scale_note.token_count == 15200
    assert set(Task.objects.get(pk="QA-113").depends_on.values_list("pk", flat=True)) == {
        "DEV-111",
        "DEV-112",
    }
    assert {t.handoff_mode for t in Task.objects.all()} == {"sync", "async", "auto"}
    assert Task.objects.get(pk="PROD-100").reasoning_summary.startswith("Chose OAuth-only")
    assert "\n" in Task.objects.get(pk="PROD-100").prompt
    assert Task.objects.filter(status="ready").exists()


def test_example_directory_exports_byte_identically(db, tmp_path):
    yamlio.import_directory(EXAMPLES)

    yamlio.export_directory(tmp_path / "out")

    assert tree(tmp_path / "out") == tree(EXAMPLES)


def test_example_timestamps_are_aware_utc_and_inputs_stay_strings(db):
    yamlio.import_directory(EXAMPLES)
    task = Task.objects.get(pk="PROD-100")
    assert task.completed_at.isoformat() == "2026-11-20T08:59:00+00:00"
    assert all(isinstance(v, str) for v in task.inputs.values())


# Round trips -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 7])
def test_generated_directory_round_trips_byte_identically_through_a_fresh_database(
    db, tmp_path, seed
):
    pods, records = generate(150, seed=seed)
    yamlio.write_directory(tmp_path / "gen", pods=pods, records=records)
    yamlio.import_directory(tmp_path / "gen")
    yamlio.export_directory(tmp_path / "first")
    wipe()
    yamlio.import_directory(tmp_path / "first")
    yamlio.export_directory(tmp_path / "second")

    assert tree(tmp_path / "first") == tree(tmp_path / "second") == tree(tmp_path / "gen")
    assert Task.objects.count() == 150


def test_dates_inside_inputs_and_outputs_stay_the_strings_written(db, example):
    (example / "tasks/QA-122/task.yaml").write_text(
        (example / "tasks/QA-122/task.yaml")
        .read_text()
        .replace(
            "inputs: {environment: staging, spec: docs/settings-spec.md}",
            "inputs: {due: 2026-12-01, at: 2026-12-01 10:00:00, deadline: 2026-12-01T10:00:00Z}",
        )
    )
    yamlio.import_directory(example)
    assert Task.objects.get(pk="QA-122").inputs == {
        "due": "2026-12-01",
        "at": "2026-12-01 10:00:00",
        "deadline": "2026-12-01T10:00:00Z",
    }


def test_tricky_text_round_trips_exactly(db, tmp_path, make_task):
    texts = {
        "trailing spaces": "line one  \nline two\n",
        "tabs": "a\tb\n\tc",
        "crlf": "one\r\ntwo\r\n",
        "no final newline": "one\ntwo",
        "blank lines at the end": "one\n\n\n",
        "indented first line": "   indented\nnot\n",
        "unicode": "Grüße – ✓ 日本語\n",
        "looks like yaml": "- a: b\n? c\n# d\n",
        "looks like a number": "0012",
        "looks like a bool": "yes",
        "control char": "bell\x07",
    }
    for n, text in enumerate(texts.values()):
        make_task(
            f"T-{n}",
            description=text,
            prompt=text,
            reasoning_summary=text,
            inputs={"text": text},
            outputs=[{"name": text, "uri": "x", "summary": text}],
        )
    yamlio.export_directory(tmp_path / "a")
    wipe()
    yamlio.import_directory(tmp_path / "a")
    for n, text in enumerate(texts.values()):
        task = Task.objects.get(pk=f"T-{n}")
        assert (task.description, task.prompt, task.reasoning_summary) == (text, text, text)
        assert task.inputs == {"text": text}
        assert task.outputs[0]["summary"] == text
    yamlio.export_directory(tmp_path / "b")
    assert tree(tmp_path / "a") == tree(tmp_path / "b")


def test_every_task_field_survives_a_round_trip(db, tmp_path, make_task):
    from datetime import UTC, datetime

    moment = datetime(2026, 11, 20, 9, 30, 15, 123400, tzinfo=UTC)
    make_task("PROD-1", pod="ProductPod", status="done")
    make_task(
        "DEV-1",
        depends_on=["PROD-1"],
        handoff_from_id="PROD-1",
        status="active",
        description="d",
        task_type="build",
        priority=-3,
        handoff_mode="sync",
        prompt="p",
        inputs={"n": 1, "f": 1.5, "b": True, "none": None, "list": [1, {"k": "v"}]},
        outputs=[{"name": "n", "uri": "u", "summary": "s"}],
        claimed_by="DevPod#2",
        lease_expires_at=moment,
        token_count=77,
        created_at=moment,
        started_at=moment,
        completed_at=moment,
        reasoning_summary="why",
        scale_root="DEV-0",
    )
    before = yamlio.load_records()[0]
    yamlio.export_directory(tmp_path / "a")
    wipe()
    yamlio.import_directory(tmp_path / "a")
    after = yamlio.load_records()[0]
    assert after["DEV-1"].fingerprint() == before["DEV-1"].fingerprint()
    assert "continuation_of: DEV-0" in (tmp_path / "a/tasks/DEV-1/task.yaml").read_text()
    assert "continuation_of" not in (tmp_path / "a/tasks/PROD-1/task.yaml").read_text()


# Re-import and dry runs ----------------------------------------------------------------------


def test_reimport_updates_changed_tasks_by_id_and_leaves_others_alone(example, make_task):
    yamlio.import_directory(example)
    other = make_task("OTHER-1", title="Not in the directory", depends_on=["DEV-111"])
    version = Task.objects.get(pk="DEV-111").version
    path = example / "tasks/DEV-111/task.yaml"
    path.write_text(path.read_text().replace("priority: 1", "priority: 5"))
    notes = HandoffNote.objects.count()

    summary = yamlio.import_directory(example)

    assert summary["updated"] == ["DEV-111"]
    assert len(summary["unchanged"]) == 10 and summary["created"] == []
    task = Task.objects.get(pk="DEV-111")
    assert task.priority == 5 and task.version == version + 1
    assert Task.objects.get(pk="OTHER-1").title == other.title
    assert list(other.depends_on.values_list("pk", flat=True)) == ["DEV-111"]
    assert HandoffNote.objects.count() == notes


def test_reimport_replaces_notes_and_traces_instead_of_adding_them(example):
    yamlio.import_directory(example)
    (example / "tasks/PROD-100/chain_of_thought.yaml").unlink()
    notes = example / "tasks/PROD-110/handoff_notes.yaml"
    notes.write_text(notes.read_text().split("- to: DEV-112")[0])

    summary = yamlio.import_directory(example)

    assert summary["updated"] == ["PROD-100", "PROD-110"]
    assert not Thought.objects.filter(task_id="PROD-100").exists()
    assert list(
        HandoffNote.objects.filter(from_task_id="PROD-110").values_list("to_task_id", flat=True)
    ) == ["DEV-111"]
    assert TraceStep.objects.filter(task_id="PROD-100").count() == 3


def test_reimport_of_an_unchanged_directory_writes_nothing(db):
    yamlio.import_directory(EXAMPLES)
    before = db_state()
    summary = yamlio.import_directory(EXAMPLES)
    assert summary["created"] == summary["updated"] == []
    assert db_state() == before


def test_reimport_keeps_created_at_when_the_file_omits_it(example):
    yamlio.import_directory(example)
    path = example / "tasks/DEV-121/task.yaml"
    path.write_text(path.read_text().replace("created_at: 2026-11-21T09:00:00Z\n", ""))
    summary = yamlio.import_directory(example)
    assert "DEV-121" in summary["unchanged"]
    assert Task.objects.get(pk="DEV-121").created_at.isoformat() == "2026-11-21T09:00:00+00:00"


def test_dry_run_reports_what_would_change_and_writes_nothing(db):
    before = db_state()
    summary = yamlio.import_directory(EXAMPLES, dry_run=True)
    assert len(summary["created"]) == 11
    assert summary["pods_created"] == ["DevPod", "ProductPod", "QAPod"]
    assert db_state() == before


def test_import_writes_one_imported_event_per_task_and_announces_once(
    db, monkeypatch, django_capture_on_commit_callbacks
):
    announced = []
    monkeypatch.setattr("tasks_app.live.publish", lambda events: announced.append(events))
    with django_capture_on_commit_callbacks(execute=True):
        yamlio.import_directory(EXAMPLES, actor="ops")
    events = Event.objects.filter(kind="imported")
    assert events.count() == 11
    assert set(events.values_list("actor", flat=True)) == {"ops"}
    assert len(announced) == 1


def test_pods_yaml_updates_an_existing_pod(example, pods):
    summary = yamlio.import_directory(example)
    assert summary["pods_created"] == []
    assert "DevPod" in summary["pods_updated"]
    assert Pod.objects.get(name="DevPod").wip_limit == 2


def test_a_pod_named_only_by_pod_owner_is_created(example):
    (example / "pods.yaml").unlink()
    summary = yamlio.import_directory(example)
    assert summary["pods_created"] == ["DevPod", "ProductPod", "QAPod"]


def test_a_note_may_address_a_task_that_is_only_in_the_database(example, make_task):
    make_task("DEV-900")
    notes = example / "tasks/PROD-110/handoff_notes.yaml"
    notes.write_text(notes.read_text().replace("to: DEV-112", "to: DEV-900"))
    yamlio.import_directory(example)
    assert HandoffNote.objects.filter(from_task_id="PROD-110", to_task_id="DEV-900").exists()


def test_progress_is_reported_for_reading_and_writing(db):
    seen = []
    yamlio.import_directory(EXAMPLES, progress=lambda stage, done, total: seen.append(stage))
    assert "read" in seen and "write" in seen


# Export ----------------------------------------------------------------------------------------


def test_export_into_an_existing_directory_overwrites_only_exported_tasks(db, tmp_path):
    yamlio.import_directory(EXAMPLES)
    out = tmp_path / "out"
    (out / "tasks/KEEP-1").mkdir(parents=True)
    (out / "tasks/KEEP-1/task.yaml").write_text("id: KEEP-1\n")
    (out / "tasks/QA-122").mkdir(parents=True)
    (out / "tasks/QA-122/handoff_notes.yaml").write_text("- to: nowhere\n")

    count = yamlio.export_directory(out)

    assert count == 11
    assert (out / "tasks/KEEP-1/task.yaml").read_text() == "id: KEEP-1\n"
    assert not (out / "tasks/QA-122/handoff_notes.yaml").exists()


def test_export_of_selected_tasks_writes_only_them_and_their_pods(db, tmp_path):
    yamlio.import_directory(EXAMPLES)
    count = yamlio.export_directory(tmp_path, task_ids=["DEV-111", "QA-113"])
    assert count == 2
    assert sorted(os.listdir(tmp_path / "tasks")) == ["DEV-111", "QA-113"]
    pods_yaml = (tmp_path / "pods.yaml").read_text()
    assert "DevPod" in pods_yaml and "QAPod" in pods_yaml and "ProductPod" not in pods_yaml


# Commands ------------------------------------------------------------------------------------


def test_import_command_prints_a_summary(db):
    out = io.StringIO()
    call_command("import_tasks", str(EXAMPLES), stdout=out)
    assert "11 task(s): 11 created, 0 updated, 0 unchanged." in out.getvalue()
    assert Task.objects.count() == 11


def test_import_command_dry_run_writes_nothing(db):
    out = io.StringIO()
    call_command("import_tasks", str(EXAMPLES), "--dry-run", stdout=out)
    assert "would create" in out.getvalue() and "nothing was written" in out.getvalue()
    assert not Task.objects.exists()


def test_import_command_prints_every_problem_and_fails(example):
    path = example / "tasks/DEV-111/task.yaml"
    path.write_text(path.read_text().replace("status: ready", "status: doing"))
    path = example / "tasks/QA-122/task.yaml"
    path.write_text(path.read_text() + "colour: blue\n")
    err = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("import_tasks", str(example), stderr=err)
    assert caught.value.returncode == 1
    assert "2 problem(s)" in str(caught.value)
    assert (
        "tasks/DEV-111/task.yaml:4: status: 'doing' is not one of ready, active, review, done"
        in err.getvalue()
    )
    assert "tasks/QA-122/task.yaml:13: colour: unknown field" in err.getvalue()
    assert not Task.objects.exists()


def test_import_command_progress_bar_draws_on_request(db, tmp_path):
    pods, records = generate(250, seed=2)
    yamlio.write_directory(tmp_path, pods=pods, records=records)
    err = io.StringIO()
    call_command("import_tasks", str(tmp_path), "--progress", stdout=io.StringIO(), stderr=err)
    assert "read [" in err.getvalue() and "250/250" in err.getvalue()


def test_import_command_exits_non_zero_from_the_shell(db, tmp_path):
    bad = tmp_path / "bad"
    (bad / "tasks/DEV-1").mkdir(parents=True)
    (bad / "tasks/DEV-1/task.yaml").write_text("id: DEV-1\ntitle: [unclosed\n")
    # Point the command at the (migrated) test database; it only reads before refusing.
    env = dict(os.environ)
    db_name = connection.settings_dict["NAME"]
    if connection.vendor == "sqlite":
        env.pop("DATABASE_URL", None)
        env["PODBOARD_SQLITE_PATH"] = str(db_name)
    else:
        env["DATABASE_URL"] = env["DATABASE_URL"].rsplit("/", 1)[0] + f"/{db_name}"
    manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
    result = subprocess.run(
        [*manage, "import_tasks", str(bad)], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "tasks/DEV-1/task.yaml:3: not valid YAML" in result.stderr
    assert result.stdout == ""


def test_export_command_writes_the_directory(db, tmp_path):
    yamlio.import_directory(EXAMPLES)
    out = io.StringIO()
    call_command("export_tasks", str(tmp_path / "out"), stdout=out)
    assert "Exported 11 task(s)" in out.getvalue()
    assert tree(tmp_path / "out") == tree(EXAMPLES)


def test_generate_command_is_deterministic_for_a_seed(tmp_path):
    for name, seed in [("a", 5), ("b", 5), ("c", 6)]:
        call_command(
            "generate_tasks", "60", str(tmp_path / name), "--seed", str(seed), stdout=io.StringIO()
        )
    assert tree(tmp_path / "a") == tree(tmp_path / "b") != tree(tmp_path / "c")
    assert len(os.listdir(tmp_path / "a/tasks")) == 60


def test_generated_directory_has_fan_in_fan_out_modes_and_scale_outs(db, tmp_path):
    call_command(
        "generate_tasks",
        "400",
        str(tmp_path),
        "--seed",
        "3",
        "--pods",
        "SpecPod,BuildPod,ReviewPod,ShipPod",
        stdout=io.StringIO(),
    )
    yamlio.import_directory(tmp_path)
    assert set(Pod.objects.values_list("name", flat=True)) == {
        "SpecPod",
        "BuildPod",
        "ReviewPod",
        "ShipPod",
    }
    assert {t.handoff_mode for t in Task.objects.all()} == {"sync", "async", "auto"}
    through = Task.depends_on.through.objects
    assert through.values("from_task").distinct().count() < through.count()  # fan-in
    assert through.values("to_task").distinct().count() < through.count()  # fan-out
    assert Task.objects.exclude(scale_root="").exists()
    assert HandoffNote.objects.filter(handoff_type="scale").exists()
    assert {"ready", "active", "done"} == set(Task.objects.values_list("status", flat=True))


def test_generate_command_refuses_bad_pod_names(tmp_path):
    with pytest.raises(CommandError):
        call_command("generate_tasks", "5", str(tmp_path), "--pods", "Dev Pod,QAPod")


# Zip files -------------------------------------------------------------------------------------


def make_zip(entries):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            if isinstance(data, zipfile.ZipInfo):
                archive.writestr(data, b"target")
            else:
                archive.writestr(name, data)
    buffer.seek(0)
    return buffer


def test_zip_export_imports_into_a_fresh_database_unchanged(db, tmp_path):
    yamlio.import_directory(EXAMPLES)
    data = yamlio.export_zip()
    assert data == yamlio.export_zip()  # byte-stable
    wipe()
    summary = yamlio.import_zip(io.BytesIO(data), actor="web", dry_run=False)
    assert len(summary["created"]) == 11
    yamlio.export_directory(tmp_path)
    assert tree(tmp_path) == tree(EXAMPLES)
    assert set(Event.objects.values_list("actor", flat=True)) == {"web"}


def test_zip_with_the_directory_at_its_top_is_accepted(db):
    entries = {f"{rel}": data for rel, data in tree(EXAMPLES).items()}
    summary = yamlio.import_zip(make_zip(entries), actor="web", dry_run=True)
    assert len(summary["created"]) == 11
    assert not Task.objects.exists()


def test_zip_export_of_selected_tasks_holds_only_them(db):
    yamlio.import_directory(EXAMPLES)
    names = zipfile.ZipFile(io.BytesIO(yamlio.export_zip(["QA-122"]))).namelist()
    assert "podboard-tasks/tasks/QA-122/task.yaml" in names
    assert not any("DEV-" in n for n in names)


@pytest.mark.parametrize(
    "name",
    [
        "../evil.yaml",
        "podboard/../../evil.yaml",
        "/etc/evil.yaml",
        "C:/evil.yaml",
        "tasks\\..\\evil.yaml",
    ],
)
def test_zip_slip_paths_are_refused_and_nothing_is_written(db, name):
    entries = {f"x/{rel}": data for rel, data in tree(EXAMPLES).items()}
    entries[name] = b"owned: true\n"
    with pytest.raises(yamlio.ImportErrors) as caught:
        yamlio.import_zip(make_zip(entries), actor="web", dry_run=False)
    assert any(p.file == name and "refused" in p.message for p in caught.value.problems)
    assert not Task.objects.exists()


def test_zip_symlinks_are_refused(db):
    link = zipfile.ZipInfo("x/tasks/DEV-1/prompt.txt")
    link.external_attr = 0o120777 << 16
    with pytest.raises(yamlio.ImportErrors) as caught:
        yamlio.import_zip(make_zip({"link": link}), actor="web", dry_run=False)
    assert "symbolic links" in str(caught.value)


def test_zip_with_too_many_files_is_refused(db, settings):
    settings.PODBOARD_ZIP_MAX_FILES = 5
    entries = {f"x/{rel}": data for rel, data in tree(EXAMPLES).items()}
    with pytest.raises(yamlio.ImportErrors) as caught:
        yamlio.import_zip(make_zip(entries), actor="web", dry_run=False)
    assert "the limit is 5" in str(caught.value)


def test_zip_that_expands_too_far_is_refused(db, settings):
    settings.PODBOARD_ZIP_MAX_BYTES = 10_000
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x/tasks/DEV-1/prompt.txt", b"a" * 50_000)
    buffer.seek(0)
    with pytest.raises(yamlio.ImportErrors) as caught:
        yamlio.import_zip(buffer, actor="web", dry_run=False)
    assert "expands to 50000 bytes" in str(caught.value)


def test_a_file_that_is_not_a_zip_is_refused(db):
    with pytest.raises(yamlio.ImportErrors) as caught:
        yamlio.import_zip(io.BytesIO(b"not a zip"), actor="web", dry_run=False)
    assert str(caught.value) == "upload: is not a zip file"


def test_zip_problems_name_the_file_inside_the_directory(db):
    entries = {f"x/{rel}": data for rel, data in tree(EXAMPLES).items()}
    entries["x/tasks/QA-122/task.yaml"] = entries["x/tasks/QA-122/task.yaml"].replace(
        b"status: ready", b"status: later"
    )
    with pytest.raises(yamlio.ImportErrors) as caught:
        yamlio.import_zip(make_zip(entries), actor="web", dry_run=False)
    assert str(caught.value).startswith("tasks/QA-122/task.yaml:4: status: 'later'")
    assert not Task.objects.exists()
