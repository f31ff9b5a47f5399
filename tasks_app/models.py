"""PodBoard's data: pods, tasks that mirror ``task.yaml``, handoff notes, traces, events.

Models answer questions about one row (``task.is_blocked()``); every change of a task's state
runs through the rules in ``tasks_app.workflow``.
"""

import hashlib
import re
import secrets

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .ordering import claim_index_expressions

TASK_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
TASK_ID_RE = re.compile(rf"^{TASK_ID_PATTERN}\Z")
POD_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}\Z")

validate_task_id = RegexValidator(
    TASK_ID_RE,
    "A task id starts with a letter or digit, then up to 63 letters, digits, '.', '_' or '-'.",
)
# Ids that a person, a pod or an import creates are at most this long: the last 8 of the 64
# characters an id may have are kept for derived ids (``.2``, ``.fix1``), so every continuation
# or rework id stays valid, addressable and exportable (DESIGN.md, "Ids").
CREATED_ID_MAX = 56
# Trace and thought steps are numbered 1…MAX_STEP: far below any integer column's limit, so the
# step numbered after the last one can never overflow it.
MAX_STEP = 1_000_000


def validate_created_task_id(value):
    """Refuse a new task id longer than ``CREATED_ID_MAX`` characters."""
    if len(value) > CREATED_ID_MAX:
        raise ValidationError(
            f"A new task id has at most {CREATED_ID_MAX} characters (this one has {len(value)}); "
            "the rest is kept for continuation and rework ids.",
            code="id_too_long",
        )


validate_step = [MinValueValidator(1), MaxValueValidator(MAX_STEP)]

validate_pod_name = RegexValidator(
    POD_NAME_RE,
    "A pod name starts with a letter and then has up to 63 letters, digits, '_' or '-'.",
)


class Status(models.TextChoices):
    READY = "ready", "Ready"
    ACTIVE = "active", "Active"
    REVIEW = "review", "Review"
    DONE = "done", "Done"


class HandoffMode(models.TextChoices):
    SYNC = "sync", "sync"
    ASYNC = "async", "async"
    AUTO = "auto", "auto"


class ResolvedMode(models.TextChoices):
    SYNC = "sync", "sync"
    ASYNC = "async", "async"


class HandoffType(models.TextChoices):
    NORMAL = "normal", "normal"
    SCALE = "scale", "scale"


class Pod(models.Model):
    """A pod type such as ``DevPod``; running agents are its instances (``DevPod#2``)."""

    name = models.CharField(max_length=64, unique=True, validators=[validate_pod_name])
    description = models.TextField(blank=True)
    review_required = models.BooleanField(
        default=False,
        help_text="Completed tasks wait in Review until a person or reviewer decides.",
    )
    reviewer = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reviews_for",
        help_text="The pod whose token may decide reviews (people always may).",
    )
    paused = models.BooleanField(default=False, help_text="A paused pod's next hands out nothing.")
    context_limit = models.PositiveIntegerField(
        default=15_000, help_text="Tokens an instance may use before it should scale out."
    )
    webhook_url = models.URLField(
        max_length=500, blank=True, help_text="Where PodBoard POSTs when work becomes workable."
    )
    # Stored as given (``whsec_…``): signing needs the secret itself, not a hash.
    webhook_secret = models.CharField(max_length=100, blank=True, editable=False)
    order = models.IntegerField(default=0)
    wip_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Most active tasks at once; empty means no limit."
    )

    class Meta:
        ordering = ["order", "name"]

    def __str__(self):
        return self.name

    def clean(self):
        if self.reviewer_id is not None and self.reviewer_id == self.pk:
            raise ValidationError({"reviewer": "A pod cannot review its own work."})


class Task(models.Model):
    id = models.CharField(primary_key=True, max_length=100, validators=[validate_task_id])
    title = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    pod_owner = models.ForeignKey(Pod, on_delete=models.PROTECT, related_name="tasks")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.READY)
    task_type = models.CharField(max_length=64, blank=True)
    priority = models.IntegerField(default=0, help_text="Higher runs first.")
    depends_on = models.ManyToManyField(
        "self", symmetrical=False, related_name="dependents", blank=True
    )
    handoff_from = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="baton_successors",
        help_text="The task whose baton this one carries.",
    )
    handoff_mode = models.CharField(
        max_length=5,
        choices=HandoffMode.choices,
        default=HandoffMode.ASYNC,
        help_text="How this task's successors start when it completes.",
    )
    prompt = models.TextField(blank=True)
    inputs = models.JSONField(default=dict, blank=True)
    outputs = models.JSONField(default=list, blank=True)
    claimed_by = models.CharField(max_length=128, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    token_count = models.PositiveIntegerField(default=0)
    reasoning_summary = models.TextField(blank=True)
    # The id of the first task of a scale-out chain (DEV-101 for DEV-101.2); empty otherwise.
    scale_root = models.CharField(max_length=100, blank=True)
    # Manual order inside a board column (lower first), after priority.
    position = models.FloatField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    version = models.PositiveIntegerField(default=1)
    # What the task's pod suggested its successors do next (``complete``'s ``next_steps``).
    next_steps = models.JSONField(default=list, blank=True)
    # The holder's open question to a person (``ask``); empty when none is open. While it is
    # open the lease does not run.
    question = models.TextField(blank=True)
    asked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-priority", "position", "created_at", "id"]
        indexes = [
            # The claim query orders Ready as ``ordering`` does, with these same expressions,
            # so the database walks the index and stops at the first free, unblocked task.
            models.Index(*claim_index_expressions(), name="task_claim_order"),
            # The board's Ready column.
            models.Index(
                fields=["pod_owner", "status", "-priority", "position", "created_at"],
                name="task_pod_status_rank",
            ),
            # The board's Done column: most recent first.
            models.Index(fields=["pod_owner", "status", "-completed_at"], name="task_pod_done"),
            models.Index(fields=["status", "lease_expires_at"], name="task_lease"),
            # A claim first looks for the caller's own active task, then for an active one
            # nobody holds: without this, each claim read every active row of the pod (many,
            # when instances come and go without finishing).
            models.Index(
                fields=["pod_owner", "claimed_by"],
                condition=Q(status="active"),
                name="task_active_holder",
            ),
            models.Index(fields=["scale_root"], name="task_scale_root"),
            # The header's count of tasks waiting on a human: only those rows are indexed.
            models.Index(
                fields=["asked_at"],
                condition=Q(asked_at__isnull=False),
                name="task_waiting_on_human",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["ready", "active", "review", "done"]),
                name="task_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(handoff_mode__in=["sync", "async", "auto"]),
                name="task_handoff_mode_valid",
            ),
        ]

    def __str__(self):
        return f"{self.id} {self.title}"

    def is_blocked(self):
        """Return True while any task this one depends on is not done."""
        return self.depends_on.exclude(status=Status.DONE).exists()

    def blocking_ids(self):
        """Return the ids of the dependencies that are not done yet."""
        return list(self.depends_on.exclude(status=Status.DONE).values_list("id", flat=True))

    def clean(self):
        if self.handoff_from_id and self.handoff_from_id == self.id:
            raise ValidationError({"handoff_from": "A task cannot carry its own baton."})


class HandoffNote(models.Model):
    """A baton note: written by ``from_task``, addressed to ``to_task`` (may be empty)."""

    from_task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="notes_written")
    to_task = models.ForeignKey(
        Task, null=True, blank=True, on_delete=models.SET_NULL, related_name="notes_received"
    )
    note = models.TextField(blank=True)
    reason = models.CharField(max_length=64, default="completed")
    handoff_type = models.CharField(
        max_length=10, choices=HandoffType.choices, default=HandoffType.NORMAL
    )
    mode = models.CharField(max_length=5, choices=ResolvedMode.choices, default=ResolvedMode.ASYNC)
    token_count = models.PositiveIntegerField(default=0)
    author = models.CharField(max_length=150, blank=True)
    # The pod whose token wrote the note (empty for a person or the system): ``author`` is
    # free text a pod chooses, so it is no identity.
    author_pod = models.CharField(max_length=64, blank=True)
    # Why ``mode`` was resolved so: "sync", "auto: DevPod under its WIP limit (0/2)",
    # "auto: chosen by the pod", …
    why = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["to_task", "-created_at"], name="note_to_latest")]

    def __str__(self):
        return f"{self.from_task_id} → {self.to_task_id or '—'} ({self.reason})"


class TraceStep(models.Model):
    """One step of a task's ``reasoning_trace.yaml``."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="trace_steps")
    step = models.PositiveIntegerField(validators=validate_step)
    action = models.TextField(blank=True)
    rationale = models.TextField(blank=True)
    tokens = models.PositiveIntegerField(default=0)
    # The pod whose token appended the step (empty for a person, the system or an import).
    author_pod = models.CharField(max_length=64, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["task", "step", "id"]
        indexes = [models.Index(fields=["task", "step"], name="trace_task_step")]

    def __str__(self):
        return f"{self.task_id} step {self.step}"


class Thought(models.Model):
    """One entry of a task's ``chain_of_thought.yaml``."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="thoughts")
    step = models.PositiveIntegerField(validators=validate_step)
    thought = models.TextField()
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["task", "step", "id"]
        indexes = [models.Index(fields=["task", "step"], name="thought_task_step")]

    def __str__(self):
        return f"{self.task_id} thought {self.step}"


class AutoModeRule(models.Model):
    """How ``auto`` hands off to a successor of a given task type."""

    task_type = models.CharField(max_length=64, unique=True)
    mode = models.CharField(max_length=5, choices=ResolvedMode.choices)
    note = models.CharField(max_length=300, blank=True, help_text="Why this type starts this way.")

    class Meta:
        ordering = ["task_type"]
        verbose_name = "auto-mode rule"

    def __str__(self):
        return f"{self.task_type} → {self.mode}"


class Comment(models.Model):
    """A person's comment on a task, an answer to its open question, or a pod's question."""

    class Kind(models.TextChoices):
        COMMENT = "comment"
        QUESTION = "question"
        ANSWER = "answer"

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="comments")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.COMMENT)
    body = models.TextField()
    author = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["task", "created_at"], name="comment_task_time")]

    def __str__(self):
        return f"{self.task_id} {self.kind} by {self.author}"


class WebhookDelivery(models.Model):
    """One webhook to send (the outbox): written in the transaction of the change it reports."""

    class State(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"  # gave up after the retry window

    pod = models.ForeignKey(Pod, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(
        "Event", null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    kind = models.CharField(max_length=40)  # task.reserved, task.ready, …
    task_key = models.CharField(max_length=100)
    webhook_id = models.CharField(max_length=64, unique=True)
    url = models.URLField(max_length=500)
    payload = models.JSONField(default=dict)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="delivery_due")]
        verbose_name_plural = "webhook deliveries"

    def __str__(self):
        return f"{self.kind} {self.task_key} → {self.pod} ({self.state})"


class DeliveryAttempt(models.Model):
    """One try at sending a ``WebhookDelivery``: what the receiver answered, or the error."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="tries")
    at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["delivery", "at", "id"]

    def __str__(self):
        return f"{self.delivery_id} at {self.at:%H:%M:%S}: {self.status_code or self.error}"


class EventKind(models.TextChoices):
    CREATED = "created"
    CLAIMED = "claimed"
    ACTIVATED = "activated"
    COMPLETED = "completed"
    HANDOFF = "handoff"
    SCALED_OUT = "scaled_out"
    MOVED = "moved"
    LEASE_EXPIRED = "lease_expired"
    IMPORTED = "imported"
    EDITED = "edited"
    TRACED = "traced"
    DELETED = "deleted"
    SUBMITTED = "submitted"  # completed into Review
    REVIEWED = "reviewed"
    SENT_BACK = "sent_back"
    ASKED = "asked"
    ANSWERED = "answered"
    COMMENTED = "commented"
    PAUSED = "paused"
    RESUMED = "resumed"


class Event(models.Model):
    """An append-only history row; its id is the board's sequence number."""

    task = models.ForeignKey(
        Task, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    task_key = models.CharField(max_length=100, blank=True, db_index=True)
    kind = models.CharField(max_length=20, choices=EventKind.choices)
    actor = models.CharField(max_length=150, blank=True)
    from_status = models.CharField(max_length=10, blank=True)
    to_status = models.CharField(max_length=10, blank=True)
    from_pod = models.CharField(max_length=64, blank=True)
    to_pod = models.CharField(max_length=64, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # Flow metrics (tasks_app.insight): one kind's Events over a range of days, and
            # the first claim or creation of each task, read in task order from the index.
            models.Index(fields=["kind", "created_at"], name="event_kind_time"),
            models.Index(fields=["kind", "task_key", "created_at"], name="event_kind_task_time"),
        ]

    def __str__(self):
        return f"#{self.id} {self.kind} {self.task_key}"


class FlowDay(models.Model):
    """A closed UTC day whose flow figures are rolled up (``tasks_app.insight.rollup``).

    The rollups are derived from the Events and rebuilt from them at will; a day is only
    rolled up once no rule can add an Event to it.
    """

    day = models.DateField(primary_key=True)
    rolled_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"{self.day} rolled up"


class FlowRollup(models.Model):
    """One rolled-up flow figure of a pod on a closed day (``tasks_app.insight.rollup``).

    A count (``count``): claims, scale-outs, stalls, change requests, send-backs,
    ``cfd:<status>``, the day's net change of that column, and ``at:<status>``, the column at
    the end of the day (the last day of each rollup only). Or one task's figure, for the
    percentiles: a done Event (``done``: cycle and lead time, tokens, scale chain) or a claim
    after a workable baton (``sync`` or ``async``: the wait in ``seconds``).
    """

    day = models.DateField()
    pod = models.CharField(max_length=64, null=True)
    figure = models.CharField(max_length=24)
    count = models.IntegerField(null=True)
    task_key = models.CharField(max_length=100, null=True)
    event_id = models.BigIntegerField(null=True)
    at = models.DateTimeField(null=True)
    seconds = models.FloatField(null=True)
    lead_s = models.FloatField(null=True)
    tokens = models.BigIntegerField(null=True)
    chain = models.CharField(max_length=100, null=True)
    # A done row whose task was done again later: only each task's latest counts.
    superseded = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(fields=["figure", "day"], name="flowrollup_figure_day"),
            # A task's other done rows (``rollup._roll`` marks the older ones superseded).
            models.Index(fields=["figure", "task_key"], name="flowrollup_figure_task"),
        ]

    def __str__(self):
        return f"{self.day} {self.pod} {self.figure}"


def hash_token(raw):
    return hashlib.sha256(raw.encode()).hexdigest()


class PodToken(models.Model):
    """A bearer token that lets an agent act for one pod. Only its hash is stored."""

    pod = models.ForeignKey(Pod, on_delete=models.CASCADE, related_name="tokens")
    label = models.CharField(max_length=100, blank=True)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=16, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pod", "-created_at"]

    def __str__(self):
        return f"{self.pod} token {self.prefix}… {self.label}".strip()

    @property
    def is_active(self):
        return self.revoked_at is None

    @classmethod
    def issue(cls, *, pod, label=""):
        """Create a token for ``pod``; return ``(token, raw)``. The raw value is shown once."""
        raw = "pb_" + secrets.token_urlsafe(32)
        token = cls.objects.create(pod=pod, label=label, key_hash=hash_token(raw), prefix=raw[:10])
        return token, raw
