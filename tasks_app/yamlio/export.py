"""Writing tasks as a directory, deterministically: export → import → export is byte-identical.

Stable key order (``records.TaskRecord``'s), multi-line text as literal blocks, ``inputs`` keys
sorted (PostgreSQL's jsonb does not keep key order, and the export must not depend on the
database), child rows in the order they were written.
"""

from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from ..shapes import iso
from .format import FlowList, dump_yaml, flow
from .records import (
    COMMENT_KEYS,
    COMMENTS_FILE,
    NOTE_KEYS,
    NOTES_FILE,
    OPTIONAL_KEYS,
    OUTPUT_KEYS,
    POD_DEFAULTS,
    PODS_FILE,
    PROMPT_FILE,
    STEP_KEYS,
    TASK_FIELDS,
    TASK_FILE,
    TASK_FILES,
    THOUGHT_KEYS,
    THOUGHTS_FILE,
    TRACE_FILE,
    load_records,
    pod_records,
)


def _plain(value):
    """Return ``value`` as it is written: timestamps in UTC ISO 8601, the rest as it is."""
    return iso(value) if isinstance(value, datetime) else value


def _sorted_json(value):
    if isinstance(value, dict):
        return {k: _sorted_json(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_json(v) for v in value]
    return value


def _ordered(mapping, keys):
    return {k: mapping[k] for k in keys if k in mapping} | {
        k: mapping[k] for k in sorted(mapping) if k not in keys
    }


def _task_value(name, value):
    if name == "depends_on":
        return FlowList(sorted(value))
    if name == "inputs":
        return flow(_sorted_json(value)) if value else {}
    if name == "outputs":
        return [flow(_ordered(o, OUTPUT_KEYS)) for o in value]
    return _plain(value)


def _items(items, keys, *, one_line):
    rows = [
        {k: _plain(item[k]) for k in keys if k not in OPTIONAL_KEYS or item.get(k)}
        for item in items
    ]
    return [flow(row) for row in rows] if one_line else rows


def task_files(record):
    """Return ``{filename: bytes}`` for ``record`` in export format (empty files left out)."""
    doc = {}
    for f in TASK_FIELDS:
        value = getattr(record, f.name)
        if f.metadata["yaml"] == "always" or (f.metadata["yaml"] == "if set" and value):
            doc[f.name] = _task_value(f.name, value)
    files = {TASK_FILE: dump_yaml(doc)}
    if record.prompt:
        files[PROMPT_FILE] = record.prompt.encode("utf-8")
    if record.notes:
        files[NOTES_FILE] = dump_yaml(_items(record.notes, NOTE_KEYS, one_line=False))
    if record.reasoning_summary or record.steps:
        trace = {"summary": record.reasoning_summary} if record.reasoning_summary else {}
        trace["steps"] = _items(record.steps, STEP_KEYS, one_line=True)
        files[TRACE_FILE] = dump_yaml(trace)
    if record.thoughts:
        files[THOUGHTS_FILE] = dump_yaml(_items(record.thoughts, THOUGHT_KEYS, one_line=True))
    if record.comments:
        files[COMMENTS_FILE] = dump_yaml(_items(record.comments, COMMENT_KEYS, one_line=False))
    return files


def pods_file(pods):
    return dump_yaml(
        [
            {k: v for k, v in asdict(p).items() if k not in POD_DEFAULTS or v != POD_DEFAULTS[k]}
            for p in pods
        ]
    )


def write_directory(root, *, pods, records, progress=None):
    """Write ``pods`` and ``records`` under ``root`` in export format; return the task count.

    Files of other tasks already under ``root/tasks`` are left alone; in a written task's
    directory, PodBoard's files that are now empty are removed so they cannot come back.
    """
    root = Path(root)
    tasks_dir = root / "tasks"
    tasks_dir.mkdir(parents=True, exist_ok=True)
    (root / PODS_FILE).write_bytes(pods_file(pods))
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


def export_directory(root, *, task_ids=None, progress=None):
    """Write tasks (all, or ``task_ids``) and their pods under ``root``; return the task count."""
    records, _ = load_records(None if task_ids is None else sorted(set(task_ids)))
    pods = pod_records()
    if task_ids is not None:
        used = {r.pod_owner for r in records.values()}
        pods = [p for p in pods if p.name in used]
    return write_directory(
        root, pods=pods, records=[records[k] for k in sorted(records)], progress=progress
    )
