"""Reading a task directory into records, collecting every problem instead of stopping.

Layout (DESIGN.md, "YAML directory format")::

    <root>/pods.yaml                       optional list of {name, description, order, wip_limit, …}
    <root>/tasks/<id>/task.yaml            required; the task's fields
    <root>/tasks/<id>/prompt.txt           the prompt, verbatim (UTF-8)
    <root>/tasks/<id>/handoff_notes.yaml   the notes this task wrote
    <root>/tasks/<id>/reasoning_trace.yaml {summary, steps}
    <root>/tasks/<id>/chain_of_thought.yaml

The reader checks what one file can tell: YAML, types, ranges, unknown keys and files. What
needs the whole directory and the database (references, cycles) is ``plan.ImportPlan``'s job;
the reader hands it the references it saw (``references``, ``dep_lines``). Walking the whole
directory one task at a time is ``scan``'s.

Decisions beyond DESIGN.md:

- ``continuation_of`` (the model's ``scale_root``) is not checked for existence: it names the
  first task of a scale-out chain, which may live elsewhere.
- ``version`` and ``blocked`` are accepted in ``task.yaml`` and ignored. Every other unknown
  key, and every unknown file inside a task directory (hidden files aside), is refused.
- Values inside ``inputs``/``outputs`` must be JSON (string keys, finite numbers); YAML
  timestamps there stay the exact strings written.
- A task that omits ``created_at`` is noted (``omitted_created_at``): a re-import keeps the
  time the task already has.

Why one module of this size: the checks of one task directory read the same documents and
record problems the same way; splitting them would split one pass over a file.
"""

import os
import sys
from pathlib import Path

from ..models import (
    MAX_STEP,
    POD_NAME_RE,
    TASK_ID_RE,
    Comment,
    HandoffMode,
    HandoffType,
    ResolvedMode,
    Status,
)
from .fields import Fields, describe, json_problem, text_problem
from .format import Refused, item_node, key_line, limit, parse_yaml, value_node
from .problems import Problem
from .records import (
    COMMENT_KEYS,
    COMMENTS_FILE,
    IGNORED_TASK_KEYS,
    NOTE_KEYS,
    NOTES_FILE,
    OUTPUT_KEYS,
    POD_KEYS,
    PODS_FILE,
    PROMPT_FILE,
    STEP_KEYS,
    TASK_FILE,
    TASK_FILES,
    TASK_KEYS,
    THOUGHT_KEYS,
    THOUGHTS_FILE,
    TRACE_FILE,
    PodRecord,
    TaskRecord,
)


class Reader:
    """Read a directory into records, collecting every problem instead of stopping."""

    def __init__(self, root, *, now):
        self.root = Path(root)
        self.now = now
        self.problems = []
        self.max_bytes = limit("PODBOARD_YAML_MAX_BYTES", 2 * 1024 * 1024)
        self.references = []  # (file, line, field, referenced id)
        self.dep_lines = {}  # task id -> (file, line) of its depends_on
        self.omitted_created_at = set()
        self.reviewers = []  # (file, line, pod name) of each pods.yaml reviewer

    def add(self, file, line, field, message):
        self.problems.append(Problem(file, line, field, message))

    def refer(self, file, line, field, task_id):
        """Note that ``field`` in ``file`` names the task ``task_id`` (checked by the plan)."""
        # Interned: a directory names the same ids again and again, and this list is kept
        # for the whole directory.
        self.references.append((file, line, field, sys.intern(task_id)))

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
        except Refused as exc:
            self.add(rel, exc.line, None, exc.message)
            return None, None, False
        return data, node, True

    # pods.yaml

    def read_pods(self):
        rel = PODS_FILE
        if not (self.root / rel).is_file():
            return []
        data, node = self._list_file(rel, "pods")
        pods, seen = [], set()
        for _, f in self._items(rel, data, node, POD_KEYS, "pod"):
            name = f.text("name", required=True, default=None)
            if name is not None and not POD_NAME_RE.match(name):
                f.problem(
                    "name",
                    f"{describe(name)} is not a valid pod name (a letter, then "
                    "up to 63 letters, digits, '_' or '-')",
                )
                name = None
            reviewer = f.text("reviewer", default=None, nullable=True)
            if reviewer is not None and not POD_NAME_RE.match(reviewer):
                f.problem("reviewer", f"{describe(reviewer)} is not a valid pod name")
                reviewer = None
            elif reviewer is not None and reviewer == name:
                f.problem("reviewer", "a pod cannot review its own work")
                reviewer = None
            elif reviewer is not None:
                self.reviewers.append((rel, key_line(f.node, "reviewer"), reviewer))
            pod = PodRecord(
                name=name or "",
                description=f.text("description"),
                order=f.integer("order"),
                wip_limit=f.integer("wip_limit", minimum=0, nullable=True),
                review_required=f.boolean("review_required"),
                reviewer=reviewer,
                paused=f.boolean("paused"),
                context_limit=f.integer("context_limit", default=15_000, minimum=1),
                webhook_url=self._webhook_url(f),
            )
            if name in seen:
                f.problem("name", f"the pod {name} is listed twice")
            elif name:
                seen.add(name)
                pods.append(pod)
        return pods

    def _webhook_url(self, f):
        """Return the pod's ``webhook_url`` if PodBoard accepts it (``push.urls``), else ""."""
        from django.core.exceptions import ValidationError

        from ..push.urls import check_url

        url = f.text("webhook_url", max_length=500)
        if url:
            try:
                check_url(url)
            except ValidationError as exc:
                f.problem("webhook_url", " ".join(exc.messages))
                return ""
        return url

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
                key_line(node, None),
                None,
                f"expected a mapping of task fields, got {describe(data)}",
            )
            return None
        f = Fields(self.add, rel, data, node)
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
            f.problem("pod_owner", f"{describe(pod)} is not a valid pod name")
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
                self.refer(rel, key_line(node, "handoff_from"), "handoff_from", record.handoff_from)
        record.inputs = self._inputs(f)
        record.outputs = self._outputs(f, value_node(node, "outputs"))
        record.claimed_by = f.text("claimed_by", max_length=128)
        record.lease_expires_at = f.time("lease_expires_at")
        record.token_count = f.integer("token_count", minimum=0)
        record.created_at = f.time("created_at")
        if record.created_at is None:
            self.omitted_created_at.add(record.id)
            record.created_at = self.now
        record.started_at = f.time("started_at")
        record.completed_at = f.time("completed_at")
        record.question = f.text("question", max_length=20_000)
        record.asked_at = f.time("asked_at")
        if record.question and record.asked_at is None:
            record.asked_at = record.created_at  # an open question always has its time
        elif not record.question:
            record.asked_at = None
        continuation_of = f.task_id("continuation_of")
        record.continuation_of = continuation_of or ""
        record.prompt = f.text("prompt")
        if PROMPT_FILE in present:
            if f.has("prompt"):
                f.problem("prompt", f"is given both here and in {PROMPT_FILE}; keep one")
            text = self.read_text(f"{base}/{PROMPT_FILE}")
            if text is not None:
                why = text_problem(text)
                if why:
                    self.add(f"{base}/{PROMPT_FILE}", None, None, why)
                record.prompt = text
        if NOTES_FILE in present:
            record.notes = self._notes(f"{base}/{NOTES_FILE}", record.id)
        if TRACE_FILE in present:
            record.reasoning_summary, record.steps = self._trace(f"{base}/{TRACE_FILE}")
        if THOUGHTS_FILE in present:
            record.thoughts = self._thoughts(f"{base}/{THOUGHTS_FILE}")
        if COMMENTS_FILE in present:
            record.comments = self._comments(f"{base}/{COMMENTS_FILE}")
        return record

    def _depends_on(self, f, rel, node, task_id):
        value = f.data.get("depends_on")
        if value is None:
            return []
        if not isinstance(value, list):
            f.problem("depends_on", f"expected a list of task ids, got {describe(value)}")
            return []
        line = key_line(node, "depends_on")
        self.dep_lines[task_id] = (rel, line)
        deps = []
        for dep in value:
            if not isinstance(dep, str) or not TASK_ID_RE.match(dep):
                f.problem("depends_on", f"{describe(dep)} is not a valid task id")
            elif dep in deps:
                f.problem("depends_on", f"{dep} is listed twice")
            else:
                deps.append(dep)
                if dep != task_id:  # a self-dependency is reported as a cycle
                    self.refer(rel, line, "depends_on", dep)
        return sorted(deps)

    def _inputs(self, f):
        value = f.data.get("inputs")
        if value is None:
            return {}
        if not isinstance(value, dict):
            f.problem("inputs", f"expected a mapping, got {describe(value)}")
            return {}
        why = json_problem(value)
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
            f.problem("outputs", f"expected {shape}, got {describe(value)}")
            return []
        outputs = []
        for index, item in enumerate(value):
            item_f = Fields(self.add, f.file, item, item_node(node, index), label="outputs: ")
            if not isinstance(item, dict):
                item_f.problem("", f"expected {shape}, got {describe(item)}")
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
                key_line(node, None),
                None,
                f"expected a list of {what}, got {describe(data)}",
            )
            return [], node
        return data, node

    def _items(self, rel, data, node, allowed, what):
        for index, item in enumerate(data):
            at = item_node(node, index)
            if not isinstance(item, dict):
                self.add(
                    rel,
                    key_line(at, None),
                    None,
                    f"expected a {what} mapping, got {describe(item)}",
                )
                continue
            f = Fields(self.add, rel, item, at)
            f.unknown(allowed)
            yield index, f

    def _notes(self, rel, task_id):
        data, node = self._list_file(rel, "handoff notes")
        notes = []
        for _, f in self._items(rel, data, node, (*NOTE_KEYS, "from"), "handoff note"):
            if f.has("from") and f.data["from"] != task_id:
                f.problem(
                    "from",
                    f"{describe(f.data['from'])} is not {task_id}: this file "
                    "holds the notes that task wrote",
                )
            to = f.task_id("to")
            if to is not None and to != task_id:
                self.refer(rel, key_line(f.node, "to"), "to", to)
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
                    "author_pod": self._author_pod(f),
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
                key_line(node, None),
                None,
                f"expected a mapping with summary and steps, got {describe(data)}",
            )
            return "", []
        f = Fields(self.add, rel, data, node)
        f.unknown(("summary", "steps"))
        summary = f.text("summary")
        raw_steps = data.get("steps")
        if raw_steps is None:
            return summary, []
        if not isinstance(raw_steps, list):
            f.problem("steps", f"expected a list of steps, got {describe(raw_steps)}")
            return summary, []
        steps = []
        steps_node = value_node(node, "steps")
        for index, step in self._items(rel, raw_steps, steps_node, STEP_KEYS, "step"):
            steps.append(
                {
                    "step": step.integer("step", default=index + 1, minimum=1, maximum=MAX_STEP),
                    "action": step.text("action"),
                    "rationale": step.text("rationale"),
                    "tokens": step.integer("tokens", minimum=0),
                    "author_pod": self._author_pod(step),
                    "at": step.time("at", default=self.now),
                }
            )
        return summary, steps

    @staticmethod
    def _author_pod(f):
        """The pod whose token wrote a note or step: a pod name, or empty (a person)."""
        value = f.text("author_pod", max_length=64)
        if value and not POD_NAME_RE.match(value):
            f.problem("author_pod", f"{describe(value)} is not a valid pod name")
            return ""
        return value

    def _comments(self, rel):
        data, node = self._list_file(rel, "comments")
        comments = []
        for _, f in self._items(rel, data, node, COMMENT_KEYS, "comment"):
            comments.append(
                {
                    "kind": f.choice("kind", Comment.Kind.values, default=Comment.Kind.COMMENT),
                    "body": f.text("body", required=True),
                    "author": f.text("author", max_length=150),
                    "created_at": f.time("created_at", default=self.now),
                }
            )
        return comments

    def _thoughts(self, rel):
        data, node = self._list_file(rel, "thoughts")
        thoughts = []
        for index, f in self._items(rel, data, node, THOUGHT_KEYS, "thought"):
            thoughts.append(
                {
                    "step": f.integer("step", default=index + 1, minimum=1, maximum=MAX_STEP),
                    "thought": f.text("thought"),
                    "at": f.time("at", default=self.now),
                }
            )
        return thoughts
