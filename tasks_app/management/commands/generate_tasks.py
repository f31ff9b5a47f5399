"""``manage.py generate_tasks N DIR``: write a synthetic task directory (for demos and benchmarks).
``manage.py generate_tasks N --history DAYS``: fill the database with N tasks' worth of past
work over the last DAYS days, with the Events the rules would have recorded, so the flow
metrics, the cumulative flow and the activity feed have something to show. That history is
seeding: ``tasks_app.history`` writes its rows in bulk, past timestamps and all, not through
the rule runner (nothing is announced to open boards, no webhook is sent).

In a directory, features run down the pod chain (ProductPod → DevPod → QAPod by default):
the middle stages fan out into one or two tasks, the next stage fans back in, some features
wait for the one before, some tasks were scaled out, and done work carries notes, traces and
thoughts. The same ``--seed`` gives the same bytes.
"""

import random
from datetime import UTC, datetime, timedelta

from django.core.management.base import BaseCommand, CommandError

from tasks_app import yamlio
from tasks_app.history import fill as fill_history
from tasks_app.history import id_prefixes
from tasks_app.ids import carried_over, continuation_id, root_of
from tasks_app.models import POD_NAME_RE

DEFAULT_PODS = ("ProductPod", "DevPod", "QAPod")
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
TOPICS = (
    "sign-in",
    "password reset",
    "billing page",
    "audit log",
    "search",
    "team invites",
    "dark mode",
    "export to CSV",
    "rate limiting",
    "webhooks",
    "notifications",
    "API keys",
)
TYPES = {0: "spec", -1: "qa"}
MODES = ("sync", "async", "auto")


def generate(count, *, seed=0, pods=DEFAULT_PODS):
    """Return ``(pod_records, task_records)``: ``count`` tasks over the chain ``pods``."""
    rng = random.Random(seed)
    prefixes = id_prefixes(pods)
    pod_records = [
        yamlio.PodRecord(
            name=name,
            description=f"{name}: stage {i + 1} of the chain.",
            order=i,
            wip_limit=3 if 0 < i < len(pods) - 1 else None,
        )
        for i, name in enumerate(pods)
    ]
    records, by_id = [], {}
    features = max(1, count // (len(pods) + 1))
    feature = 0
    previous_last, previous_done = [], False
    while len(records) < count:
        feature += 1
        topic = TOPICS[feature % len(TOPICS)]
        created = START + timedelta(minutes=7 * feature)
        # Earlier features are further along: all done, then in progress, then untouched.
        share = feature / features
        progress = len(pods) if share < 0.4 else rng.randint(0, len(pods)) if share < 0.7 else 0
        stage_tasks = []
        for stage, pod in enumerate(pods):
            width = rng.choice((1, 1, 2)) if 0 < stage < len(pods) - 1 else 1
            stage_ids = []
            for branch in range(width):
                suffix = f"-{branch + 1}" if branch else ""
                task_id = f"{prefixes[pod]}-{feature}{suffix}"
                if stage:
                    deps = list(stage_tasks[-1])
                elif previous_last and previous_done and rng.random() < 0.15:
                    deps = list(previous_last)
                else:
                    deps = []
                if stage < progress:
                    status = "done"
                elif stage == progress and stage and rng.random() < 0.5:
                    status = "active"  # reserved by a sync handoff, not yet pulled
                else:
                    status = "ready"
                if any(by_id[d].status != "done" for d in deps):
                    status = "ready"  # never done or active while blocked
                record = _task(
                    rng,
                    task_id,
                    pod,
                    stage,
                    len(pods),
                    topic,
                    feature,
                    deps,
                    status,
                    created + timedelta(seconds=30 * stage + branch),
                )
                records.append(record)
                by_id[task_id] = record
                stage_ids.append(task_id)
                if status == "done" and 0 < stage < len(pods) - 1 and rng.random() < 0.15:
                    follows = "done" if stage < progress - 1 else "active"
                    continuation = _scale_out(rng, record, follows, taken=by_id)
                    records.append(continuation)
                    by_id[continuation.id] = continuation
                    stage_ids[-1] = continuation.id
            stage_tasks.append(stage_ids)
        previous_last = stage_tasks[-1]
        previous_done = progress == len(pods)
    records = records[:count]
    kept = {r.id for r in records}
    successors = {}
    for record in records:
        for dep in record.depends_on:
            successors.setdefault(dep, []).append(record.id)
    for record in records:
        _write_notes(rng, record, successors.get(record.id, []), kept)
    return pod_records, records


def _task(rng, task_id, pod, stage, stages, topic, feature, deps, status, created):
    task_type = TYPES.get(stage, TYPES[-1] if stage == stages - 1 else "build")
    record = yamlio.TaskRecord(
        id=task_id,
        title=f"{task_type.capitalize()}: {topic} (feature {feature})",
        pod_owner=pod,
        status=status,
        task_type=task_type,
        priority=rng.choice((0, 0, 1, 2, 3)),
        handoff_mode=rng.choice(MODES),
        depends_on=sorted(deps),
        handoff_from=deps[0] if deps and rng.random() < 0.8 else None,
        prompt=(
            f"You are {pod}. Work on the {topic} feature (#{feature}).\n\n"
            f"Goal: finish the {task_type} stage so the next pod can start.\n"
            "Constraints:\n"
            "  - keep the change small and reviewed\n"
            f"  - stay under {rng.randint(8, 20)}K tokens; scale out if you run out\n"
        ),
        inputs={
            "feature": feature,
            "spec": f"docs/features/{feature}.md",
            "due": f"2026-12-{rng.randint(1, 28):02d}",
        },
        created_at=created,
    )
    if rng.random() < 0.3:
        record.description = f"Part of feature {feature}.\nOwner stage: {pod}."
    if status in ("active", "done"):
        record.started_at = created + timedelta(hours=1)
    if status == "done":
        record.completed_at = created + timedelta(hours=2, minutes=rng.randint(0, 59))
        record.claimed_by = f"{pod}#{rng.randint(1, 3)}"
        record.token_count = rng.randint(1_000, 15_000)
        record.outputs = [
            {
                "name": f"{task_type}-{feature}",
                "uri": f"git:feature-{feature}",
                "summary": f"The {task_type} for {topic}.",
            }
        ]
        record.reasoning_summary = f"Settled the {task_type} for {topic} in small steps."
        record.steps = [
            {
                "step": n,
                "action": action,
                "rationale": why,
                "tokens": rng.randint(100, 2_000),
                "at": record.started_at + timedelta(minutes=5 * n),
            }
            for n, (action, why) in enumerate(
                [
                    ("Read the inputs", "Scope first"),
                    ("Drafted the change", "Smallest thing that could work"),
                    ("Checked it against the spec", "Catch gaps before handing off"),
                ][: rng.randint(1, 3)],
                start=1,
            )
        ]
        if rng.random() < 0.5:
            record.thoughts = [
                {
                    "step": 1,
                    "thought": f"What is the riskiest part of {topic}?",
                    "at": record.started_at + timedelta(minutes=2),
                }
            ]
    return record


def _scale_out(rng, original, status, *, taken):
    """Return the continuation of ``original``, which ran out of context, named as the scale-out
    rule names it (``taken``: the ids already generated)."""
    root = root_of(original.id, original.continuation_of)
    continuation = yamlio.TaskRecord(
        id=continuation_id(root, taken),
        **carried_over(original),
        status=status,
        handoff_from=original.id,
        created_at=original.completed_at,
        continuation_of=root,
    )
    if status != "ready":
        continuation.started_at = original.completed_at + timedelta(minutes=5)
    if status == "done":
        continuation.completed_at = original.completed_at + timedelta(minutes=50)
        continuation.claimed_by = f"{original.pod_owner}#{rng.randint(1, 3)}"
        continuation.token_count = rng.randint(1_000, 9_000)
    original.notes.append(
        {
            "to": continuation.id,
            "note": "Ran out of context; the rest is in the trace.\nNext: finish and hand off.\n",
            "reason": "capacity_reached",
            "handoff_type": "scale",
            "mode": "async",
            "token_count": original.token_count,
            "author": original.claimed_by,
            "created_at": original.completed_at,
        }
    )
    return continuation


def _write_notes(rng, record, successors, kept):
    """Add a note from a done task to each of its successors still in the directory."""
    if record.status != "done" or any(n["handoff_type"] == "scale" for n in record.notes):
        for note in record.notes:
            if note["to"] not in kept:
                note["to"] = None
        return
    for successor in successors or [None]:
        mode = record.handoff_mode if record.handoff_mode != "auto" else rng.choice(MODES[:2])
        record.notes.append(
            {
                "to": successor,
                "note": f"{record.title} is done.\nSee the outputs; ask if anything is unclear.\n",
                "reason": "completed",
                "handoff_type": "normal",
                "mode": mode,
                "token_count": record.token_count,
                "author": record.claimed_by,
                "created_at": record.completed_at,
            }
        )


class Command(BaseCommand):
    help = (
        "Write a synthetic task directory of N tasks to DIR, or with --history DAYS fill the "
        "database with N tasks of past work over DAYS days (deterministic for a --seed)."
    )

    def add_arguments(self, parser):
        parser.add_argument("count", type=int, metavar="N")
        parser.add_argument("directory", metavar="DIR", nargs="?")
        parser.add_argument(
            "--history",
            type=int,
            metavar="DAYS",
            help="Instead of a directory: write N tasks of past work over the last DAYS days "
            "into the database (Events in bulk: claims, batons, stalls, scale-outs, reviews, "
            "send-backs).",
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--pods",
            default=",".join(DEFAULT_PODS),
            help="The pod chain, comma-separated (default: %(default)s).",
        )

    def handle(self, *, count, directory, seed, pods, history=None, **options):
        if count < 1:
            raise CommandError("N must be at least 1.")
        names = [p.strip() for p in pods.split(",") if p.strip()]
        bad = [p for p in names if not POD_NAME_RE.match(p)]
        if not names or bad or len(set(names)) != len(names):
            raise CommandError(f"--pods needs distinct pod names; got {pods!r}.")
        if (directory is None) == (history is None):
            raise CommandError("Give either DIR or --history DAYS.")
        if history is not None:
            if history < 1:
                raise CommandError("--history DAYS must be at least 1.")
            written = fill_history(count=count, days=history, pods=names, seed=seed)
            self.stdout.write(
                f"Wrote {written['tasks']} task(s) and {written['events']} event(s) of past work "
                f"over {history} day(s) for {', '.join(names)}."
            )
            return
        pod_records, records = generate(count, seed=seed, pods=names)
        yamlio.write_directory(directory, pods=pod_records, records=records)
        self.stdout.write(f"Wrote {len(records)} task(s) for {', '.join(names)} to {directory}.")
