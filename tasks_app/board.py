"""Board queries and rendering helpers.

The board page, its "show more" pages, the move endpoint and live pushes (``tasks_app.live``)
all read and render cards through this module, so a card looks the same whichever path drew it.
Every function here issues a constant number of queries, whatever the number of tasks.
"""

from dataclasses import dataclass, field, replace

from django.db.models import Case, Count, IntegerField, Q, Value, When
from django.template.loader import render_to_string

from . import ordering
from .graph import Depends, chunks
from .ids import is_rework_id
from .models import Pod, Status, Task

PAGE_SIZE = 20
# A text search matching at most this many tasks is looked up once per page (``with_matches``).
SPARSE_MATCHES = 200
COLUMNS = [
    (Status.READY, "Ready"),
    (Status.ACTIVE, "Active"),
    (Status.REVIEW, "Review"),
    (Status.DONE, "Done"),
]
CARD_TEMPLATE = "tasks_app/board.html#card"


@dataclass(frozen=True)
class Filters:
    """What the board shows: one pod or all, one task type or all, a text search on id/title."""

    pod: str = ""
    task_type: str = ""
    q: str = ""
    # The ids the text search matched, when looked up once for a page (``with_matches``).
    matches: tuple | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_query(cls, data):
        return cls(
            pod=(data.get("pod") or "").strip(),
            task_type=(data.get("type") or "").strip(),
            q=(data.get("q") or "").strip()[:100],
        )

    @property
    def active(self):
        return bool(self.pod or self.task_type or self.q)

    def as_query(self):
        """Return the filters as URL parameters (only those set)."""
        pairs = {"pod": self.pod, "type": self.task_type, "q": self.q}
        return {k: v for k, v in pairs.items() if v}

    def apply(self, tasks):
        if self.pod:
            tasks = tasks.filter(pod_owner__name=self.pod)
        narrowing = self.narrowing()
        return tasks if narrowing is None else tasks.filter(narrowing)

    def narrowing(self):
        """Return the ``Q`` of the type and text filters, None when neither is set (a pod
        filter only hides other lanes)."""
        if not (self.task_type or self.q):
            return None
        q = Q()
        if self.task_type:
            q &= Q(task_type=self.task_type)
        if self.q:
            q &= self.text_match()
        return q

    def text_match(self):
        """Return the ``Q`` of the text search: id or title contains it, any case."""
        if self.matches is not None:
            # No match: a condition that holds for no row (an empty IN cannot be written).
            return Q(pk__in=self.matches) if self.matches else Q(pk__isnull=True)
        return Q(id__icontains=self.q) | Q(title__icontains=self.q)

    def with_matches(self):
        """Return these filters with the text search looked up once, for one page: a search
        that matches few tasks then costs one scan of the table, not one per column (each
        column would walk its whole index looking for matches). A search matching more than
        ``SPARSE_MATCHES`` keeps the per-column filter, which finds a page of dense matches
        quickly."""
        if not self.q or self.matches is not None:
            return self
        like = Q(id__icontains=self.q) | Q(title__icontains=self.q)
        ids = Task.objects.filter(like).order_by().values_list("pk", flat=True)
        ids = tuple(ids[: SPARSE_MATCHES + 1])
        return self if len(ids) > SPARSE_MATCHES else replace(self, matches=ids)

    def order(self, status):
        """Return the ``order_by`` of a column: the claim order, with a task whose id is the
        search text first (searching "DEV-101" puts DEV-101 before DEV-1010…)."""
        keys = ordering.column_order(status)
        if not self.q:
            return keys
        exact = Case(
            When(id__iexact=self.q, then=Value(0)), default=Value(1), output_field=IntegerField()
        )
        return [exact.asc(), *keys]


NO_FILTERS = Filters()


def lane_pods(filters=NO_FILTERS):
    pods = Pod.objects.order_by("order", "name")
    if filters.pod:
        pods = pods.filter(name=filters.pod)
    return list(pods)


def column_counts(filters=NO_FILTERS):
    """Return ``{(pod_id, status): n}`` for the filtered tasks, in one query."""
    return counts_and_active(filters)[0]


def counts_and_active(filters=NO_FILTERS, pods=None):
    """Return ``(counts, active)`` in one query: ``{(pod_id, status): n}`` for the filtered
    tasks, and ``{pod_id: n}`` active tasks of every pod, filters or not (a WIP limit is about
    all of a pod's work, never only what a search shows)."""
    tasks = Task.objects.all()
    if pods is not None:
        tasks = tasks.filter(pod_owner__in=pods)
    elif filters.pod:
        tasks = tasks.filter(pod_owner__name=filters.pod)
    narrowing = filters.narrowing()
    rows = tasks.order_by().values_list("pod_owner_id", "status")
    if narrowing is None:
        rows = rows.annotate(n=Count("pk"), total=Count("pk"))
    else:
        rows = rows.annotate(n=Count("pk", filter=narrowing), total=Count("pk"))
    counts, active = {}, {}
    for pod_id, status, n, total in rows:
        if n:
            counts[(pod_id, status)] = n
        if status == Status.ACTIVE:
            active[pod_id] = total
    return counts, active


def uses_review(pod, counts=None):
    """Return True when ``pod``'s lane shows a Review column: the pod requires review, or
    tasks of it are in review (``counts``: ``{(pod_id, status): n}``)."""
    return pod.review_required or bool(counts and counts.get((pod.pk, Status.REVIEW)))


def lane_columns(pod, counts=None):
    """Return the ``(status, label)`` columns of ``pod``'s lane: Review only where it is used,
    so boards without reviews look as they always did."""
    if uses_review(pod, counts):
        return COLUMNS
    return [column for column in COLUMNS if column[0] != Status.REVIEW]


def _attach_waits_for(tasks):
    """Set on every task what its card shows of its dependencies, in one query (two when a
    rework is among the cards).

    ``waits_for``: ids of the dependencies not done. ``done_deps``: the done ones (where work
    can be sent back). ``reworks``: its dependencies that are reworks (``<root>.fix<n>``) it
    sent back. ``fix_for``: for a rework, the tasks waiting for it.
    """
    deps = {}
    for chunk in chunks([t.pk for t in tasks]):
        rows = (
            Depends.objects.filter(from_task_id__in=chunk)
            .order_by("to_task_id")
            .values_list("from_task_id", "to_task_id", "to_task__status")
        )
        for from_id, to_id, status in rows:
            deps.setdefault(from_id, []).append((to_id, status))
    fixes = [t.pk for t in tasks if is_rework_id(t.pk)]
    waiting = {}
    if fixes:
        for from_id, to_id in (
            Depends.objects.filter(to_task_id__in=fixes)
            .order_by("from_task_id")
            .values_list("from_task_id", "to_task_id")
        ):
            waiting.setdefault(to_id, []).append(from_id)
    for task in tasks:
        mine = deps.get(task.pk, [])
        task.waits_for = [d for d, status in mine if status != Status.DONE]
        task.done_deps = [d for d, status in mine if status == Status.DONE]
        task.reworks = sorted((d for d, _ in mine if is_rework_id(d)), key=_rework_number)
        task.fix_for = waiting.get(task.pk, [])
    return tasks


def _rework_number(task_id):
    return int(task_id.rsplit(".fix", 1)[1])


def over_wip(task):
    """Return a warning when ``task`` is active in a lane now over its pod's WIP limit, else
    "" (a person may move a card over the limit; the board says so)."""
    pod = task.pod_owner
    if task.status != Status.ACTIVE or pod.wip_limit is None:
        return ""
    active = Task.objects.filter(pod_owner_id=pod.pk, status=Status.ACTIVE).count()
    if active <= pod.wip_limit:
        return ""
    return f"{pod.name} is over its WIP limit ({active}/{pod.wip_limit})."


def lane_load(pod, counts, active=None):
    """Return the WIP figures of ``pod``'s lane from ``{(pod_id, status): n}`` (or, when
    given, ``active``: ``{pod_id: n}`` over all tasks, as ``counts_and_active``)."""
    if active is None:
        active = {pod.pk: counts.get((pod.pk, Status.ACTIVE), 0)}
    active = active.get(pod.pk, 0)
    return {
        "pod": pod,
        "active": active,
        "over_wip": pod.wip_limit is not None and active > pod.wip_limit,
        "at_wip": pod.wip_limit is not None and active >= pod.wip_limit,
    }


# SQLite allows 500 terms in one compound SELECT; stay well under it.
MAX_UNION_TERMS = 300


def first_pages(filters=NO_FILTERS, limit=PAGE_SIZE, pods=None, counts=None):
    """Return ``{(pod_id, status): [task, …]}``: the first ``limit`` cards of every column
    (``counts``, when known, tells which lanes show a Review column).

    One statement: a ``UNION ALL`` of one small ``ORDER BY … LIMIT`` query per column, each
    served by the column's index, so the cost follows the number of columns shown, not the
    number of tasks. Plus one query for the blocked marks.
    """
    pods = lane_pods(filters) if pods is None else pods
    by_id = {pod.pk: pod for pod in pods}
    terms = []
    for pod in pods:
        for status, _label in lane_columns(pod, counts):
            column = filters.apply(Task.objects.filter(pod_owner_id=pod.pk, status=status))
            sql, params = column.order_by(*filters.order(status))[:limit].query.sql_with_params()
            terms.append((f"SELECT * FROM ({sql}) AS col{len(terms)}", params))
    pages = {}
    everything = []
    for start in range(0, len(terms), MAX_UNION_TERMS):
        chunk = terms[start : start + MAX_UNION_TERMS]
        sql = " UNION ALL ".join(term for term, _ in chunk)
        params = [p for _, term_params in chunk for p in term_params]
        for task in Task.objects.raw(sql, params):
            task.pod_owner = by_id[task.pod_owner_id]
            pages.setdefault((task.pod_owner_id, task.status), []).append(task)
            everything.append(task)
    for (_pod_id, status), tasks in pages.items():
        tasks.sort(key=ordering.sort_key(status))
        if filters.q:
            tasks.sort(key=lambda task: task.pk.casefold() != filters.q.casefold())
    _attach_waits_for(everything)
    return pages


def column_page(pod, status, filters=NO_FILTERS, offset=0, limit=PAGE_SIZE):
    """Return ``(tasks, next_offset or None)`` for one column, from ``offset``."""
    filters = filters.with_matches()
    tasks = list(
        filters.apply(Task.objects.filter(pod_owner=pod, status=status))
        .select_related("pod_owner")
        .order_by(*filters.order(status))[offset : offset + limit + 1]
    )
    more = len(tasks) > limit
    tasks = _attach_waits_for(tasks[:limit])
    return tasks, (offset + limit if more else None)


def board_lanes(filters=NO_FILTERS, limit=PAGE_SIZE):
    """Return the lanes of the board, in pod order, each with its three columns."""
    filters = filters.with_matches()
    pods = lane_pods(filters)
    counts, active = counts_and_active(filters)
    pages = first_pages(filters, limit, pods, counts)
    lanes = []
    for pod in pods:
        columns = []
        for status, label in lane_columns(pod, counts):
            count = counts.get((pod.pk, status), 0)
            cards = pages.get((pod.pk, status), [])
            columns.append(
                {
                    "status": status,
                    "label": label,
                    "count": count,
                    "cards": cards,
                    "next_offset": len(cards) if count > len(cards) else None,
                    "hidden": max(0, count - len(cards)),
                }
            )
        lanes.append(
            {
                **lane_load(pod, counts, active),
                "columns": columns,
                "has_review": uses_review(pod, counts),
                "current": first_column(columns),
            }
        )
    return lanes


# The column a phone shows first: the work in flight, else what waits, else what is done.
FIRST_COLUMN = (Status.ACTIVE, Status.REVIEW, Status.READY, Status.DONE)


def first_column(columns):
    """Return the status of the column a narrow screen shows first in a lane: the first of
    ``FIRST_COLUMN`` that has cards (Ready when none has)."""
    counts = {c["status"]: c["count"] for c in columns}
    return next((s for s in FIRST_COLUMN if counts.get(s)), Status.READY)


def task_types():
    return list(
        Task.objects.exclude(task_type="")
        .order_by("task_type")
        .values_list("task_type", flat=True)
        .distinct()
    )


def render_card(task, pods, request=None):
    """Return one card's html; ``task`` needs ``pod_owner`` and ``waits_for`` set."""
    context = {"task": task, "pods": pods, "statuses": COLUMNS}
    return render_to_string(CARD_TEMPLATE, context, request=request)


def render_cards(task_ids, request=None):
    """Return ``{task_id: card html}`` for the tasks that exist, in three queries.

    The html is the ``<article class="card" id="task-…">`` element, ready for an
    ``outerHTML`` swap. Ids of tasks that no longer exist are absent from the answer.
    """
    task_ids = list(task_ids)
    if not task_ids:
        return {}
    tasks = list(Task.objects.filter(pk__in=task_ids).select_related("pod_owner"))
    _attach_waits_for(tasks)
    pods = lane_pods()
    return {task.pk: render_card(task, pods, request) for task in tasks}


def render_counts(filters=NO_FILTERS):
    """Return out-of-band ``<span id="count-<Pod>-<status>">`` elements for every column.

    Also refreshes each lane's WIP badge (``wip-<Pod>``). Two queries.
    """
    counts, active = counts_and_active(filters)
    lanes = [lane_counts(pod, counts, active) for pod in lane_pods(filters)]
    return render_to_string("tasks_app/board.html#counts", {"counts": lanes})


def lane_counts(pod, counts, active=None):
    """Return what ``board.html#counts`` shows for ``pod``'s lane: its WIP figures and the
    count of each column it has, from ``{(pod_id, status): n}`` (and ``active``, as in
    ``lane_load``)."""
    return {
        **lane_load(pod, counts, active),
        "columns": [
            (status, counts.get((pod.pk, status), 0)) for status, _ in lane_columns(pod, counts)
        ],
    }


def card_place(task_id):
    """Return ``(lane, before)`` for a task's card: the DOM id of its column and of the card
    that follows it there ("" when it goes last); None when the task does not exist."""
    from .live.changes import CARD_FIELDS, lane_id
    from .live.placement import next_in_column

    row = Task.objects.filter(pk=task_id).values(*CARD_FIELDS).first()
    if row is None:
        return None
    before = next_in_column(row)
    return lane_id(row["pod_owner__name"], row["status"]), (f"task-{before}" if before else "")
