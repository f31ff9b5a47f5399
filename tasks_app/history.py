"""Past work for a fresh board: ``generate_tasks N --history DAYS`` and the demo.

Fills the database with ``count`` tasks that went through the pod chain over the last ``days``
days, and the Events they would have left: creations, batons in each mode (sync, async, and
auto resolved to either), claims, traces, stalls (a lease ran out, another instance claimed it
again), scale-outs to continuations, review submissions with approvals and change requests,
send-backs to rework tasks, completions with token counts. The Events have the shapes the rules
record (``tasks_app/workflow``), because the flow metrics, the cumulative flow diagram, the
chain view and the activity feed read them.

This is seeding, not work: the rows are written in bulk (``bulk_create``), past timestamps and
all, without the rule runner, without announcements to open boards and without webhook
deliveries; the flow metrics' rollups of those past days are then made afresh
(``tasks_app.insight.rollup``). Nothing after ``now`` is written: a feature still under way
ends in the state its last Event left it (a reserved, claimed or in-review task), like a
board that was running.
Events are inserted in time order, so their ids (the board's sequence) follow time.
"""

import heapq
import random
from dataclasses import dataclass, field
from datetime import UTC, timedelta

from django.db import transaction
from django.utils import timezone

from .insight import rollup
from .models import Event, Pod, Status, Task

BATCH = 5000
CHAIN = ("ProductPod", "DevPod", "QAPod")
TOPICS = (
    "sign-in",
    "billing page",
    "audit log",
    "search",
    "team invites",
    "dark mode",
    "CSV export",
    "rate limiting",
    "webhooks",
    "notifications",
)
TYPES = ("spec", "build", "qa")
# Chances per task (per stage for send-backs).
STALL, SCALE_OUT, CHANGES, SEND_BACK = 0.08, 0.12, 0.2, 0.1
# The newest feature starts this long before now; the last few are still under way.
NEWEST_START = timedelta(hours=2)


@dataclass
class Track:
    """One task as the history writes it: where its last Event left it."""

    id: str
    pod: str
    task_type: str
    title: str
    created_at: object
    mode: str
    status: str = Status.READY
    holder: str = ""
    started_at: object = None
    completed_at: object = None
    last_claim: object = None
    tokens: int = 0
    scale_root: str = ""
    handoff_from: str | None = None
    depends_on: list = field(default_factory=list)


class History:
    """Writes tracks and their Events; flushes both in batches, Events in time order."""

    def __init__(self, *, now, rng):
        self.now, self.rng = now, rng
        self.tasks, self.links = [], []
        self.pending = []  # heap of (at, seq, Event)
        self.seq = 0
        self.continuations = {}
        self.written = {"tasks": 0, "events": 0}
        self.pods = {}

    # Recording ---------------------------------------------------------------------------------

    def event(self, track, at, kind, *, actor="", frm="", after=None, **payload):
        """Record ``kind`` for ``track`` at ``at`` (dropped when after now); ``after`` is the
        status it leaves the task in (default: unchanged)."""
        if at > self.now:
            return False
        to = track.status if after is None else after
        pod = track.pod
        created = kind == "created"
        self.seq += 1
        heapq.heappush(
            self.pending,
            (
                at,
                self.seq,
                Event(
                    task_id=track.id,
                    task_key=track.id,
                    kind=kind,
                    actor=actor,
                    from_status="" if created else frm,
                    to_status=to,
                    from_pod="" if created else pod,
                    to_pod=pod,
                    payload=payload,
                    created_at=at,
                ),
            ),
        )
        track.status = to
        return True

    def new_task(self, track, at, *, actor="", **payload):
        self.tasks.append(track)
        self.event(track, at, "created", actor=actor, after=Status.READY, **payload)
        return track

    # Flushing ----------------------------------------------------------------------------------

    def flush(self, *, before=None):
        """Write the tasks gathered so far, and the Events older than ``before`` (all when
        None): a later feature cannot add an Event before its own start."""
        if self.tasks:
            self._write_tasks()
        events = []
        while self.pending and (before is None or self.pending[0][0] < before):
            events.append(heapq.heappop(self.pending)[2])
            if len(events) >= BATCH:
                self._write_events(events)
                events = []
        if events:
            self._write_events(events)

    def _write_tasks(self):
        rows, links = [], []
        for t in self.tasks:
            active = t.status == Status.ACTIVE and t.holder
            rows.append(
                Task(
                    id=t.id,
                    title=t.title,
                    pod_owner=self.pods[t.pod],
                    status=t.status,
                    task_type=t.task_type,
                    handoff_mode=t.mode,
                    handoff_from_id=t.handoff_from,
                    claimed_by=t.holder if t.status in (Status.ACTIVE, Status.DONE) else "",
                    # A holder of the past is still at work: its lease runs a while yet.
                    lease_expires_at=max(t.last_claim, self.now) + timedelta(minutes=30)
                    if active
                    else None,
                    token_count=t.tokens if t.status != Status.READY else 0,
                    scale_root=t.scale_root,
                    created_at=t.created_at,
                    started_at=t.started_at,
                    completed_at=t.completed_at if t.status == Status.DONE else None,
                    inputs={"history": True},
                )
            )
            links += [(t.id, dep) for dep in t.depends_on]
        Task.objects.bulk_create(rows, batch_size=BATCH)
        through = Task.depends_on.through
        through.objects.bulk_create(
            [through(from_task_id=a, to_task_id=b) for a, b in links], batch_size=BATCH
        )
        self.written["tasks"] += len(rows)
        self.tasks = []

    def _write_events(self, events):
        Event.objects.bulk_create(events, batch_size=BATCH)
        self.written["events"] += len(events)

    # One task's work ---------------------------------------------------------------------------

    def minutes(self, low, high):
        return timedelta(minutes=self.rng.uniform(low, high))

    def claim(self, track, at, instance):
        if not self.event(
            track,
            at,
            "claimed",
            actor=instance,
            frm=track.status,
            after=Status.ACTIVE,
            instance=instance,
        ):
            return False
        track.holder, track.last_claim = instance, at
        track.started_at = track.started_at or at
        return True

    def work(self, track, start, instance):
        """Claim ``track`` at ``start`` and work on it (with a trace, maybe a stall and a
        second claim); return when the work ends, or None when it runs past now."""
        if not self.claim(track, start, instance):
            return None
        at = start
        if self.rng.random() < STALL:
            at += self.minutes(20, 60)
            if not self.event(
                track,
                at,
                "lease_expired",
                actor="podboard",
                frm=Status.ACTIVE,
                after=Status.READY,
                holder=instance,
            ):
                return None
            track.holder = ""
            at += self.minutes(2, 40)
            instance = self.instance(track.pod)
            if not self.claim(track, at, instance):
                return None
        track.tokens = self.rng.randint(1_000, 14_000)
        at += self.minutes(15, 90)
        self.event(
            track,
            at - self.minutes(1, 10),
            "traced",
            actor=instance,
            frm=Status.ACTIVE,
            steps=self.rng.randint(1, 4),
            thoughts=self.rng.randint(0, 2),
            token_count=track.tokens,
        )
        return at if at <= self.now else None

    def instance(self, pod):
        return f"{pod}#{self.rng.randint(1, 3)}"

    def finish(self, track, at, successors, *, frm=Status.ACTIVE, actor=None, **payload):
        """Complete ``track`` (from Active, or from Review when approved) and hand batons to
        ``successors`` at ``at``."""
        if not self.event(
            track,
            at,
            "completed",
            actor=actor or track.holder,
            frm=frm,
            after=Status.DONE,
            successors=[s.id for s in successors],
            continuation=None,
            instance=track.holder,
            **payload,
        ):
            return False
        track.completed_at = at
        for successor in successors:
            self.baton(track, successor, at)
        return True

    def baton(self, giver, taker, at):
        """The handoff Event that starts ``taker`` by ``giver``'s mode (rule 4)."""
        mode, why = giver.mode, giver.mode
        if mode == "auto":
            mode = self.rng.choice(("sync", "async"))
            why = f"auto: {taker.pod} {'under' if mode == 'sync' else 'at'} its WIP limit"
        to = Status.ACTIVE if mode == "sync" else Status.READY
        self.event(
            taker,
            at,
            "handoff",
            actor=giver.holder,
            frm=Status.READY,
            after=to,
            handoff_from=giver.id,
            mode=mode,
            why=why,
            blocked=False,
        )
        taker.handoff_from = taker.handoff_from or giver.id
        return mode

    def scale_out(self, track, at, successors):
        """``track`` ran out of context at ``at``: its continuation carries on (rule 5)."""
        cont = Track(
            id=self.continuation_id(track.scale_root or track.id),
            pod=track.pod,
            task_type=track.task_type,
            title=track.title,
            created_at=at,
            mode=track.mode,
            scale_root=track.scale_root or track.id,
            handoff_from=track.id,
        )
        track.tokens = self.rng.randint(13_500, 15_000)
        if not self.event(
            track,
            at,
            "scaled_out",
            actor=track.holder,
            frm=Status.ACTIVE,
            after=Status.DONE,
            continuation=cont.id,
            reason="capacity_reached",
            token_count=track.tokens,
            successors=[],
            moved_successors=[s.id for s in successors],
        ):
            return None
        track.completed_at = at
        self.new_task(
            cont, at, actor=track.holder, continuation_of=track.id, reason="capacity_reached"
        )
        for successor in successors:
            successor.depends_on = [cont.id if d == track.id else d for d in successor.depends_on]
            successor.handoff_from = cont.id
            self.event(
                successor,
                at,
                "edited",
                actor=track.holder,
                waits_for=cont.id,
                instead_of=track.id,
            )
        return cont

    def continuation_id(self, root):
        self.continuations[root] = self.continuations.get(root, 1) + 1
        return f"{root}.{self.continuations[root]}"


def id_prefixes(pods):
    """Return a short, unique id prefix per pod: ProductPod → PROD, DevPod → DEV, QAPod → QA."""
    prefixes = {}
    for pod in pods:
        stem = pod[:-3] if pod.endswith("Pod") and len(pod) > 3 else pod
        prefix = stem.upper()[:4]
        while prefix in prefixes.values():
            prefix += "X"
        prefixes[pod] = prefix
    return prefixes


def _run(h, t, workable_at, successors, giver, review):
    """Take ``t`` from workable (at ``workable_at``) to done, handing batons to
    ``successors``; it may send ``giver`` (the task that handed it its baton) back for rework,
    stall, scale out or go through review. Return ``(the task that finished, when)``, or None
    when the work runs past now."""
    wait = h.minutes(0.5, 10) if t.status == Status.ACTIVE else h.minutes(5, 120)
    end = h.work(t, workable_at + wait, h.instance(t.pod))
    if end is None:
        return None
    if giver is not None and h.rng.random() < SEND_BACK:
        at = t.last_claim + h.minutes(5, 20)
        fix = _send_back(h, t, giver, at)
        if fix is None:
            return None
        done = _run(h, fix, at, [t], None, review)
        if done is None:
            return None
        return _run(h, t, done[1], successors, None, review)
    if h.rng.random() < SCALE_OUT:
        cont = h.scale_out(t, end, successors)
        if cont is None:
            return None
        return _run(h, cont, end, successors, None, review)
    if t.pod not in review:
        return (t, end) if h.finish(t, end, successors) else None
    return _review(h, t, end, successors, review[t.pod])


def _review(h, t, end, successors, reviewer_pod):
    """Submit ``t`` for review; a reviewer asks for changes now and then, then approves."""
    reviewer = f"{reviewer_pod}#{h.rng.randint(1, 2)}" if reviewer_pod else "lead"
    asked = False
    while True:
        if not h.event(
            t,
            end,
            "submitted",
            actor=t.holder,
            frm=Status.ACTIVE,
            after=Status.REVIEW,
            instance=t.holder,
            note="Ready for review.",
            reason="completed",
            author=t.holder,
            author_pod=t.pod,
        ):
            return None
        at = end + h.minutes(5, 60)
        if not asked and h.rng.random() < CHANGES:
            asked = True
            if not h.event(
                t,
                at,
                "reviewed",
                actor=reviewer,
                frm=Status.REVIEW,
                after=Status.READY,
                verdict="changes_requested",
                note="Cover the error cases too.",
                reviewer_pod=reviewer_pod,
            ):
                return None
            t.holder = ""
            end = h.work(t, at + h.minutes(5, 40), h.instance(t.pod))
            if end is None:
                return None
            continue
        if not h.event(
            t,
            at,
            "reviewed",
            actor=reviewer,
            frm=Status.REVIEW,
            after=Status.DONE,
            verdict="approve",
            note="",
            reviewer_pod=reviewer_pod,
            edited_note=False,
        ):
            return None
        h.finish(t, at, successors, frm=Status.REVIEW, actor=reviewer, approved_by=reviewer)
        return t, at


def _send_back(h, t, giver, at):
    """``t`` sends ``giver`` back: a rework task ``<root>.fix1`` in ``giver``'s pod, which
    ``t`` now waits for."""
    root = giver.scale_root or giver.id
    fix = Track(
        id=f"{root}.fix1",
        pod=giver.pod,
        task_type=giver.task_type,
        title=f"Rework: {giver.title}",
        created_at=at,
        mode="async",
    )
    if not h.event(
        t,
        at,
        "sent_back",
        actor=t.holder,
        frm=Status.ACTIVE,
        after=Status.READY,
        to=giver.id,
        rework=fix.id,
        findings="The acceptance test fails on an empty input.",
    ):
        return None
    h.new_task(fix, at, actor=t.holder, rework_of=giver.id, sent_back_by=t.id)
    t.holder = ""
    t.depends_on.append(fix.id)
    return fix


def _feature(h, number, start, chain, prefixes, review):
    """One feature down the pod chain, one task per pod, each depending on the one before."""
    topic = TOPICS[number % len(TOPICS)]
    tracks = []
    for stage, pod in enumerate(chain):
        task_type = TYPES[min(stage, len(TYPES) - 1)] if stage < len(chain) - 1 else "qa"
        track = Track(
            id=f"{prefixes[pod]}-H{number}",
            pod=pod,
            task_type=task_type,
            title=f"{task_type.capitalize()}: {topic} (feature H{number})",
            created_at=start + timedelta(seconds=stage),
            mode=h.rng.choice(("sync", "async", "auto")),
            depends_on=[tracks[-1].id] if tracks else [],
        )
        h.new_task(track, track.created_at, actor="lead")
        tracks.append(track)
    giver, workable = None, start
    for stage, track in enumerate(tracks):
        done = _run(h, track, workable, tracks[stage + 1 : stage + 2], giver, review)
        if done is None:
            return
        giver, workable = done


@transaction.atomic
def fill(*, count, days, pods=CHAIN, review=None, seed=0, now=None, progress=None):
    """Write about ``count`` tasks of past work over the last ``days`` days (see the
    module docstring); return ``{"tasks": n, "events": n, "features": n}``.

    ``pods`` is the chain, created when missing; ``review`` maps the pods whose work went
    through review to their reviewer pod (``""``: people reviewed it), by default the pods
    that have a review gate now.
    """
    if count < 1 or days < 1:
        raise ValueError("count and days must be at least 1")
    now = now or timezone.now()
    h = History(now=now, rng=random.Random(seed))
    for order, name in enumerate(pods):
        h.pods[name] = Pod.objects.get_or_create(name=name, defaults={"order": order})[0]
    if review is None:
        review = {
            p.name: p.reviewer.name if p.reviewer_id else ""
            for p in Pod.objects.filter(name__in=pods, review_required=True).select_related(
                "reviewer"
            )
        }
    prefixes = id_prefixes(pods)
    first = _next_number(prefixes[pods[0]])
    # Continuations and reworks add about a fifth to the tasks of the chain.
    features = max(1, round(count / (len(pods) * 1.2)))
    begin = now - timedelta(days=days)
    span = timedelta(days=days) - NEWEST_START
    for i in range(features):
        start = begin + span * (i + h.rng.random() * 0.9) / features
        _feature(h, first + i, start, pods, prefixes, review)
        if len(h.tasks) >= BATCH or len(h.pending) >= BATCH * 2:
            h.flush(before=begin + span * (i + 1) / features)
            if progress is not None:
                progress(h.written)
    h.flush()
    # The Events went into past days: their rollups (if any) are stale; roll them up again.
    rollup.forget(begin.astimezone(UTC).date())
    rollup.ensure(begin.astimezone(UTC).date())
    return {**h.written, "features": features}


def _next_number(prefix):
    """The first free history feature number for ids ``<prefix>-H<n>``."""
    taken = Task.objects.filter(id__startswith=f"{prefix}-H").values_list("id", flat=True)
    numbers = [int(n) for n in (i[len(prefix) + 2 :].split(".")[0] for i in taken) if n.isdigit()]
    return max(numbers, default=0) + 1
