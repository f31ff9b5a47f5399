"""Reading a whole task directory one task at a time, keeping only what the checks need.

Parsed, a directory of 50,000 tasks (800 MB of files with their prompts, notes and traces) is
several hundred MB of records. An import reads each task once to check it and keeps a
``TaskEntry``: its id, its pod, its dependencies and a digest of its data; the record itself
is dropped as soon as it is checked. The checks that need every task (references, cycles,
which tasks changed) use the entries. Writing reads the changed tasks again, a chunk at a time
(``reread``), and refuses a task whose data is no longer the data that was checked.
"""

import os
import sys

from ..models import TASK_ID_RE
from .format import key_line
from .problems import ImportErrors, Problem
from .reader import Reader
from .records import PODS_FILE, TASK_FILE

PROGRESS_EVERY = 200  # tasks read between two progress calls


class TaskEntry:
    """What an import keeps of one task between its check and its write.

    ``digest`` stands for the task's data (``TaskRecord.digest``), without ``created_at``
    when the file omits it: a re-import then keeps the time the database has.
    """

    __slots__ = ("id", "pod_owner", "depends_on", "digest", "omits_created_at")

    def __init__(self, record, *, omits_created_at):
        # Interned: the ids recur as other tasks' dependencies and references.
        self.id = sys.intern(record.id)
        self.pod_owner = sys.intern(record.pod_owner)
        self.depends_on = tuple(sys.intern(d) for d in record.depends_on)
        self.omits_created_at = omits_created_at
        self.digest = record.digest(with_created_at=not omits_created_at)


def read_entries(reader, progress=None):
    """Read and check the directory of ``reader``, one task at a time; return ``(pods,
    {id: TaskEntry})`` in directory order. Problems are collected on ``reader``."""
    root = reader.root
    if not root.is_dir():
        reader.add(str(root), None, None, "is not a directory")
        return [], {}
    pods = reader.read_pods()
    tasks_dir = root / "tasks"
    if not tasks_dir.is_dir():
        if not (root / PODS_FILE).is_file():
            reader.add("tasks", None, None, "is missing (expected tasks/<id>/task.yaml)")
        return pods, {}
    names = sorted(n for n in os.listdir(tasks_dir) if not n.startswith("."))
    entries, where = {}, {}  # where: id → the directory that holds it
    for done, name in enumerate(names, 1):
        if not (tasks_dir / name).is_dir():
            reader.add(
                f"tasks/{name}", None, None, "unexpected file (tasks/ holds one directory per task)"
            )
        elif not TASK_ID_RE.match(name):
            reader.add(
                f"tasks/{name}",
                None,
                None,
                "is not a valid task id, so it cannot name a task directory",
            )
        else:
            seen = len(reader.references)
            record = reader.read_task(name)
            # A reference to a task already read is good; only the others wait for the end.
            reader.references[seen:] = [r for r in reader.references[seen:] if r[3] not in entries]
            if record is not None and record.id in where:
                reader.add(
                    f"tasks/{name}/{TASK_FILE}",
                    key_line(None, "id"),
                    "id",
                    f"duplicate id {record.id} (also in tasks/{where[record.id]}/{TASK_FILE})",
                )
            elif record is not None:
                where[record.id] = name
                omits = record.id in reader.omitted_created_at
                entries[record.id] = TaskEntry(record, omits_created_at=omits)
        if progress and (done % PROGRESS_EVERY == 0 or done == len(names)):
            progress("read", done, len(names))
    return pods, entries


def reread(root, *, now, entries, task_ids, created_at):
    """Return the records of ``task_ids``, read again from ``root`` as they were checked.

    ``now`` is the time the first reading gave omitted times; ``created_at`` holds the times
    kept from the database for tasks that omit theirs. Raise ``ImportErrors`` when a task is
    no longer what was checked (its files changed since): the caller's transaction then
    writes nothing.
    """
    reader = Reader(root, now=now)
    records = []
    for task_id in task_ids:
        entry = entries[task_id]
        record = reader.read_task(task_id)
        if (
            record is None
            or reader.problems
            or record.digest(with_created_at=not entry.omits_created_at) != entry.digest
        ):
            raise ImportErrors(
                [
                    Problem(
                        f"tasks/{task_id}",
                        None,
                        None,
                        "changed while it was being imported; nothing was imported",
                    )
                ]
            )
        if task_id in created_at:
            record.created_at = created_at[task_id]
        records.append(record)
    return records
