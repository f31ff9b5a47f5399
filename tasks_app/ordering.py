"""The order of the cards in each board column, which is also the order ``next`` claims in.

One definition, read by the claim (``workflow``), the board's pages (``board``), live pushes
(``live``: where a changed card goes) and the claim index (``models``). Ready is ordered as
``next`` picks: higher priority first, then fresh work before tasks that carry a baton, then
the manual position, then the oldest. This module imports no model, so ``models`` can use it.
"""

from django.db.models import F, Func, IntegerField, Max, Q

READY, ACTIVE, DONE = "ready", "active", "done"

# (field, descending) per column, most significant first. ``carries_baton`` is an annotation
# (``carries_baton()``), every other name a Task field. Nulls sort last in every column.
COLUMN_KEYS = {
    READY: (
        ("priority", True),
        ("carries_baton", False),
        ("position", False),
        ("created_at", False),
        ("id", False),
    ),
    ACTIVE: (("priority", True), ("position", False), ("started_at", False), ("id", False)),
    DONE: (("completed_at", True), ("id", True)),
}
# Review waits like Active does, in the order the tasks entered it.
COLUMN_KEYS["review"] = COLUMN_KEYS[ACTIVE]
# The only keys that may be null; they sort last. Every other key is written without a nulls
# clause, so the order matches the indexes exactly and the database walks them instead of
# sorting the whole column.
NULLABLE = frozenset({"started_at", "completed_at"})


class CarriesBaton(Func):
    """0 for fresh work (no ``handoff_from``), 1 for a task that carries a baton.

    Written with literal 0 and 1, not bound parameters: SQLite matches an ORDER BY term to an
    index expression only when the two are the same text, so a ``CASE … THEN ? ELSE ?`` would
    make every claim sort the whole Ready column instead of walking ``task_claim_order``.
    """

    template = "CASE WHEN %(expressions)s IS NULL THEN 0 ELSE 1 END"
    output_field = IntegerField()


def carries_baton():
    return CarriesBaton(F("handoff_from"))


def _expression(name):
    return carries_baton() if name == "carries_baton" else F(name)


def column_order(status):
    """Return the ``order_by`` expressions of ``status``'s column."""
    order = []
    for name, desc in COLUMN_KEYS[status]:
        nulls = {"nulls_last": True} if name in NULLABLE else {}
        expression = _expression(name)
        order.append(expression.desc(**nulls) if desc else expression.asc(**nulls))
    return order


def sql_order(status, column):
    """Return ``status``'s column order as an SQL ``ORDER BY`` list, for statements written by
    hand; ``column(name)`` gives the SQL of a key (``carries_baton`` included)."""
    return ", ".join(
        f"{column(name)} {'DESC' if desc else 'ASC'}{' NULLS LAST' if name in NULLABLE else ''}"
        for name, desc in COLUMN_KEYS[status]
    )


def claim_index_expressions():
    """Return the expressions of the index the ready claim walks (pod, status, Ready's order)."""
    return (
        F("pod_owner"),
        F("status"),
        *(
            _expression(name).desc() if desc else _expression(name)
            for name, desc in COLUMN_KEYS[READY]
        ),
    )


def key_values(task_or_row, status):
    """Return the values of ``status``'s sort key for a task instance or a ``values()`` row."""

    def get(name):
        if isinstance(task_or_row, dict):
            if name == "carries_baton":
                return 0 if task_or_row.get("handoff_from") is None else 1
            return task_or_row[name]
        if name == "carries_baton":
            return 0 if task_or_row.handoff_from_id is None else 1
        return getattr(task_or_row, name)

    return [get(name) for name, _ in COLUMN_KEYS[status]]


def sort_key(status):
    """Return a Python sort key equal to ``column_order(status)`` for task instances."""
    keys = COLUMN_KEYS[status]

    def key(task):
        parts = []
        for (_name, desc), value in zip(keys, key_values(task, status), strict=True):
            parts.append((value is None, _Desc(value) if desc else _Asc(value)))
        return parts

    return key


class _Asc:
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __lt__(self, other):
        return self.value is not None and other.value is not None and self.value < other.value

    def __eq__(self, other):
        return self.value == other.value


class _Desc(_Asc):
    def __lt__(self, other):
        return self.value is not None and other.value is not None and self.value > other.value


def after_in_column(status, values):
    """Return a ``Q`` for the tasks that come after a card with key ``values`` in its column.

    None when a key value is unknown (null): the caller cannot place the card exactly. Callers
    annotate ``carries_baton`` when they filter a Ready column.
    """
    after, equal = Q(), Q()
    for (name, desc), value in zip(COLUMN_KEYS[status], values, strict=True):
        if value is None:
            return None
        after |= equal & Q(**{f"{name}__lt" if desc else f"{name}__gt": value})
        equal &= Q(**{name: value})
    return after


def position_between(task, status, after_id, before_id):
    """Return the ``position`` that puts ``task`` between two cards of its column, or None.

    Only neighbours with the task's priority count (priority orders the column first); None
    when there is nothing to order against, and in Done (ordered by completion time). When
    the neighbours share a position (every task starts at 0), only the cards of that tie up
    to the upper neighbour get new positions, below the tie: a drop near the top of a column
    of thousands writes a handful of rows.
    """
    from .models import Task

    if status == DONE:
        return None
    band = Task.objects.filter(
        pod_owner_id=task.pod_owner_id, status=status, priority=task.priority
    ).exclude(pk=task.pk)
    found = dict(band.filter(pk__in=[after_id, before_id]).values_list("pk", "position"))
    above, below = found.get(after_id), found.get(before_id)
    if above is None and below is None:
        return None
    if above is None:
        return below - 1.0
    if below is None:
        return above + 1.0
    if above < below:
        return (above + below) / 2
    if above == below:
        return _split_tie(band, status, above, after_id)
    # The neighbours' positions disagree with their order (a baton mark sorts before the
    # position): space the whole band out by position.
    others = list(band.order_by("position", "created_at", "id").only("pk", "position"))
    for index, other in enumerate(others):
        other.position = float(index)
    Task.objects.bulk_update(others, ["position"], batch_size=500)
    spaced = {other.pk: other.position for other in others}
    return (spaced[after_id] + spaced[before_id]) / 2


def _split_tie(band, status, tied, after_id):
    """Return a position just after card ``after_id``, whose position ``tied`` it shares with
    the card below it: the cards of the tie that come up to ``after_id`` (in column order) move
    into the gap below ``tied``, keeping their order; the rest of the tie keeps ``tied``."""
    from .models import Task

    run = band.filter(position=tied).annotate(carries_baton=carries_baton())
    prefix = []
    for pk in run.order_by(*column_order(status)).values_list("pk", flat=True).iterator():
        prefix.append(pk)
        if pk == after_id:
            break
    lower = band.filter(position__lt=tied).aggregate(top=Max("position"))["top"]
    if lower is None:
        lower = tied - (len(prefix) + 1)
    step = (tied - lower) / (len(prefix) + 1)
    Task.objects.bulk_update(
        [Task(pk=pk, position=lower + (i + 1) * step) for i, pk in enumerate(prefix)],
        ["position"],
        batch_size=500,
    )
    return lower + (len(prefix) + 0.5) * step
