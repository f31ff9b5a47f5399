"""Bad task directories: each gives a clear error naming the file, and the database is unchanged."""

import time
from pathlib import Path

import pytest
from django.conf import settings

from tasks_app import workflow, yamlio
from tasks_app.models import Event, HandoffNote, Pod, Task, Thought, TraceStep

EXAMPLES = Path(settings.BASE_DIR) / "examples" / "tasks"


def snapshot():
    """Every row an import could touch, so "unchanged" means unchanged."""
    return {
        "pods": sorted(Pod.objects.values_list("name", "description", "order", "wip_limit")),
        "tasks": sorted(
            Task.objects.values_list(
                "id", "title", "status", "priority", "version", "prompt", "updated_at"
            )
        ),
        "deps": sorted(Task.depends_on.through.objects.values_list("from_task_id", "to_task_id")),
        "notes": sorted(HandoffNote.objects.values_list("id", "from_task_id", "to_task_id")),
        "steps": TraceStep.objects.count(),
        "thoughts": Thought.objects.count(),
        "events": Event.objects.count(),
    }


@pytest.fixture
def make_task(db):
    """Create a task in the database only (the conftest factory would create pods too)."""

    def make(task_id, depends_on=()):
        task = Task.objects.create(
            id=task_id, title=f"Task {task_id}", pod_owner=Pod.objects.get(name="DevPod")
        )
        task.depends_on.add(*depends_on)
        return task

    return make


@pytest.fixture
def loaded(db, tmp_path):
    """The example imported into the database, and a writable copy of it to break."""
    yamlio.import_directory(EXAMPLES)
    target = tmp_path / "dir"
    for path in sorted(EXAMPLES.rglob("*")):
        if path.is_file():
            copy = target / path.relative_to(EXAMPLES)
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_bytes(path.read_bytes())
    return target


def edit(root, rel, old, new):
    path = root / rel
    text = path.read_text()
    assert old in text, f"{old!r} not in {rel}"
    path.write_text(text.replace(old, new, 1))


def refused(root):
    """Import ``root``, expecting a refusal; assert nothing changed; return the problem lines."""
    before = snapshot()
    with pytest.raises(yamlio.ImportErrors) as caught:
        yamlio.import_directory(root)
    assert snapshot() == before
    return [str(p) for p in caught.value.problems]


def test_invalid_yaml_is_refused_with_its_file_and_line(loaded):
    edit(loaded, "tasks/DEV-111/task.yaml", "title: Throttle", "title: [Throttle")
    problems = refused(loaded)
    assert len(problems) == 1
    assert problems[0].startswith("tasks/DEV-111/task.yaml:3: not valid YAML")


def test_unknown_field_is_refused(loaded):
    edit(loaded, "tasks/QA-122/task.yaml", "priority: 0\n", "priority: 0\nowner: Bob\n")
    assert refused(loaded) == [
        "tasks/QA-122/task.yaml:7: owner: unknown field (known: "
        + ", ".join(yamlio.TASK_KEYS)
        + ")"
    ]


def test_bad_status_is_refused(loaded):
    edit(loaded, "tasks/DEV-111/task.yaml", "status: ready", "status: doing")
    assert refused(loaded) == [
        "tasks/DEV-111/task.yaml:4: status: 'doing' is not one of ready, active, review, done"
    ]


def test_bad_handoff_mode_and_handoff_type_are_refused(loaded):
    edit(loaded, "tasks/DEV-111/task.yaml", "handoff_mode: sync", "handoff_mode: later")
    edit(loaded, "tasks/PROD-110/handoff_notes.yaml", "handoff_type: normal", "handoff_type: big")
    assert refused(loaded) == [
        "tasks/DEV-111/task.yaml:7: handoff_mode: 'later' is not one of sync, async, auto",
        "tasks/PROD-110/handoff_notes.yaml:5: handoff_type: 'big' is not one of normal, scale",
    ]


def test_missing_dependency_is_refused(loaded):
    edit(loaded, "tasks/QA-122/task.yaml", "depends_on: [DEV-121]", "depends_on: [DEV-999]")
    assert refused(loaded) == [
        "tasks/QA-122/task.yaml:8: depends_on: DEV-999 is neither in this directory nor in the "
        "database"
    ]


def test_dependency_on_a_task_only_in_the_database_is_accepted(loaded, make_task):
    make_task("DEV-999")
    edit(loaded, "tasks/QA-122/task.yaml", "depends_on: [DEV-121]", "depends_on: [DEV-999]")
    yamlio.import_directory(loaded)
    assert list(Task.objects.get(pk="QA-122").depends_on.values_list("pk", flat=True)) == [
        "DEV-999"
    ]


def test_missing_handoff_from_and_note_recipient_are_refused(loaded):
    edit(loaded, "tasks/QA-122/task.yaml", "handoff_from: DEV-121", "handoff_from: DEV-998")
    edit(loaded, "tasks/PROD-110/handoff_notes.yaml", "to: DEV-112", "to: DEV-997")
    assert refused(loaded) == [
        "tasks/PROD-110/handoff_notes.yaml:10: to: DEV-997 is neither in this directory nor in "
        "the database",
        "tasks/QA-122/task.yaml:9: handoff_from: DEV-998 is neither in this directory nor in the "
        "database",
    ]


def test_cycle_is_refused_and_database_untouched(loaded):
    edit(loaded, "tasks/PROD-120/task.yaml", "depends_on: []", "depends_on: [QA-122]")
    assert refused(loaded) == [
        "tasks/DEV-121/task.yaml:8: depends_on: makes a dependency cycle: "
        "DEV-121 → PROD-120 → QA-122 → DEV-121"
    ]


def test_cycle_through_tasks_only_in_the_database_is_refused(loaded, make_task):
    make_task("OLD-1", depends_on=["QA-122"])
    make_task("OLD-2", depends_on=["OLD-1"])
    edit(loaded, "tasks/PROD-120/task.yaml", "depends_on: []", "depends_on: [OLD-2]")
    problems = refused(loaded)
    assert problems == [
        "tasks/DEV-121/task.yaml:8: depends_on: makes a dependency cycle: "
        "DEV-121 → PROD-120 → OLD-2 → OLD-1 → QA-122 → DEV-121"
    ]


def test_self_dependency_is_refused_as_a_cycle(loaded):
    edit(loaded, "tasks/PROD-120/task.yaml", "depends_on: []", "depends_on: [PROD-120]")
    assert refused(loaded) == [
        "tasks/PROD-120/task.yaml:8: depends_on: makes a dependency cycle: PROD-120 → PROD-120"
    ]


def test_duplicate_id_is_refused(loaded):
    (loaded / "tasks/QA-999").mkdir()
    original = (loaded / "tasks/QA-122/task.yaml").read_bytes()
    (loaded / "tasks/QA-999/task.yaml").write_bytes(original)
    problems = refused(loaded)
    assert (
        "tasks/QA-999/task.yaml:1: id: 'QA-122' does not match its directory name 'QA-999'"
        in problems
    )
    assert any("duplicate id QA-122" in p for p in problems)


def test_bad_id_format_is_refused(loaded):
    (loaded / "tasks/-bad").mkdir()
    (loaded / "tasks/-bad/task.yaml").write_text("id: -bad\ntitle: x\npod_owner: DevPod\n")
    (loaded / "tasks/ok-1").mkdir()
    (loaded / "tasks/ok-1/task.yaml").write_text("id: ok 1\ntitle: x\npod_owner: DevPod\n")
    problems = refused(loaded)
    assert "tasks/-bad: is not a valid task id, so it cannot name a task directory" in problems
    assert "tasks/ok-1/task.yaml:1: id: 'ok 1' is not a valid task id" in problems


def test_non_utf8_prompt_is_refused(loaded):
    (loaded / "tasks/DEV-121/prompt.txt").write_bytes(b"caf\xe9 au lait\n")
    assert refused(loaded) == [
        "tasks/DEV-121/prompt.txt:1: is not UTF-8 text (byte 0xe9 at offset 3)"
    ]


def test_non_utf8_yaml_is_refused_with_its_line(loaded):
    path = loaded / "tasks/DEV-121/task.yaml"
    path.write_bytes(path.read_bytes().replace(b"Build the", b"Build th\xff"))
    assert refused(loaded) == [
        "tasks/DEV-121/task.yaml:2: is not UTF-8 text (byte 0xff at offset 27)"
    ]


def test_wrong_types_are_refused(loaded):
    edit(loaded, "tasks/DEV-121/task.yaml", "priority: 0", "priority: high")
    edit(
        loaded,
        "tasks/DEV-121/task.yaml",
        "inputs: {spec: docs/settings-spec.md}",
        "inputs: [docs/settings-spec.md]",
    )
    edit(loaded, "tasks/QA-122/task.yaml", "outputs: []", "outputs: [report.pdf]")
    edit(loaded, "tasks/QA-113/task.yaml", "outputs: []", "outputs: {name: report}")
    edit(loaded, "tasks/DEV-111/task.yaml", "outputs: []", "outputs:\n- {name: r, size: 3}")
    assert refused(loaded) == [
        "tasks/DEV-111/task.yaml:12: outputs: size: unknown field (known: name, uri, summary)",
        "tasks/DEV-121/task.yaml:6: priority: expected a whole number, got 'high'",
        "tasks/DEV-121/task.yaml:10: inputs: expected a mapping, got a list",
        "tasks/QA-113/task.yaml:11: outputs: expected a list of {name, uri, summary}, got a "
        "mapping",
        "tasks/QA-122/task.yaml:11: expected a list of {name, uri, summary}, got 'report.pdf'",
    ]


def test_prompt_key_together_with_prompt_txt_is_refused(loaded):
    edit(loaded, "tasks/DEV-121/task.yaml", "priority: 0\n", "priority: 0\nprompt: Do it.\n")
    assert refused(loaded) == [
        "tasks/DEV-121/task.yaml:7: prompt: is given both here and in prompt.txt; keep one"
    ]


def test_prompt_key_alone_is_accepted(loaded):
    (loaded / "tasks/DEV-121/prompt.txt").unlink()
    edit(loaded, "tasks/DEV-121/task.yaml", "priority: 0\n", "priority: 0\nprompt: |\n  Do it.\n")
    yamlio.import_directory(loaded)
    assert Task.objects.get(pk="DEV-121").prompt == "Do it.\n"


def test_oversized_file_is_refused_without_reading_it(loaded, settings):
    settings.PODBOARD_YAML_MAX_BYTES = 1000
    (loaded / "tasks/DEV-121/prompt.txt").write_text("x" * 1001)
    assert refused(loaded) == [
        "tasks/DEV-121/prompt.txt: is 1001 bytes; the limit is 1000 (PODBOARD_YAML_MAX_BYTES)"
    ]


def billion_laughs(levels=9):
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for n in range(1, levels + 1):
        lines.append(f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_yaml_bomb_is_refused_quickly(loaded):
    (loaded / "tasks/DEV-121/task.yaml").write_text(
        "id: DEV-121\ntitle: Boom\npod_owner: DevPod\ninputs:\n"
        + "".join("  " + line + "\n" for line in billion_laughs().splitlines())
    )
    started = time.perf_counter()
    problems = refused(loaded)
    assert time.perf_counter() - started < 2
    assert len(problems) == 1
    assert problems[0].startswith("tasks/DEV-121/task.yaml:")
    assert "aliases expand this document past 10000 nodes" in problems[0]


def test_modest_aliases_are_accepted(loaded):
    edit(
        loaded,
        "tasks/DEV-121/task.yaml",
        "inputs: {spec: docs/settings-spec.md}",
        "inputs:\n  base: &b {env: staging}\n  copy: *b",
    )
    yamlio.import_directory(loaded)
    assert Task.objects.get(pk="DEV-121").inputs == {
        "base": {"env": "staging"},
        "copy": {"env": "staging"},
    }


def test_recursive_alias_is_refused(loaded):
    edit(
        loaded,
        "tasks/DEV-121/task.yaml",
        "inputs: {spec: docs/settings-spec.md}",
        "inputs: &loop {self: *loop}",
    )
    problems = refused(loaded)
    assert problems == ["tasks/DEV-121/task.yaml:10: an alias refers to the node that contains it"]


def test_deep_nesting_is_refused(loaded):
    edit(
        loaded,
        "tasks/DEV-121/task.yaml",
        "inputs: {spec: docs/settings-spec.md}",
        "inputs: " + "[" * 200 + "]" * 200,
    )
    problems = refused(loaded)
    assert problems == [
        "tasks/DEV-121/task.yaml:10: nested deeper than 50 levels (PODBOARD_YAML_MAX_DEPTH)"
    ]


def test_extreme_nesting_is_refused_by_the_parser(loaded):
    edit(
        loaded,
        "tasks/DEV-121/task.yaml",
        "inputs: {spec: docs/settings-spec.md}",
        "inputs: " + "[" * 100_000 + "]" * 100_000,
    )
    [problem] = refused(loaded)
    assert problem.startswith("tasks/DEV-121/task.yaml:10: ")
    assert "nest" in problem


def test_python_tags_are_refused_by_safe_loading(loaded):
    edit(
        loaded,
        "tasks/DEV-121/task.yaml",
        "inputs: {spec: docs/settings-spec.md}",
        "inputs: !!python/object/apply:os.system ['echo owned']",
    )
    [problem] = refused(loaded)
    assert problem.startswith("tasks/DEV-121/task.yaml:10: cannot be loaded:")
    assert "python/object/apply" in problem


def test_duplicate_keys_are_refused(loaded):
    edit(loaded, "tasks/DEV-121/task.yaml", "priority: 0\n", "priority: 0\npriority: 3\n")
    assert refused(loaded) == ["tasks/DEV-121/task.yaml:7: the key 'priority' appears twice"]


def test_text_the_database_cannot_store_is_refused(loaded):
    edit(
        loaded,
        "tasks/DEV-121/task.yaml",
        "title: Build the account settings page",
        'title: "Bu\\0ild"',
    )
    edit(loaded, "tasks/QA-122/task.yaml", "inputs: {", 'inputs: {bad: "\\uD800", ')
    nul, surrogate = refused(loaded)
    assert nul == (
        "tasks/DEV-121/task.yaml:2: title: contains a NUL character, which the "
        "database cannot store"
    )
    # libyaml refuses the escape itself; the pure-Python loader leaves it to our check.
    assert surrogate.startswith("tasks/QA-122/task.yaml:10: ")
    assert "Unicode" in surrogate


def test_missing_task_yaml_and_unexpected_files_are_refused(loaded):
    (loaded / "tasks/DEV-121/task.yaml").unlink()
    (loaded / "tasks/QA-122/notes.md").write_text("hi")
    (loaded / "tasks/QA-122/.swp").write_text("editor file")
    (loaded / "tasks/README").write_text("hi")
    problems = refused(loaded)
    assert "tasks/DEV-121/task.yaml: is missing (each task needs one)" in problems
    assert any(p.startswith("tasks/QA-122/notes.md: unexpected file") for p in problems)
    assert any(p.startswith("tasks/README: unexpected file") for p in problems)
    assert len(problems) == 3


def test_bad_timestamps_and_negative_counts_are_refused(loaded):
    edit(
        loaded,
        "tasks/QA-122/task.yaml",
        "created_at: 2026-11-21T09:00:00Z",
        "created_at: next tuesday",
    )
    edit(loaded, "tasks/PROD-110/handoff_notes.yaml", "token_count: 4300", "token_count: -1")
    assert refused(loaded) == [
        "tasks/PROD-110/handoff_notes.yaml:7: token_count: -1 is out of range (0 to 2147483647)",
        "tasks/QA-122/task.yaml:12: created_at: 'next tuesday' is not an ISO 8601 timestamp "
        "(e.g. 2026-11-20T09:00:00Z)",
    ]


def test_bad_trace_thoughts_and_pods_files_are_refused(loaded):
    (loaded / "tasks/PROD-100/reasoning_trace.yaml").write_text("- just a list\n")
    (loaded / "tasks/PROD-110/chain_of_thought.yaml").write_text("- step: 1\n  idea: x\n")
    edit(loaded, "pods.yaml", "wip_limit: 2", "wip_limit: two")
    assert refused(loaded) == [
        "pods.yaml:8: wip_limit: expected a whole number, got 'two'",
        "tasks/PROD-100/reasoning_trace.yaml:1: expected a mapping with summary and steps, got a "
        "list",
        "tasks/PROD-110/chain_of_thought.yaml:2: idea: unknown field (known: step, thought, at)",
    ]


def test_every_problem_is_reported_at_once(loaded):
    edit(loaded, "tasks/DEV-111/task.yaml", "status: ready", "status: doing")
    edit(loaded, "tasks/DEV-112/task.yaml", "title: Show", "title: [Show")
    edit(loaded, "tasks/QA-122/task.yaml", "depends_on: [DEV-121]", "depends_on: [NOPE-1]")
    (loaded / "tasks/DEV-121/prompt.txt").write_bytes(b"\xff")
    problems = refused(loaded)
    assert [p.split(":")[0] for p in problems] == [
        "tasks/DEV-111/task.yaml",
        "tasks/DEV-112/task.yaml",
        "tasks/DEV-121/prompt.txt",
        "tasks/QA-122/task.yaml",
    ]


def test_a_directory_that_does_not_exist_is_refused(db, tmp_path):
    with pytest.raises(yamlio.ImportErrors) as caught:
        yamlio.import_directory(tmp_path / "nowhere")
    assert str(caught.value).endswith("nowhere: is not a directory")


def test_a_directory_without_tasks_is_refused(db, tmp_path):
    with pytest.raises(yamlio.ImportErrors) as caught:
        yamlio.import_directory(tmp_path)
    assert str(caught.value) == "tasks: is missing (expected tasks/<id>/task.yaml)"


def test_database_changed_between_check_and_apply_is_refused(loaded, make_task):
    edit(loaded, "tasks/PROD-120/task.yaml", "depends_on: []", "depends_on: [OLD-1]")
    make_task("OLD-1")
    plan = yamlio.read_directory(loaded)
    Task.objects.filter(pk="OLD-1").delete()
    before = snapshot()
    with pytest.raises(yamlio.ImportErrors) as caught:
        workflow.import_plan(plan=plan, actor="import")
    assert "OLD-1 is neither in this directory nor in the database" in str(caught.value)
    assert snapshot() == before
