"""What an import would change, and writing it: ``ImportPlan``, ``read_directory``,
``write_plan`` and ``import_directory``.

``read_directory`` reads and checks the whole directory and asks the database what only it
can answer (does a referenced task exist, would a dependency close a cycle, which tasks would
change); every problem is raised together as ``ImportErrors`` and nothing is written.
``write_plan`` writes a plan's rows inside the caller's transaction; the rule runner
(``workflow.import_plan``) owns that transaction, saves the ``imported`` Events and announces
them once, like every other change of task state.

Decisions beyond DESIGN.md:

- A reference to another task (``depends_on``, ``handoff_from``, a note's ``to:``) must name a
  task in the directory or one already in the database; anything else is refused. A note is
  never silently re-addressed or dropped.
- Re-importing a task replaces its fields, its dependencies, the notes it wrote, its trace and
  chain of thought; a task whose data is unchanged is not written at all. A re-imported task
  that omits ``created_at`` keeps the one it has. Tasks absent from the directory are untouched.
- Pods named in ``pods.yaml`` are created or updated from it; a pod that only appears as a
  ``pod_owner`` is created with defaults.
- A task the import creates has an id of at most 56 characters before any derived suffix
  (``.2``, ``.fix1``): an exported continuation of a 56-character id comes back, a new
  57-character id does not. Tasks already in the database keep their ids.
"""

from copy import copy
from pathlib import Path

from django.db import transaction
from django.db.transaction import TransactionManagementError
from django.utils import timezone

from ..graph import chunks, extend_from_database, find_cycles
from ..ids import root_of
from ..models import CREATED_ID_MAX, Event, EventKind, Pod, Task
from .problems import ImportErrors, Problem
from .reader import Reader
from .records import (
    CHILDREN,
    COLUMNS,
    TASK_FILE,
    Depends,
    PodRecord,
    child_rows,
    dependency_rows,
    load_records,
    pod_records,
    task_row,
)
from .scan import read_entries, reread

BATCH = 1000  # rows per INSERT
CHECK_CHUNK = 1000  # tasks compared with the database at a time
WRITE_CHUNK = 1000  # tasks written (with their children) at a time


class ImportPlan:
    """A checked directory, ready to write: its pods, its tasks, and what would change.

    A task is held as a ``scan.TaskEntry`` (id, pod, dependencies, digest), never as its whole
    record: writing reads the changed tasks again from ``root``, a chunk at a time.
    """

    def __init__(
        self,
        *,
        root,
        now,
        pods,
        entries,
        references,
        dep_lines,
        reviewers=(),
    ):
        self.root = root
        self.now = now  # the time the reading gave omitted times; a second reading gives it too
        self.pods = pods
        self._reviewers = list(reviewers)  # (file, line, pod name)
        self.entries = entries  # id → TaskEntry
        self._references = references
        self._dep_lines = dep_lines
        self.created, self.updated, self.unchanged = [], [], []
        self.pods_created, self.pods_updated = [], []
        self.versions = {}  # id → version in the database, for the tasks that exist
        # id → the database's created_at, for the tasks that exist and whose file omits it
        self.kept_created_at = {}

    def summary(self):
        """Return ``{created, updated, unchanged, pods_created, pods_updated}`` (sorted ids)."""
        return {
            "created": list(self.created),
            "updated": list(self.updated),
            "unchanged": list(self.unchanged),
            "pods_created": list(self.pods_created),
            "pods_updated": list(self.pods_updated),
        }

    def wanted_pods(self):
        """Return ``{name: PodRecord}``: the pods listed, then those only named as owners."""
        wanted = {p.name: p for p in self.pods}
        for entry in self.entries.values():
            if entry.pod_owner not in wanted:
                wanted[entry.pod_owner] = PodRecord(name=entry.pod_owner)
        return wanted

    def check_database(self, *, lock=False, progress=None):
        """Return the problems only the database can reveal, and work out what would change.

        With ``lock``, the existing rows of the plan's tasks stay locked until the caller's
        transaction ends, so what is written is what was compared.
        """
        problems = self._missing_references() + self._cycles() + self._unknown_reviewers()
        if problems:
            return problems
        self.created, self.updated, self.unchanged, self.versions = [], [], [], {}
        self.kept_created_at = {}
        too_long = []
        # A chunk of the database's records at a time: a re-import of 50,000 tasks never holds
        # a second copy of them all.
        done = 0
        for chunk in chunks(sorted(self.entries), CHECK_CHUNK):
            too_long += self._compare(chunk, lock=lock)
            done += len(chunk)
            if progress:
                progress("check", done, len(self.entries))
        if too_long:
            return too_long
        known = {p.name: p for p in pod_records()}
        self.pods_created = sorted(n for n in self.wanted_pods() if n and n not in known)
        self.pods_updated = sorted(
            p.name for p in self.pods if p.name in known and known[p.name] != p
        )
        return []

    def _compare(self, task_ids, *, lock):
        """Sort ``task_ids`` into created, updated and unchanged; return the new ids that are
        too long."""
        existing, versions = load_records(task_ids, lock=lock)
        self.versions.update(versions)
        too_long = []
        for task_id in task_ids:
            entry = self.entries[task_id]
            current = existing.pop(task_id, None)
            if current is None:
                self.created.append(task_id)
                if len(root_of(task_id)) > CREATED_ID_MAX:
                    too_long.append(
                        Problem(
                            f"tasks/{task_id}/{TASK_FILE}",
                            None,
                            "id",
                            f"a new task id has at most {CREATED_ID_MAX} characters before a "
                            f"derived suffix (.2, .fix1); this one has {len(root_of(task_id))}",
                        )
                    )
                continue
            if entry.omits_created_at:
                self.kept_created_at[task_id] = current.created_at
            same = current.digest(with_created_at=not entry.omits_created_at) == entry.digest
            (self.unchanged if same else self.updated).append(task_id)
        return too_long

    def _unknown_reviewers(self):
        """A pod's ``reviewer`` must name a pod of this directory or of the database."""
        known = set(self.wanted_pods())
        missing = {name for *_, name in self._reviewers if name not in known}
        if missing:
            known |= set(Pod.objects.filter(name__in=missing).values_list("name", flat=True))
        return [
            Problem(
                file,
                line,
                "reviewer",
                f"{name} is neither a pod of this directory nor of the database",
            )
            for file, line, name in self._reviewers
            if name not in known
        ]

    def _missing_references(self):
        inside = self.entries
        outside = {ref for *_, ref in self._references if ref not in inside}
        found = set()
        for chunk in chunks(sorted(outside)):
            found.update(Task.objects.filter(pk__in=chunk).values_list("pk", flat=True))
        return [
            Problem(file, line, name, f"{ref} is neither in this directory nor in the database")
            for file, line, name, ref in self._references
            if ref not in inside and ref not in found
        ]

    def _cycles(self):
        graph = {task_id: list(e.depends_on) for task_id, e in self.entries.items()}
        extend_from_database(graph)
        problems, seen = [], set()
        for cycle in find_cycles(graph, sorted(self.entries)):
            members = frozenset(cycle)
            if members in seen:
                continue
            seen.add(members)
            # Start the path at a task of this directory: that is the file to fix.
            start = next(i for i, t in enumerate(cycle[:-1]) if t in self.entries)
            path = cycle[start:-1] + cycle[:start] + [cycle[start]]
            file, line = self._dep_lines.get(path[0], (f"tasks/{path[0]}/{TASK_FILE}", None))
            problems.append(
                Problem(file, line, "depends_on", f"makes a dependency cycle: {' → '.join(path)}")
            )
        return problems


def read_directory(root, *, progress=None):
    """Load and check the whole directory at ``root``; return an ``ImportPlan``.

    Raise ``ImportErrors`` listing every problem; nothing is written either way.
    """
    reader = Reader(root, now=timezone.now())
    pods, entries = read_entries(reader, progress)
    plan = ImportPlan(
        root=Path(root),
        now=reader.now,
        pods=pods,
        entries=entries,
        references=reader.references,
        dep_lines=reader.dep_lines,
        reviewers=reader.reviewers,
    )
    problems = list(reader.problems)
    problems += plan.check_database(progress=progress)
    if problems:
        raise ImportErrors(problems)
    return plan


def import_directory(root, *, actor="import", dry_run=False, progress=None):
    """Check and import the directory at ``root``; return the plan's summary.

    Nothing is written on a dry run, nor on any problem (``ImportErrors``).
    """
    plan = read_directory(root, progress=progress)
    if dry_run:
        return plan.summary()
    from .. import workflow

    return workflow.import_plan(plan=plan, actor=actor, progress=progress)


# Writing a plan ------------------------------------------------------------------------------


def write_plan(plan, *, actor, progress=None):
    """Write ``plan``'s pods and changed tasks (with their notes and traces) and one
    ``imported`` Event per task written; return the Events the rule runner announces.

    Runs inside the caller's transaction (the rule runner's) and re-checks the database under
    lock first, raising ``ImportErrors`` when it changed since ``read_directory``.

    The Events are saved a chunk at a time with their tasks, so 50,000 of them are never in
    memory together. What is returned stands for them all: the first and the last (the
    range of ids a board catches up by), the last carrying their ``count`` in its payload
    for the announcement only (``live.announce``; the saved row has no ``count``).
    """
    if not transaction.get_connection().in_atomic_block:
        raise TransactionManagementError("write_plan runs inside the caller's transaction")
    problems = plan.check_database(lock=True, progress=progress)
    if problems:
        raise ImportErrors(problems)
    _write_pods(plan)
    pod_ids = dict(Pod.objects.values_list("name", "id"))
    now = timezone.now()
    changed = plan.created + plan.updated
    created = set(plan.created)
    done, first, last = 0, None, None
    # A chunk of tasks at a time, each written with its dependencies, notes, traces and
    # Event: the rows of 50,000 tasks are never all in memory at once.
    for chunk in chunks(changed, WRITE_CHUNK):
        _write_chunk(plan, chunk, pod_ids=pod_ids, now=now)
        events = Event.objects.bulk_create(
            [
                Event(
                    task_id=tid,
                    task_key=tid,
                    kind=EventKind.IMPORTED,
                    actor=actor,
                    payload={"created": tid in created},
                )
                for tid in chunk
            ]
        )
        first, last = first or events[0], events[-1]
        done += len(chunk)
        if progress:
            progress("write", done, len(changed))
    if last is None:
        return []
    marker = copy(last)
    marker.payload = {**last.payload, "count": len(changed)}
    return [marker] if first.pk == last.pk else [first, marker]


def _write_chunk(plan, task_ids, *, pod_ids, now):
    """Write the tasks ``task_ids`` of ``plan`` (created or updated) with their children,
    read again from the directory."""
    records = reread(
        plan.root,
        now=plan.now,
        entries=plan.entries,
        task_ids=task_ids,
        created_at=plan.kept_created_at,
    )
    new_rows, updated_rows = [], []
    for record in records:
        task_id = record.id
        task = task_row(
            record,
            pod_id=pod_ids[record.pod_owner],
            version=plan.versions.get(task_id, 0) + 1,
            updated_at=now,
        )
        (updated_rows if task_id in plan.versions else new_rows).append(task)
    Task.objects.bulk_create(new_rows, batch_size=500)
    if updated_rows:
        _update_tasks(updated_rows)
        replaced = [task.pk for task in updated_rows]
        Depends.objects.filter(from_task_id__in=replaced).delete()
        for _, model, owner, _ in CHILDREN:
            model.objects.filter(**{f"{owner}__in": replaced}).delete()
    deps, children = [], {model: [] for _, model, _, _ in CHILDREN}
    for record in records:
        deps += dependency_rows(record)
        for model, rows in child_rows(record).items():
            children[model] += rows
    Depends.objects.bulk_create(deps, batch_size=BATCH)
    for model, rows in children.items():
        model.objects.bulk_create(rows, batch_size=BATCH)


def _update_tasks(tasks):
    """Write every column of ``tasks`` with one prepared UPDATE run for all rows.

    ``bulk_update`` builds a CASE expression per column and row in Python, which takes minutes
    for ten thousand tasks; ``executemany`` takes seconds.
    """
    connection = transaction.get_connection()
    names = [c for c in COLUMNS.values() if c != "id"] + ["version", "updated_at"]
    fields = [Task._meta.get_field(name) for name in names]
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


def _write_pods(plan):
    wanted = plan.wanted_pods()
    Pod.objects.bulk_create(
        [
            Pod(
                name=n,
                description=wanted[n].description,
                order=wanted[n].order,
                wip_limit=wanted[n].wip_limit,
                review_required=wanted[n].review_required,
                paused=wanted[n].paused,
                context_limit=wanted[n].context_limit,
                webhook_url=wanted[n].webhook_url,
            )
            for n in plan.pods_created
        ]
    )
    for name in plan.pods_updated:
        pod = wanted[name]
        Pod.objects.filter(name=name).update(
            description=pod.description,
            order=pod.order,
            wip_limit=pod.wip_limit,
            review_required=pod.review_required,
            paused=pod.paused,
            context_limit=pod.context_limit,
            webhook_url=pod.webhook_url,
        )
    # A pod given a webhook URL gets a signing secret (pods.yaml never holds one); an admin
    # shows a new one once (admin, or manage.py create_pod_webhook).
    from ..push.signing import new_secret

    for pod in Pod.objects.filter(webhook_url__gt="", webhook_secret=""):
        Pod.objects.filter(pk=pod.pk).update(webhook_secret=new_secret())
    Pod.objects.filter(webhook_url="").exclude(webhook_secret="").update(webhook_secret="")
    # Reviewers by name, once every pod they may name exists.
    changed = set(plan.pods_created) | set(plan.pods_updated)
    named = {wanted[n].reviewer for n in changed if wanted[n].reviewer}
    ids = dict(Pod.objects.filter(name__in=named).values_list("name", "id"))
    for name in sorted(changed):
        Pod.objects.filter(name=name).update(reviewer_id=ids.get(wanted[name].reviewer))
