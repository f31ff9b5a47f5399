"""Tasks and pods as plain records: the one description of how a task travels.

A record holds a task the way a directory holds it and the way the database holds it (plain
values, datetimes for timestamps), so reading, comparing (``fingerprint``) and writing share
one form. ``TaskRecord``'s fields are the field list, written once: each field says where it
stands in ``task.yaml`` (``yaml``) and which Task column holds it (``column``); the keys
``task.yaml`` accepts, the document export writes, and the columns read and written are all
derived from it. The rows a task writes beside itself (notes, trace steps, thoughts) are
described once in ``CHILDREN``.
"""

import hashlib
import json
from dataclasses import dataclass, field, fields, replace
from datetime import datetime

from ..graph import chunks
from ..models import Comment, HandoffMode, HandoffNote, Pod, Status, Task, Thought, TraceStep
from ..shapes import iso

Depends = Task.depends_on.through

TASK_FILE = "task.yaml"
PROMPT_FILE = "prompt.txt"
NOTES_FILE = "handoff_notes.yaml"
TRACE_FILE = "reasoning_trace.yaml"
THOUGHTS_FILE = "chain_of_thought.yaml"
COMMENTS_FILE = "comments.yaml"
TASK_FILES = (TASK_FILE, PROMPT_FILE, NOTES_FILE, TRACE_FILE, THOUGHTS_FILE, COMMENTS_FILE)
PODS_FILE = "pods.yaml"

# ``yaml``: "always" (written every time), "if set" (written when not empty), "read" (accepted
# in task.yaml but exported elsewhere: the prompt goes to prompt.txt), None (another file).
# ``column``: the Task field that holds the value, None when it is not one of Task's columns.


def _field(default, *, yaml="always", column=True):
    kind = {"default_factory": default} if default in (list, dict) else {"default": default}
    return field(**kind, metadata={"yaml": yaml, "column": column})


@dataclass
class TaskRecord:
    """One task and what travels with it, in ``task.yaml``'s order (DESIGN.md's example first)."""

    id: str = field(metadata={"yaml": "always", "column": True})
    title: str = _field("")
    pod_owner: str = _field("")  # by name; the column holds the pod's id
    status: str = _field(Status.READY.value)
    task_type: str = _field("")
    priority: int = _field(0)
    handoff_mode: str = _field(HandoffMode.ASYNC.value)
    depends_on: list = _field(list, column=None)
    handoff_from: str | None = _field(None)
    inputs: dict = _field(dict)
    outputs: list = _field(list)
    created_at: datetime | None = _field(None)
    description: str = _field("", yaml="if set")
    continuation_of: str = _field("", yaml="if set", column="scale_root")
    claimed_by: str = _field("", yaml="if set")
    token_count: int = _field(0, yaml="if set")
    lease_expires_at: datetime | None = _field(None, yaml="if set")
    started_at: datetime | None = _field(None, yaml="if set")
    completed_at: datetime | None = _field(None, yaml="if set")
    # The holder's open question to a person (``ask``) and when it was asked.
    question: str = _field("", yaml="if set")
    asked_at: datetime | None = _field(None, yaml="if set")
    prompt: str = _field("", yaml="read")
    reasoning_summary: str = _field("", yaml=None)
    notes: list = _field(list, yaml=None, column=None)
    steps: list = _field(list, yaml=None, column=None)
    thoughts: list = _field(list, yaml=None, column=None)
    comments: list = _field(list, yaml=None, column=None)

    def fingerprint(self):
        """Return a string equal for two records exactly when their data is equal."""
        return json.dumps(vars(self), sort_keys=True, default=iso, ensure_ascii=False)

    def digest(self, *, with_created_at=True):
        """Return 16 bytes standing for ``fingerprint()`` (``created_at`` left out unless
        ``with_created_at``): what an import keeps of a task's data between check and write.

        A 128-bit BLAKE2b digest: two different records share one by accident with odds far
        below those of a disk error.
        """
        record = self if with_created_at else replace(self, created_at=None)
        return hashlib.blake2b(record.fingerprint().encode(), digest_size=16).digest()


TASK_FIELDS = fields(TaskRecord)
# The keys task.yaml may hold (``version`` and ``blocked`` are read and ignored: the database
# owns the first and derives the second).
TASK_KEYS = tuple(f.name for f in TASK_FIELDS if f.metadata["yaml"])
IGNORED_TASK_KEYS = ("version", "blocked")
# Record field → Task field, for every value kept in Task's own row.
COLUMNS = {
    f.name: f.name if f.metadata["column"] is True else f.metadata["column"]
    for f in TASK_FIELDS
    if f.metadata["column"]
}


@dataclass
class PodRecord:
    name: str
    description: str = ""
    order: int = 0
    wip_limit: int | None = None
    review_required: bool = False
    reviewer: str | None = None  # a pod name
    paused: bool = False
    context_limit: int = 15_000
    webhook_url: str = ""  # never the secret


POD_KEYS = tuple(f.name for f in fields(PodRecord))
# Pod keys pods.yaml holds only when they differ from the default, so a directory written
# before a pod could have them reads (and exports) as it did.
POD_DEFAULTS = {
    "review_required": False,
    "reviewer": None,
    "paused": False,
    "context_limit": 15_000,
    "webhook_url": "",
}
OUTPUT_KEYS = ("name", "uri", "summary")

# The rows a task writes beside itself. Each entry: the record's list, the model, the column
# naming the task, and the keys of one item (file order) → the model's fields.
NOTE_KEYS = (
    "to",
    "note",
    "reason",
    "handoff_type",
    "mode",
    "token_count",
    "author",
    "author_pod",
    "created_at",
)
STEP_KEYS = ("step", "action", "rationale", "tokens", "author_pod", "at")
# Keys written only when set: the pod whose token wrote a note or step (none for a person).
OPTIONAL_KEYS = ("author_pod",)
THOUGHT_KEYS = ("step", "thought", "at")
# People's comments, pods' questions and the answers (``comments.yaml``), oldest first.
COMMENT_KEYS = ("kind", "body", "author", "created_at")
CHILDREN = (
    (
        "notes",
        HandoffNote,
        "from_task_id",
        {k: "to_task_id" if k == "to" else k for k in NOTE_KEYS},
    ),
    ("steps", TraceStep, "task_id", {k: k for k in STEP_KEYS}),
    ("thoughts", Thought, "task_id", {k: k for k in THOUGHT_KEYS}),
    ("comments", Comment, "task_id", {k: k for k in COMMENT_KEYS}),
)


def _lookup(column):
    """The ``values()`` name that reads ``column`` as a record holds it."""
    if column == "pod_owner":
        return "pod_owner__name"
    return Task._meta.get_field(column).attname


def task_row(record, *, pod_id, **extra):
    """Return an unsaved Task holding ``record``'s own fields (``extra``: version and such)."""
    values = {Task._meta.get_field(c).attname: getattr(record, n) for n, c in COLUMNS.items()}
    values["pod_owner_id"] = pod_id
    return Task(**values, **extra)


def dependency_rows(record):
    """Return the unsaved ``depends_on`` rows of ``record``."""
    return [Depends(from_task_id=record.id, to_task_id=d) for d in record.depends_on]


def child_rows(record):
    """Return ``{model: [unsaved rows]}`` for the notes, steps and thoughts ``record`` wrote."""
    rows = {}
    for name, model, owner, columns in CHILDREN:
        rows[model] = [
            model(
                **{owner: record.id},
                **{columns[k]: item.get(k, "") if k in OPTIONAL_KEYS else item[k] for k in columns},
            )
            for item in getattr(record, name)
        ]
    return rows


def _filtered(queryset, lookup, ids):
    """Yield rows of ``queryset`` for ``ids`` (all rows when ``ids`` is None), chunked."""
    if ids is None:
        yield from queryset
        return
    for chunk in chunks(ids):
        yield from queryset.filter(**{f"{lookup}__in": chunk})


def load_records(task_ids=None, *, lock=False):
    """Return ``({id: TaskRecord}, {id: version})`` for ``task_ids`` (every task when None),
    from the database; with ``lock``, the task rows stay locked until the transaction ends."""
    lookups = {name: _lookup(column) for name, column in COLUMNS.items()}
    tasks = Task.objects.order_by("id")
    if lock:
        tasks = tasks.select_for_update(of=("self",))
    records, versions = {}, {}
    for row in _filtered(tasks.values("version", *lookups.values()), "pk", task_ids):
        record = TaskRecord(**{name: row[lookup] for name, lookup in lookups.items()})
        records[record.id] = record
        versions[record.id] = row["version"]
    ids = None if task_ids is None else list(records)
    deps = Depends.objects.order_by("from_task_id", "to_task_id").values_list(
        "from_task_id", "to_task_id"
    )
    for from_id, to_id in _filtered(deps, "from_task_id", ids):
        if from_id in records:
            records[from_id].depends_on.append(to_id)
    # In the order they were written, so a file's order survives a round trip.
    for name, model, owner, columns in CHILDREN:
        rows = model.objects.order_by("id").values_list(owner, *columns.values())
        for owner_id, *values in _filtered(rows, owner, ids):
            if owner_id in records:
                getattr(records[owner_id], name).append(dict(zip(columns, values, strict=True)))
    return records, versions


def pod_records():
    """Return every pod as a ``PodRecord``, in the board's order."""
    return [
        PodRecord(
            name=p.name,
            description=p.description,
            order=p.order,
            wip_limit=p.wip_limit,
            review_required=p.review_required,
            reviewer=p.reviewer.name if p.reviewer_id else None,
            paused=p.paused,
            context_limit=p.context_limit,
            webhook_url=p.webhook_url,
        )
        for p in Pod.objects.select_related("reviewer")
    ]
