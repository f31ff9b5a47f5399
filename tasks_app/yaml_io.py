"""Tasks as a directory of YAML files, and back: directory ⇄ plain records ⇄ models.

Layout (DESIGN.md, "YAML directory format")::

    <root>/pods.yaml                       optional list of {name, description, order, wip_limit}
    <root>/tasks/<id>/task.yaml            required; the task's fields
    <root>/tasks/<id>/prompt.txt           the prompt, verbatim (UTF-8)
    <root>/tasks/<id>/handoff_notes.yaml   the notes this task wrote
    <root>/tasks/<id>/reasoning_trace.yaml {summary, steps}
    <root>/tasks/<id>/chain_of_thought.yaml

Reading (``read_directory``) loads and checks the whole directory before anything is written
and collects every problem (``ImportErrors.problems``), each naming its file and, where YAML
gives one, its line. ``apply`` then writes the plan in one transaction with bulk statements.

Decisions beyond DESIGN.md:

- A reference to another task (``depends_on``, ``handoff_from``, a note's ``to:``) must name a
  task in the directory or one already in the database; anything else is refused. A note is
  never silently re-addressed or dropped.
- ``continuation_of`` (the model's ``scale_root``) is written only when set and is not checked
  for existence: it names the first task of a scale-out chain, which may live elsewhere.
- ``version`` and ``blocked`` are accepted in ``task.yaml`` and ignored: the database owns the
  first and derives the second. Every other unknown key, and every unknown file inside a task
  directory (hidden files aside), is refused.
- Re-importing a task replaces its fields, its dependencies, the notes it wrote, its trace and
  chain of thought; a task whose data is unchanged is not written at all. A re-imported task
  that omits ``created_at`` keeps the one it has. Tasks absent from the directory are untouched.
- Pods named in ``pods.yaml`` are created or updated from it; a pod that only appears as a
  ``pod_owner`` is created with defaults.
- Values inside ``inputs``/``outputs`` must be JSON (string keys, finite numbers); YAML
  timestamps there stay the exact strings written. Export sorts ``inputs`` keys, because
  PostgreSQL's jsonb does not keep key order and export must not depend on the database.
- Child rows (notes, steps, thoughts) are exported in the order they were written, so a file's
  order survives a round trip.
- Loading is safe only (libyaml's ``CSafeLoader`` when present), aliases may not expand past
  ``PODBOARD_YAML_MAX_NODES`` nodes (counted on the composed graph, never expanded), nesting
  may not pass ``PODBOARD_YAML_MAX_DEPTH`` levels, and no file may pass
  ``PODBOARD_YAML_MAX_BYTES``.
"""

import io
import json
import math
import os
import re
import stat
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import yaml
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import workflow
from .models import (
    POD_NAME_RE,
    TASK_ID_RE,
    HandoffMode,
    HandoffNote,
    HandoffType,
    Pod,
    ResolvedMode,
    Status,
    Task,
    Thought,
    TraceStep,
)
from .shapes import iso

Depends = Task.depends_on.through

TASK_FILE = "task.yaml"
PROMPT_FILE = "prompt.txt"
NOTES_FILE = "handoff_notes.yaml"
TRACE_FILE = "reasoning_trace.yaml"
THOUGHTS_FILE = "chain_of_thought.yaml"
TASK_FILES = (TASK_FILE, PROMPT_FILE, NOTES_FILE, TRACE_FILE, THOUGHTS_FILE)

# The DESIGN.md example's order first, then the fields it does not show.
TASK_KEYS = (
    "id",
    "title",
    "pod_owner",
    "status",
    "task_type",
    "priority",
    "handoff_mode",
    "depends_on",
    "handoff_from",
    "inputs",
    "outputs",
    "created_at",
    "description",
    "continuation_of",
    "claimed_by",
    "token_count",
    "lease_expires_at",
    "started_at",
    "completed_at",
    "prompt",
)
IGNORED_TASK_KEYS = ("version", "blocked")
NOTE_KEYS = ("to", "note", "reason", "handoff_type", "mode", "token_count", "author", "created_at")
STEP_KEYS = ("step", "action", "rationale", "tokens", "at")
THOUGHT_KEYS = ("step", "thought", "at")
OUTPUT_KEYS = ("name", "uri", "summary")
POD_KEYS = ("name", "description", "order", "wip_limit")

INT_MAX = 2**31 - 1  # the integer columns of PostgreSQL
CHUNK = 500  # ids per IN (...) query, well under SQLite's variable limit


def _setting(name, default):
    return getattr(settings, name, default)


# Problems ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an import: where it is and what is wrong."""

    file: str
    line: int | None
    field: str | None
    message: str

    def __str__(self):
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        what = self.message if not self.field else f"{self.field}: {self.message}"
        return f"{where}: {what}"


class ImportErrors(Exception):
    """The directory cannot be imported; ``problems`` lists every reason. Nothing was written."""

    def __init__(self, problems):
        self.problems = sorted(problems, key=lambda p: (p.file, p.line or 0))
        super().__init__("\n".join(str(p) for p in self.problems))


# YAML loading and dumping --------------------------------------------------------------------

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BaseDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
STR_TAG = "tag:yaml.org,2002:str"


class _Loader(_BaseLoader):
    """Safe loading that keeps every timestamp as the exact string written."""


_Loader.add_constructor(TIMESTAMP_TAG, yaml.constructor.SafeConstructor.construct_yaml_str)


class _Dumper(_BaseDumper):
    """Safe dumping with literal blocks for multi-line text and plain ISO timestamps."""


class _Flow(dict):
    """A mapping written on one line: ``{step: 1, thought: …}``."""


class _FlowList(list):
    """A list written on one line: ``[PROD-100, DEV-101]``."""


_UNSAFE_IN_BLOCK = re.compile(r"[ \t]\n|[ \t]\Z|[\t\r\x00-\x08\x0b-\x1f\x7f-\x9f\ufeff]")


def _represent_str(dumper, value):
    if "\n" not in value and dumper.resolve(yaml.ScalarNode, value, (True, False)) == TIMESTAMP_TAG:
        # Tagged as what the resolver sees, so it is written plain; the loader reads it back
        # as this same string.
        return dumper.represent_scalar(TIMESTAMP_TAG, value)
    if "\n" in value and not _UNSAFE_IN_BLOCK.search(value):
        return dumper.represent_scalar(STR_TAG, value, style="|")
    return dumper.represent_scalar(STR_TAG, value)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(
    _Flow, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v.items(), flow_style=True)
)
_Dumper.add_representer(
    _FlowList, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True)
)


def dump_yaml(data):
    """Return ``data`` as UTF-8 YAML bytes in PodBoard's export style."""
    return yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=1_000_000,
        default_flow_style=False,
        encoding="utf-8",
    )


def _flowable(mapping):
    """Return True when ``mapping`` reads well on one line (short single-line scalars only)."""
    width = 0
    for key, value in mapping.items():
        if isinstance(value, str):
            # PyYAML quotes any ':' in flow context, so a timestamp or URI would come out as
            # '2026-11-20T09:00:00Z'; such mappings read better as blocks.
            if "\n" in value or ":" in value or _UNSAFE_IN_BLOCK.search(value):
                return False
            width += len(value)
        elif value is None or isinstance(value, bool | int | float):
            width += 6
        else:
            return False
        width += len(key) + 4
    return width <= 110


def _maybe_flow(mapping):
    return _Flow(mapping) if _flowable(mapping) else mapping


def _sorted_json(value):
    if isinstance(value, dict):
        return {k: _sorted_json(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_json(v) for v in value]
    return value


class _Refused(Exception):
    def __init__(self, line, message):
        super().__init__(message)
        self.line = line
        self.message = message


def _children(node):
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return ()


def _check_graph(root, max_nodes, max_depth):
    """Refuse a node graph whose expansion passes ``max_nodes`` or ``max_depth``.

    Aliases share nodes, so sizes are memoised per node: a "billion laughs" file costs one
    visit per distinct node instead of one per expanded node.
    """
    size, depth, on_path = {}, {}, set()
    stack = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            kids = _children(node)
            total = 1 + sum(size[id(k)] for k in kids)
            deepest = 1 + max((depth[id(k)] for k in kids), default=0)
            if total > max_nodes:
                raise _Refused(
                    node.start_mark.line + 1,
                    f"aliases expand this document past {max_nodes} nodes "
                    "(PODBOARD_YAML_MAX_NODES); refusing it",
                )
            if deepest > max_depth:
                raise _Refused(
                    node.start_mark.line + 1,
                    f"nested deeper than {max_depth} levels (PODBOARD_YAML_MAX_DEPTH)",
                )
            size[key], depth[key] = total, deepest
            continue
        if key in size:
            continue
        if key in on_path:
            raise _Refused(node.start_mark.line + 1, "an alias refers to the node that contains it")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in _children(node) if id(k) not in size)


def _check_tree(root, max_nodes, max_depth):
    """Refuse a node tree (no aliases) of more than ``max_nodes`` nodes or ``max_depth`` levels."""
    count, stack = 0, [(root, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > max_nodes:
            raise _Refused(
                node.start_mark.line + 1,
                f"has more than {max_nodes} nodes (PODBOARD_YAML_MAX_NODES)",
            )
        if depth > max_depth:
            raise _Refused(
                node.start_mark.line + 1,
                f"nested deeper than {max_depth} levels (PODBOARD_YAML_MAX_DEPTH)",
            )
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)


def _duplicate_keys(node):
    """Yield ``(line, key)`` for mapping keys written twice (YAML would keep the last silently)."""
    stack, seen = [node], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys = set()
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value != "<<":
                    # The resolved tag tells 1 from '1'.
                    key = (key_node.tag, key_node.value)
                    if key in keys:
                        yield key_node.start_mark.line + 1, key_node.value
                    keys.add(key)
        stack.extend(_children(node))


def parse_yaml(text):
    """Return ``(data, node)`` for one YAML document, or raise ``_Refused`` with a line."""
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            reason = " ".join(str(p) for p in (exc.context, exc.problem) if p)
            raise _Refused(mark.line + 1 if mark else None, f"not valid YAML: {reason}") from None
        except yaml.YAMLError as exc:
            raise _Refused(None, f"not valid YAML: {exc}") from None
        except RecursionError:
            raise _Refused(None, "nested too deeply to read") from None
        if node is None:
            return None, None
        limits = (
            _setting("PODBOARD_YAML_MAX_NODES", 10_000),
            _setting("PODBOARD_YAML_MAX_DEPTH", 50),
        )
        if "*" in text:
            _check_graph(node, *limits)
        else:
            _check_tree(node, *limits)  # no alias, so no shared nodes: a cheaper walk
        for line, key in _duplicate_keys(node):
            raise _Refused(line, f"the key {key!r} appears twice")
        try:
            data = loader.construct_document(node)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else None
            raise _Refused(line, f"cannot be loaded: {exc.problem}") from None
        return data, node
    finally:
        loader.dispose()


def _key_line(node, key):
    """Return the 1-based line of ``key`` in mapping ``node`` (or of the node itself)."""
    if node is None:
        return None
    if isinstance(node, yaml.MappingNode):
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                return key_node.start_mark.line + 1
    return node.start_mark.line + 1


def _item_node(node, index):
    if isinstance(node, yaml.SequenceNode) and index < len(node.value):
        return node.value[index]
    return node


def _value_node(node, key):
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                return value_node
    return node


# Records: the plain form shared by reading, writing, comparing --------------------------------


@dataclass
class TaskRecord:
    """One task and what travels with it, as plain values (datetimes for timestamps)."""

    id: str
    title: str = ""
    description: str = ""
    pod_owner: str = ""
    status: str = Status.READY.value
    task_type: str = ""
    priority: int = 0
    handoff_mode: str = HandoffMode.ASYNC.value
    depends_on: list = field(default_factory=list)
    handoff_from: str | None = None
    prompt: str = ""
    inputs: dict = field(default_factory=dict)
    outputs: list = field(default_factory=list)
    claimed_by: str = ""
    lease_expires_at: datetime | None = None
    token_count: int = 0
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    continuation_of: str = ""
    reasoning_summary: str = ""
    notes: list = field(default_factory=list)
    steps: list = field(default_factory=list)
    thoughts: list = field(default_factory=list)

    def fingerprint(self):
        """Return a string equal for two records exactly when their data is equal."""
        return json.dumps(vars(self), sort_keys=True, default=iso, ensure_ascii=False)


@dataclass
class PodRecord:
    name: str
    description: str = ""
    order: int = 0
    wip_limit: int | None = None


def _time(value):
    return iso(value) if value is not None else None


def task_files(record):
    """Return ``{filename: bytes}`` for ``record`` in export format (empty files left out)."""
    doc = {
        "id": record.id,
        "title": record.title,
        "pod_owner": record.pod_owner,
        "status": record.status,
        "task_type": record.task_type,
        "priority": record.priority,
        "handoff_mode": record.handoff_mode,
        "depends_on": _FlowList(sorted(record.depends_on)),
        "handoff_from": record.handoff_from,
        "inputs": _maybe_flow(_sorted_json(record.inputs)) if record.inputs else {},
        "outputs": [_maybe_flow(_ordered(o, OUTPUT_KEYS)) for o in record.outputs],
        "created_at": _time(record.created_at),
    }
    if record.description:
        doc["description"] = record.description
    if record.continuation_of:
        doc["continuation_of"] = record.continuation_of
    if record.claimed_by:
        doc["claimed_by"] = record.claimed_by
    if record.token_count:
        doc["token_count"] = record.token_count
    for name in ("lease_expires_at", "started_at", "completed_at"):
        if getattr(record, name) is not None:
            doc[name] = _time(getattr(record, name))
    files = {TASK_FILE: dump_yaml(doc)}
    if record.prompt:
        files[PROMPT_FILE] = record.prompt.encode("utf-8")
    if record.notes:
        files[NOTES_FILE] = dump_yaml(
            [
                {k: _time(n[k]) if k == "created_at" else n[k] for k in NOTE_KEYS}
                for n in record.notes
            ]
        )
    if record.reasoning_summary or record.steps:
        trace = {}
        if record.reasoning_summary:
            trace["summary"] = record.reasoning_summary
        trace["steps"] = [
            _maybe_flow({k: _time(s[k]) if k == "at" else s[k] for k in STEP_KEYS})
            for s in record.steps
        ]
        files[TRACE_FILE] = dump_yaml(trace)
    if record.thoughts:
        files[THOUGHTS_FILE] = dump_yaml(
            [
                _maybe_flow({k: _time(t[k]) if k == "at" else t[k] for k in THOUGHT_KEYS})
                for t in record.thoughts
            ]
        )
    return files


def _ordered(mapping, keys):
    return {k: mapping[k] for k in keys if k in mapping} | {
        k: mapping[k] for k in sorted(mapping) if k not in keys
    }


def pods_file(pods):
    return dump_yaml([asdict(p) for p in pods])


def write_directory(root, *, pods, records, progress=None):
    """Write ``pods`` and ``records`` under ``root`` in export format; return the task count.

    Files of other tasks already under ``root/tasks`` are left alone; in a written task's
    directory, PodBoard's files that are now empty are removed so they cannot come back.
    """
    root = Path(root)
    tasks_dir = root / "tasks"
    tasks_dir.mkdir(parents=True, exist_ok=True)
    (root / "pods.yaml").write_bytes(pods_file(pods))
    total = len(records)
    for done, record in enumerate(records, 1):
        task_dir = tasks_dir / record.id
        task_dir.mkdir(exist_ok=True)
        files = task_files(record)
        for name in TASK_FILES:
            path = task_dir / name
            if name in files:
                path.write_bytes(files[name])
            elif path.exists():
                path.unlink()
        if progress and (done % 200 == 0 or done == total):
            progress("export", done, total)
    return total


# Reading records from the database -----------------------------------------------------------


def _chunks(items, size=CHUNK):
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _filtered(queryset, lookup, ids):
    """Yield rows of ``queryset`` for ``ids`` (all rows when ``ids`` is None), chunked."""
    if ids is None:
        yield from queryset
        return
    for chunk in _chunks(ids):
        yield from queryset.filter(**{f"{lookup}__in": chunk})


def load_records(task_ids=None, *, lock=False):
    """Return ``{id: TaskRecord}`` for ``task_ids`` (every task when None), from the database."""
    fields = (
        "id",
        "title",
        "description",
        "pod_owner__name",
        "status",
        "task_type",
        "priority",
        "handoff_mode",
        "handoff_from_id",
        "prompt",
        "inputs",
        "outputs",
        "claimed_by",
        "lease_expires_at",
        "token_count",
        "created_at",
        "started_at",
        "completed_at",
        "scale_root",
        "reasoning_summary",
        "version",
    )
    tasks = Task.objects.order_by("id")
    if lock:
        tasks = tasks.select_for_update(of=("self",))
    records, versions = {}, {}
    for row in _filtered(tasks.values(*fields), "pk", task_ids):
        versions[row["id"]] = row["version"]
        records[row["id"]] = TaskRecord(
            id=row["id"],
            title=row["title"],
            description=row["description"],
            pod_owner=row["pod_owner__name"],
            status=row["status"],
            task_type=row["task_type"],
            priority=row["priority"],
            handoff_mode=row["handoff_mode"],
            handoff_from=row["handoff_from_id"],
            prompt=row["prompt"],
            inputs=row["inputs"] if row["inputs"] is not None else {},
            outputs=row["outputs"] if row["outputs"] is not None else [],
            claimed_by=row["claimed_by"],
            lease_expires_at=row["lease_expires_at"],
            token_count=row["token_count"],
            created_at=row["created_at"],
            started_at=row["started_at"],
            completed_at=row["completed_at"],
            continuation_of=row["scale_root"],
            reasoning_summary=row["reasoning_summary"],
        )
    ids = None if task_ids is None else list(records)
    deps = Depends.objects.order_by("from_task_id", "to_task_id").values_list(
        "from_task_id", "to_task_id"
    )
    for from_id, to_id in _filtered(deps, "from_task_id", ids):
        if from_id in records:
            records[from_id].depends_on.append(to_id)
    notes = HandoffNote.objects.order_by("id").values_list(
        "from_task_id",
        "to_task_id",
        "note",
        "reason",
        "handoff_type",
        "mode",
        "token_count",
        "author",
        "created_at",
    )
    for row in _filtered(notes, "from_task_id", ids):
        if row[0] in records:
            records[row[0]].notes.append(dict(zip(NOTE_KEYS, row[1:], strict=True)))
    steps = TraceStep.objects.order_by("id").values_list("task_id", *STEP_KEYS)
    for row in _filtered(steps, "task_id", ids):
        if row[0] in records:
            records[row[0]].steps.append(dict(zip(STEP_KEYS, row[1:], strict=True)))
    thoughts = Thought.objects.order_by("id").values_list("task_id", *THOUGHT_KEYS)
    for row in _filtered(thoughts, "task_id", ids):
        if row[0] in records:
            records[row[0]].thoughts.append(dict(zip(THOUGHT_KEYS, row[1:], strict=True)))
    return records, versions


# Reading a directory -------------------------------------------------------------------------


def _describe(value):
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return repr(value)
    return {dict: "a mapping", list: "a list"}.get(type(value), f"a {type(value).__name__}")


def _text_problem(value):
    """Return why ``value`` cannot be stored as text, or None."""
    if "\x00" in value:
        return "contains a NUL character, which the database cannot store"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate that is not valid Unicode"
    return None


def _json_problem(value):
    """Return why ``value`` is not plain JSON data, or None."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            why = _text_problem(item)
            if why:
                return why
        elif item is None or isinstance(item, bool | int):
            continue
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"{item!r} is not a JSON number"
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str):
                    return f"the key {_describe(key)} is not a string"
                stack.append(key)
                stack.append(sub)
        else:
            return f"{_describe(item)} is not JSON data"
    return None


def parse_time(value):
    """Return ``value`` (ISO 8601, naive meaning UTC) as an aware UTC datetime."""
    if not isinstance(value, str):
        raise ValueError
    parsed = datetime.fromisoformat(value.strip())
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


class _Fields:
    """Typed access to one YAML mapping that records a Problem for each bad value."""

    def __init__(self, reader, file, data, node, *, label=""):
        self.reader, self.file, self.data, self.node, self.label = reader, file, data, node, label

    def problem(self, key, message):
        self.reader.add(
            self.file, _key_line(self.node, key), self.label + key if key else None, message
        )

    def unknown(self, allowed, ignored=()):
        for key in self.data:
            if key in ignored:
                continue
            if not isinstance(key, str) or key not in allowed:
                self.problem(str(key), f"unknown field (known: {', '.join(allowed)})")

    def has(self, key):
        return key in self.data

    def text(self, key, *, default="", required=False, max_length=None, nullable=False):
        if key not in self.data or (nullable and self.data[key] is None):
            if required:
                self.problem(key, "is required")
            return default
        value = self.data[key]
        if not isinstance(value, str):
            hint = f" (quote it: '{value}')" if isinstance(value, int | float) else ""
            self.problem(key, f"expected text, got {_describe(value)}{hint}")
            return default
        why = _text_problem(value)
        if why:
            self.problem(key, why)
            return default
        if required and not value.strip():
            self.problem(key, "must not be empty")
        if max_length is not None and len(value) > max_length:
            self.problem(key, f"is {len(value)} characters long; the limit is {max_length}")
            return default
        return value

    def integer(self, key, *, default=0, minimum=-INT_MAX - 1, nullable=False):
        if key not in self.data or (nullable and self.data[key] is None):
            return None if nullable else default
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(key, f"expected a whole number, got {_describe(value)}")
            return default
        if not minimum <= value <= INT_MAX:
            self.problem(key, f"{value} is out of range ({minimum} to {INT_MAX})")
            return default
        return value

    def choice(self, key, choices, *, default):
        if key not in self.data:
            return default
        value = self.data[key]
        if value not in choices:
            self.problem(key, f"{_describe(value)} is not one of {', '.join(choices)}")
            return default
        return value

    def task_id(self, key, *, nullable=True):
        value = self.text(key, default=None, nullable=nullable)
        if value is not None and not TASK_ID_RE.match(value):
            self.problem(key, f"{_describe(value)} is not a valid task id")
            return None
        return value

    def time(self, key, *, default=None):
        if key not in self.data or self.data[key] is None:
            return default
        value = self.data[key]
        try:
            return parse_time(value)
        except (ValueError, TypeError, OverflowError):
            self.problem(
                key, f"{_describe(value)} is not an ISO 8601 timestamp (e.g. 2026-11-20T09:00:00Z)"
            )
            return default


class _Reader:
    """Read a directory into records, collecting every problem instead of stopping."""

    def __init__(self, root, *, now):
        self.root = Path(root)
        self.now = now
        self.problems = []
        self.max_bytes = _setting("PODBOARD_YAML_MAX_BYTES", 2 * 1024 * 1024)
        self.references = []  # (file, line, field, referenced id)
        self.dep_lines = {}  # task id -> (file, line) of its depends_on
        self.omitted_created_at = set()

    def add(self, file, line, field, message):
        self.problems.append(Problem(file, line, field, message))

    def read_bytes(self, rel):
        path = self.root / rel
        try:
            size = path.stat().st_size
            if size > self.max_bytes:
                self.add(
                    rel,
                    None,
                    None,
                    f"is {size} bytes; the limit is {self.max_bytes} (PODBOARD_YAML_MAX_BYTES)",
                )
                return None
            with path.open("rb") as fh:
                raw = fh.read(self.max_bytes + 1)
        except OSError as exc:
            self.add(rel, None, None, f"cannot be read: {exc.strerror or exc}")
            return None
        if len(raw) > self.max_bytes:
            self.add(rel, None, None, f"is larger than the limit of {self.max_bytes} bytes")
            return None
        return raw

    def read_text(self, rel):
        raw = self.read_bytes(rel)
        if raw is None:
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            self.add(
                rel,
                line,
                None,
                f"is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
            )
            return None

    def load(self, rel):
        """Return ``(data, node, ok)`` for the YAML file ``rel``."""
        text = self.read_text(rel)
        if text is None:
            return None, None, False
        try:
            data, node = parse_yaml(text)
        except _Refused as exc:
            self.add(rel, exc.line, None, exc.message)
            return None, None, False
        return data, node, True

    # pods.yaml

    def read_pods(self):
        rel = "pods.yaml"
        if not (self.root / rel).is_file():
            return []
        data, node, ok = self.load(rel)
        if not ok or data is None:
            return []
        if not isinstance(data, list):
            self.add(
                rel, _key_line(node, None), None, f"expected a list of pods, got {_describe(data)}"
            )
            return []
        pods, seen = [], set()
        for index, item in enumerate(data):
            item_node = _item_node(node, index)
            if not isinstance(item, dict):
                self.add(
                    rel,
                    _key_line(item_node, None),
                    None,
                    f"expected a pod mapping, got {_describe(item)}",
                )
                continue
            f = _Fields(self, rel, item, item_node)
            f.unknown(POD_KEYS)
            name = f.text("name", required=True, default=None)
            if name is not None and not POD_NAME_RE.match(name):
                f.problem(
                    "name",
                    f"{_describe(name)} is not a valid pod name (a letter, then "
                    "up to 63 letters, digits, '_' or '-')",
                )
                name = None
            pod = PodRecord(
                name=name or "",
                description=f.text("description"),
                order=f.integer("order"),
                wip_limit=f.integer("wip_limit", minimum=0, nullable=True),
            )
            if name in seen:
                f.problem("name", f"the pod {name} is listed twice")
            elif name:
                seen.add(name)
                pods.append(pod)
        return pods

    # tasks/<id>/

    def read_task(self, dirname):
        base = f"tasks/{dirname}"
        task_dir = self.root / "tasks" / dirname
        present = set()
        for entry in sorted(os.listdir(task_dir)):
            if entry.startswith("."):
                continue
            if entry not in TASK_FILES or not (task_dir / entry).is_file():
                self.add(
                    f"{base}/{entry}",
                    None,
                    None,
                    f"unexpected {'directory' if (task_dir / entry).is_dir() else 'file'} "
                    f"(a task directory holds {', '.join(TASK_FILES)})",
                )
                continue
            present.add(entry)
        if TASK_FILE not in present:
            self.add(f"{base}/{TASK_FILE}", None, None, "is missing (each task needs one)")
            return None
        rel = f"{base}/{TASK_FILE}"
        data, node, ok = self.load(rel)
        if not ok:
            return None
        if not isinstance(data, dict):
            self.add(
                rel,
                _key_line(node, None),
                None,
                f"expected a mapping of task fields, got {_describe(data)}",
            )
            return None
        f = _Fields(self, rel, data, node)
        f.unknown(TASK_KEYS, IGNORED_TASK_KEYS)
        task_id = f.task_id("id", nullable=False)
        if not f.has("id"):
            f.problem("id", "is required")
        if task_id is not None and task_id != dirname:
            f.problem("id", f"{task_id!r} does not match its directory name {dirname!r}")
        record = TaskRecord(id=task_id or dirname)
        record.title = f.text("title", required=True, max_length=300)
        record.description = f.text("description")
        pod = f.text("pod_owner", required=True, default="")
        if pod and not POD_NAME_RE.match(pod):
            f.problem("pod_owner", f"{_describe(pod)} is not a valid pod name")
        record.pod_owner = pod
        record.status = f.choice("status", Status.values, default=Status.READY.value)
        record.task_type = f.text("task_type", max_length=64)
        record.priority = f.integer("priority")
        record.handoff_mode = f.choice(
            "handoff_mode", HandoffMode.values, default=HandoffMode.ASYNC.value
        )
        record.depends_on = self._depends_on(f, rel, node, record.id)
        record.handoff_from = f.task_id("handoff_from")
        if record.handoff_from is not None:
            if record.handoff_from == record.id:
                f.problem("handoff_from", "a task cannot carry its own baton")
            else:
                self.references.append(
                    (rel, _key_line(node, "handoff_from"), "handoff_from", record.handoff_from)
                )
        record.inputs = self._inputs(f)
        record.outputs = self._outputs(f, _value_node(node, "outputs"))
        record.claimed_by = f.text("claimed_by", max_length=128)
        record.lease_expires_at = f.time("lease_expires_at")
        record.token_count = f.integer("token_count", minimum=0)
        record.created_at = f.time("created_at")
        if record.created_at is None:
            self.omitted_created_at.add(record.id)
            record.created_at = self.now
        record.started_at = f.time("started_at")
        record.completed_at = f.time("completed_at")
        continuation_of = f.task_id("continuation_of")
        record.continuation_of = continuation_of or ""
        record.prompt = f.text("prompt")
        if PROMPT_FILE in present:
            if f.has("prompt"):
                f.problem("prompt", f"is given both here and in {PROMPT_FILE}; keep one")
            text = self.read_text(f"{base}/{PROMPT_FILE}")
            if text is not None:
                why = _text_problem(text)
                if why:
                    self.add(f"{base}/{PROMPT_FILE}", None, None, why)
                record.prompt = text
        if NOTES_FILE in present:
            record.notes = self._notes(f"{base}/{NOTES_FILE}", record.id)
        if TRACE_FILE in present:
            record.reasoning_summary, record.steps = self._trace(f"{base}/{TRACE_FILE}")
        if THOUGHTS_FILE in present:
            record.thoughts = self._thoughts(f"{base}/{THOUGHTS_FILE}")
        return record

    def _depends_on(self, f, rel, node, task_id):
        value = f.data.get("depends_on")
        if value is None:
            return []
        if not isinstance(value, list):
            f.problem("depends_on", f"expected a list of task ids, got {_describe(value)}")
            return []
        line = _key_line(node, "depends_on")
        self.dep_lines[task_id] = (rel, line)
        deps = []
        for dep in value:
            if not isinstance(dep, str) or not TASK_ID_RE.match(dep):
                f.problem("depends_on", f"{_describe(dep)} is not a valid task id")
            elif dep in deps:
                f.problem("depends_on", f"{dep} is listed twice")
            else:
                deps.append(dep)
                if dep != task_id:  # a self-dependency is reported as a cycle
                    self.references.append((rel, line, "depends_on", dep))
        return sorted(deps)

    def _inputs(self, f):
        value = f.data.get("inputs")
        if value is None:
            return {}
        if not isinstance(value, dict):
            f.problem("inputs", f"expected a mapping, got {_describe(value)}")
            return {}
        why = _json_problem(value)
        if why:
            f.problem("inputs", why)
            return {}
        return value

    def _outputs(self, f, node):
        value = f.data.get("outputs")
        if value is None:
            return []
        shape = "a list of {name, uri, summary}"
        if not isinstance(value, list):
            f.problem("outputs", f"expected {shape}, got {_describe(value)}")
            return []
        outputs = []
        for index, item in enumerate(value):
            item_f = _Fields(self, f.file, item, _item_node(node, index), label="outputs: ")
            if not isinstance(item, dict):
                item_f.problem("", f"expected {shape}, got {_describe(item)}")
                continue
            item_f.unknown(OUTPUT_KEYS)
            output = {}
            for key in OUTPUT_KEYS:
                if key in item:
                    output[key] = item_f.text(key)
            outputs.append(output)
        return outputs

    def _list_file(self, rel, what):
        data, node, ok = self.load(rel)
        if not ok or data is None:
            return [], node
        if not isinstance(data, list):
            self.add(
                rel,
                _key_line(node, None),
                None,
                f"expected a list of {what}, got {_describe(data)}",
            )
            return [], node
        return data, node

    def _items(self, rel, data, node, allowed, what):
        for index, item in enumerate(data):
            item_node = _item_node(node, index)
            if not isinstance(item, dict):
                self.add(
                    rel,
                    _key_line(item_node, None),
                    None,
                    f"expected a {what} mapping, got {_describe(item)}",
                )
                continue
            f = _Fields(self, rel, item, item_node)
            f.unknown(allowed)
            yield index, f

    def _notes(self, rel, task_id):
        data, node = self._list_file(rel, "handoff notes")
        notes = []
        for _, f in self._items(rel, data, node, (*NOTE_KEYS, "from"), "handoff note"):
            if f.has("from") and f.data["from"] != task_id:
                f.problem(
                    "from",
                    f"{_describe(f.data['from'])} is not {task_id}: this file "
                    "holds the notes that task wrote",
                )
            to = f.task_id("to")
            if to is not None and to != task_id:
                self.references.append((rel, _key_line(f.node, "to"), "to", to))
            notes.append(
                {
                    "to": to,
                    "note": f.text("note"),
                    "reason": f.text("reason", default="completed", max_length=64),
                    "handoff_type": f.choice(
                        "handoff_type", HandoffType.values, default=HandoffType.NORMAL.value
                    ),
                    "mode": f.choice("mode", ResolvedMode.values, default=ResolvedMode.ASYNC.value),
                    "token_count": f.integer("token_count", minimum=0),
                    "author": f.text("author", max_length=150),
                    "created_at": f.time("created_at", default=self.now),
                }
            )
        return notes

    def _trace(self, rel):
        data, node, ok = self.load(rel)
        if not ok or data is None:
            return "", []
        if not isinstance(data, dict):
            self.add(
                rel,
                _key_line(node, None),
                None,
                f"expected a mapping with summary and steps, got {_describe(data)}",
            )
            return "", []
        f = _Fields(self, rel, data, node)
        f.unknown(("summary", "steps"))
        summary = f.text("summary")
        raw_steps = data.get("steps")
        if raw_steps is None:
            return summary, []
        if not isinstance(raw_steps, list):
            f.problem("steps", f"expected a list of steps, got {_describe(raw_steps)}")
            return summary, []
        steps = []
        steps_node = _value_node(node, "steps")
        for index, step in self._items(rel, raw_steps, steps_node, STEP_KEYS, "step"):
            steps.append(
                {
                    "step": step.integer("step", default=index + 1, minimum=0),
                    "action": step.text("action"),
                    "rationale": step.text("rationale"),
                    "tokens": step.integer("tokens", minimum=0),
                    "at": step.time("at", default=self.now),
                }
            )
        return summary, steps

    def _thoughts(self, rel):
        data, node = self._list_file(rel, "thoughts")
        thoughts = []
        for index, f in self._items(rel, data, node, THOUGHT_KEYS, "thought"):
            thoughts.append(
                {
                    "step": f.integer("step", default=index + 1, minimum=0),
                    "thought": f.text("thought"),
                    "at": f.time("at", default=self.now),
                }
            )
        return thoughts

    # the whole directory

    def read(self, progress=None):
        if not self.root.is_dir():
            self.add(str(self.root), None, None, "is not a directory")
            return [], []
        pods = self.read_pods()
        tasks_dir = self.root / "tasks"
        if not tasks_dir.is_dir():
            if not (self.root / "pods.yaml").is_file():
                self.add("tasks", None, None, "is missing (expected tasks/<id>/task.yaml)")
            return pods, []
        names = sorted(n for n in os.listdir(tasks_dir) if not n.startswith("."))
        records, where = [], {}
        for done, name in enumerate(names, 1):
            if not (tasks_dir / name).is_dir():
                self.add(
                    f"tasks/{name}",
                    None,
                    None,
                    "unexpected file (tasks/ holds one directory per task)",
                )
                continue
            if not TASK_ID_RE.match(name):
                self.add(
                    f"tasks/{name}",
                    None,
                    None,
                    "is not a valid task id, so it cannot name a task directory",
                )
                continue
            record = self.read_task(name)
            if record is not None:
                if record.id in where:
                    self.add(
                        f"tasks/{name}/{TASK_FILE}",
                        _key_line(None, "id"),
                        "id",
                        f"duplicate id {record.id} (also in {where[record.id]})",
                    )
                else:
                    where[record.id] = f"tasks/{name}/{TASK_FILE}"
                    records.append(record)
            if progress and (done % 200 == 0 or done == len(names)):
                progress("read", done, len(names))
        return pods, records


# The plan ------------------------------------------------------------------------------------


class ImportPlan:
    """A checked directory, ready to ``apply``: its pods, its tasks, and what would change."""

    def __init__(self, *, root, pods, records, references, dep_lines, omitted_created_at):
        self.root = root
        self.pods = pods
        self.records = {r.id: r for r in records}
        self._references = references
        self._dep_lines = dep_lines
        self._omitted_created_at = omitted_created_at
        self.created, self.updated, self.unchanged = [], [], []
        self.pods_created, self.pods_updated = [], []
        self._versions = {}

    def summary(self):
        """Return ``{created, updated, unchanged, pods_created, pods_updated}`` (sorted ids)."""
        return {
            "created": list(self.created),
            "updated": list(self.updated),
            "unchanged": list(self.unchanged),
            "pods_created": list(self.pods_created),
            "pods_updated": list(self.pods_updated),
        }

    def check_database(self, *, lock=False):
        """Return the problems only the database can reveal, and work out what would change."""
        problems = self._missing_references() + self._cycles()
        if problems:
            return problems
        existing, self._versions = load_records(list(self.records), lock=lock)
        self.created, self.updated, self.unchanged = [], [], []
        for task_id in sorted(self.records):
            record = self.records[task_id]
            current = existing.get(task_id)
            if current is None:
                self.created.append(task_id)
                continue
            if task_id in self._omitted_created_at:
                record.created_at = current.created_at
            same = current.fingerprint() == record.fingerprint()
            (self.unchanged if same else self.updated).append(task_id)
        known = {p.name: p for p in _pod_records()}
        wanted = {p.name: p for p in self.pods}
        for record in self.records.values():
            wanted.setdefault(record.pod_owner, PodRecord(name=record.pod_owner))
        self.pods_created = sorted(n for n in wanted if n and n not in known)
        self.pods_updated = sorted(
            p.name for p in self.pods if p.name in known and known[p.name] != p
        )
        return []

    def _missing_references(self):
        inside = set(self.records)
        outside = {ref for *_, ref in self._references if ref not in inside}
        found = set()
        for chunk in _chunks(sorted(outside)):
            found.update(Task.objects.filter(pk__in=chunk).values_list("pk", flat=True))
        return [
            Problem(file, line, name, f"{ref} is neither in this directory nor in the database")
            for file, line, name, ref in self._references
            if ref not in inside and ref not in found
        ]

    def _cycles(self):
        graph = {task_id: list(r.depends_on) for task_id, r in self.records.items()}
        frontier = {d for deps in graph.values() for d in deps if d not in graph}
        while frontier:
            for node in frontier:
                graph[node] = []
            rows = []
            for chunk in _chunks(sorted(frontier)):
                rows += Depends.objects.filter(from_task_id__in=chunk).values_list(
                    "from_task_id", "to_task_id"
                )
            nxt = set()
            for src, dst in rows:
                graph[src].append(dst)
                if dst not in graph:
                    nxt.add(dst)
            frontier = nxt
        problems, seen = [], set()
        for cycle in _find_cycles(graph, sorted(self.records)):
            members = frozenset(cycle)
            if members in seen:
                continue
            seen.add(members)
            # Start the path at a task of this directory: that is the file to fix.
            start = next(i for i, t in enumerate(cycle[:-1]) if t in self.records)
            path = cycle[start:-1] + cycle[:start] + [cycle[start]]
            file, line = self._dep_lines.get(path[0], (f"tasks/{path[0]}/{TASK_FILE}", None))
            problems.append(
                Problem(file, line, "depends_on", f"makes a dependency cycle: {' → '.join(path)}")
            )
        return problems


def _find_cycles(graph, starts):
    """Yield each cycle found by a depth-first walk, as ``[a, b, …, a]``."""
    colour, position = {}, {}
    for start in starts:
        if start in colour:
            continue
        path = [start]
        position[start] = 0
        colour[start] = 1
        stack = [iter(graph.get(start, ()))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                done = path.pop()
                colour[done] = 2
                del position[done]
                stack.pop()
                continue
            state = colour.get(nxt)
            if state is None:
                colour[nxt] = 1
                position[nxt] = len(path)
                path.append(nxt)
                stack.append(iter(graph.get(nxt, ())))
            elif state == 1:
                yield path[position[nxt] :] + [nxt]


def _pod_records():
    return [
        PodRecord(name=p.name, description=p.description, order=p.order, wip_limit=p.wip_limit)
        for p in Pod.objects.all()
    ]


def read_directory(root, *, progress=None):
    """Load and check the whole directory at ``root``; return an ``ImportPlan``.

    Raise ``ImportErrors`` listing every problem; nothing is written either way.
    """
    reader = _Reader(root, now=timezone.now())
    pods, records = reader.read(progress)
    plan = ImportPlan(
        root=Path(root),
        pods=pods,
        records=records,
        references=reader.references,
        dep_lines=reader.dep_lines,
        omitted_created_at=reader.omitted_created_at,
    )
    problems = list(reader.problems)
    problems += plan.check_database()
    if problems:
        raise ImportErrors(problems)
    return plan


# Writing a plan ------------------------------------------------------------------------------

_TASK_COLUMNS = (
    "title",
    "description",
    "pod_owner",
    "status",
    "task_type",
    "priority",
    "handoff_mode",
    "handoff_from",
    "prompt",
    "inputs",
    "outputs",
    "claimed_by",
    "lease_expires_at",
    "token_count",
    "created_at",
    "started_at",
    "completed_at",
    "scale_root",
    "reasoning_summary",
    "version",
    "updated_at",
)


def _update_tasks(tasks):
    """Write every column of ``tasks`` with one prepared UPDATE run for all rows.

    ``bulk_update`` builds a CASE expression per column and row in Python, which takes minutes
    for ten thousand tasks; ``executemany`` takes seconds.
    """
    if not tasks:
        return
    connection = transaction.get_connection()
    fields = [Task._meta.get_field(name) for name in _TASK_COLUMNS]
    quote = connection.ops.quote_name
    sql = (
        f"UPDATE {quote(Task._meta.db_table)} SET "
        + ", ".join(f"{quote(f.column)} = %s" for f in fields)
        + f" WHERE {quote(Task._meta.pk.column)} = %s"
    )
    rows = [
        [f.get_db_prep_save(getattr(task, f.attname), connection) for f in fields] + [task.pk]
        for task in tasks
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def apply(plan, *, actor="import", progress=None):
    """Write ``plan`` in one transaction and announce it; return its summary."""
    with transaction.atomic():
        problems = plan.check_database(lock=True)
        if problems:
            raise ImportErrors(problems)
        _write_pods(plan)
        pod_ids = dict(Pod.objects.values_list("name", "id"))
        now = timezone.now()
        changed = plan.created + plan.updated
        new_rows, updated_rows = [], []
        for task_id in changed:
            record = plan.records[task_id]
            task = Task(
                id=task_id,
                title=record.title,
                description=record.description,
                pod_owner_id=pod_ids[record.pod_owner],
                status=record.status,
                task_type=record.task_type,
                priority=record.priority,
                handoff_mode=record.handoff_mode,
                handoff_from_id=record.handoff_from,
                prompt=record.prompt,
                inputs=record.inputs,
                outputs=record.outputs,
                claimed_by=record.claimed_by,
                lease_expires_at=record.lease_expires_at,
                token_count=record.token_count,
                created_at=record.created_at,
                started_at=record.started_at,
                completed_at=record.completed_at,
                scale_root=record.continuation_of,
                reasoning_summary=record.reasoning_summary,
                version=plan._versions.get(task_id, 0) + 1,
                updated_at=now,
            )
            (updated_rows if task_id in plan._versions else new_rows).append(task)
        Task.objects.bulk_create(new_rows, batch_size=500)
        if updated_rows:
            _update_tasks(updated_rows)
            for chunk in _chunks(plan.updated):
                Depends.objects.filter(from_task_id__in=chunk).delete()
                HandoffNote.objects.filter(from_task_id__in=chunk).delete()
                TraceStep.objects.filter(task_id__in=chunk).delete()
                Thought.objects.filter(task_id__in=chunk).delete()
        if progress:
            progress("write", len(changed) // 2, len(changed))
        deps, notes, steps, thoughts = [], [], [], []
        for task_id in changed:
            record = plan.records[task_id]
            deps += [Depends(from_task_id=task_id, to_task_id=d) for d in record.depends_on]
            notes += [
                HandoffNote(
                    from_task_id=task_id,
                    to_task_id=n["to"],
                    note=n["note"],
                    reason=n["reason"],
                    handoff_type=n["handoff_type"],
                    mode=n["mode"],
                    token_count=n["token_count"],
                    author=n["author"],
                    created_at=n["created_at"],
                )
                for n in record.notes
            ]
            steps += [TraceStep(task_id=task_id, **s) for s in record.steps]
            thoughts += [Thought(task_id=task_id, **t) for t in record.thoughts]
        Depends.objects.bulk_create(deps, batch_size=1000)
        HandoffNote.objects.bulk_create(notes, batch_size=1000)
        TraceStep.objects.bulk_create(steps, batch_size=1000)
        Thought.objects.bulk_create(thoughts, batch_size=1000)
        if changed:
            workflow.record_import(task_ids=changed, actor=actor, created=plan.created)
        if progress:
            progress("write", len(changed), len(changed))
    return plan.summary()


def _write_pods(plan):
    wanted = {p.name: p for p in plan.pods}
    for record in plan.records.values():
        wanted.setdefault(record.pod_owner, PodRecord(name=record.pod_owner))
    Pod.objects.bulk_create(
        [
            Pod(
                name=n,
                description=wanted[n].description,
                order=wanted[n].order,
                wip_limit=wanted[n].wip_limit,
            )
            for n in plan.pods_created
        ]
    )
    for name in plan.pods_updated:
        pod = wanted[name]
        Pod.objects.filter(name=name).update(
            description=pod.description, order=pod.order, wip_limit=pod.wip_limit
        )


def import_directory(root, *, actor="import", dry_run=False, progress=None):
    """Check and import the directory at ``root``; return the summary (nothing written on a
    dry run or on any problem, which raises ``ImportErrors``)."""
    plan = read_directory(root, progress=progress)
    if dry_run:
        return plan.summary()
    return apply(plan, actor=actor, progress=progress)


# Export --------------------------------------------------------------------------------------


def export_directory(root, *, task_ids=None, progress=None):
    """Write tasks (all, or ``task_ids``) and their pods under ``root``; return the task count."""
    records, _ = load_records(None if task_ids is None else sorted(set(task_ids)))
    pods = _pod_records()
    if task_ids is not None:
        used = {r.pod_owner for r in records.values()}
        pods = [p for p in pods if p.name in used]
    return write_directory(
        root, pods=pods, records=[records[k] for k in sorted(records)], progress=progress
    )


# Zip files (for the web UI) ------------------------------------------------------------------

ZIP_FOLDER = "podboard-tasks"
_ZIP_TIME = (2026, 1, 1, 0, 0, 0)


def export_zip(task_ids=None):
    """Return a zip of the export, in a ``podboard-tasks/`` folder, byte-stable for equal data."""
    with tempfile.TemporaryDirectory(prefix="podboard-export-") as tmp:
        export_directory(tmp, task_ids=task_ids)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(Path(tmp).rglob("*")):
                if path.is_file():
                    rel = path.relative_to(tmp).as_posix()
                    info = zipfile.ZipInfo(f"{ZIP_FOLDER}/{rel}", date_time=_ZIP_TIME)
                    info.compress_type = zipfile.ZIP_DEFLATED
                    info.external_attr = 0o644 << 16
                    archive.writestr(info, path.read_bytes())
        return buffer.getvalue()


def _zip_problem(name, message):
    return Problem(name, None, None, message)


def _safe_parts(name):
    """Return the path parts of a zip entry, or None when it could escape the target."""
    if not name or name.startswith(("/", "\\")) or "\\" in name or re.match(r"^[A-Za-z]:", name):
        return None
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if any(p == ".." for p in parts) or not parts:
        return None
    return parts


def import_zip(fileobj, *, actor, dry_run=False):
    """Import a zip of a task directory (at its top or in one top-level folder).

    Refuse entries that could escape (absolute, ``..``, symlinks), encrypted entries, and zips
    with too many files or too many bytes uncompressed; then import as ``import_directory``.
    """
    max_files = _setting("PODBOARD_ZIP_MAX_FILES", 100_000)
    max_total = _setting("PODBOARD_ZIP_MAX_BYTES", 256 * 1024 * 1024)
    max_file = _setting("PODBOARD_YAML_MAX_BYTES", 2 * 1024 * 1024)
    try:
        archive = zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise ImportErrors([_zip_problem("upload", "is not a zip file")]) from None
    with archive:
        infos = archive.infolist()
        if len(infos) > max_files:
            raise ImportErrors(
                [_zip_problem("upload", f"holds {len(infos)} entries; the limit is {max_files}")]
            )
        problems, entries = [], []
        for info in infos:
            parts = _safe_parts(info.filename)
            mode = info.external_attr >> 16
            if parts is None:
                problems.append(
                    _zip_problem(
                        info.filename, "refused: the path is absolute or leaves the archive ('..')"
                    )
                )
            elif stat.S_ISLNK(mode):
                problems.append(
                    _zip_problem(info.filename, "refused: symbolic links are not allowed")
                )
            elif info.flag_bits & 0x1:
                problems.append(_zip_problem(info.filename, "refused: the entry is encrypted"))
            elif not info.is_dir():
                if parts[0] == "__MACOSX" or parts[-1] == ".DS_Store":
                    continue
                if info.file_size > max_file:
                    problems.append(
                        _zip_problem(
                            info.filename,
                            f"is {info.file_size} bytes; the "
                            f"limit is {max_file} (PODBOARD_YAML_MAX_BYTES)",
                        )
                    )
                entries.append((info, parts))
        total = sum(info.file_size for info, _ in entries)
        if total > max_total:
            problems.append(
                _zip_problem(
                    "upload",
                    f"expands to {total} bytes; the limit is {max_total} (PODBOARD_ZIP_MAX_BYTES)",
                )
            )
        if problems:
            raise ImportErrors(problems)
        tops = {parts[0] for _, parts in entries}
        strip = (
            len(tops) == 1
            and not any(len(parts) == 1 for _, parts in entries)
            and next(iter(tops)) not in ("tasks", "pods.yaml")
        )
        with tempfile.TemporaryDirectory(prefix="podboard-import-") as tmp:
            base = Path(tmp).resolve()
            for info, parts in entries:
                parts = parts[1:] if strip else parts
                target = base.joinpath(*parts).resolve()
                if base not in target.parents:
                    raise ImportErrors([_zip_problem(info.filename, "refused: leaves the archive")])
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src:
                    # ZipExtFile stops at the declared size, so a lying header cannot
                    # make this read more than the checks above allowed.
                    target.write_bytes(src.read(max_file + 1))
            return import_directory(base, actor=actor, dry_run=dry_run)


# Terminal progress ---------------------------------------------------------------------------


class ProgressBar:
    """A one-line progress bar on ``stream`` for ``progress(stage, done, total)`` callbacks.

    Draw only when ``force`` is set or ``stream`` is a terminal, and only for ``minimum`` or
    more items, so small imports and piped output stay quiet.
    """

    WIDTH = 30

    def __init__(self, stream, *, force=False, minimum=200):
        isatty = getattr(stream, "isatty", lambda: False)
        self.stream, self.enabled, self.minimum = stream, force or isatty(), minimum
        self.drawn = False

    def __call__(self, stage, done, total):
        if not self.enabled or total < self.minimum:
            return
        filled = self.WIDTH * done // max(total, 1)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.stream.write(f"\r{stage:>6} [{bar}] {done}/{total}", ending="")
        self.stream.flush()
        self.drawn = True

    def close(self):
        if self.drawn:
            self.stream.write("")
            self.drawn = False
