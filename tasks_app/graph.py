"""The task graph: dependencies and batons, as the rules, the board and the import read them.

``depends_on`` edges point from a task to what it waits for; a task's *successors* are the
tasks that depend on it or carry its baton (``handoff_from``). A task is *blocked* while a
dependency is not done.
"""

from django.db.models import Exists, F, OuterRef, Value

from .models import Status, Task
from .prepared import prepared

Depends = Task.depends_on.through
CHUNK = 500  # ids per IN (...) query, well under SQLite's variable limit


def chunks(items, size=CHUNK):
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def blocked_exists():
    """An ``Exists`` that is true while the outer task has a dependency not done."""
    return Exists(
        Depends.objects.filter(from_task_id=OuterRef("pk")).exclude(to_task__status=Status.DONE)
    )


def waiting_for(task_ids):
    """Return ``{task id: [ids of its dependencies not done]}`` for the blocked ones."""
    waits = {}
    for chunk in chunks(task_ids):
        rows = (
            Depends.objects.filter(from_task_id__in=chunk)
            .exclude(to_task__status=Status.DONE)
            .order_by("to_task_id")
            .values_list("from_task_id", "to_task_id")
        )
        for from_id, to_id in rows:
            waits.setdefault(from_id, []).append(to_id)
    return waits


def dependency_states(task_id):
    """Return ``[(id, status)]`` of the tasks ``task_id`` depends on, by id."""
    return _dependency_states(task=task_id)


@prepared(task=str)
def _dependency_states(task):
    return Task.objects.filter(dependents__pk=task).order_by("id").values_list("id", "status")


def successor_ids(task_id):
    """Return the ids of the tasks that depend on ``task_id`` or carry its baton."""
    return {pk for (pk,) in _successors(task=task_id)}


@prepared(task=str)
def _successors(task):
    # Two index lookups: one query with an OR of both left the planner only the status index.
    depending = Depends.objects.filter(to_task_id=task).order_by().values_list("from_task_id")
    batons = Task.objects.filter(handoff_from_id=task).order_by().values_list("pk")
    return depending.union(batons)


def neighbours(task_id):
    """Return ``(dependency_states(task_id), successor_ids(task_id))``, read in one query
    (completing a task needs both)."""
    dependencies, successors = [], set()
    for side, pk, status in _neighbours(task=task_id):
        if side == "d":
            dependencies.append((pk, status))
        else:
            successors.add(pk)
    return sorted(dependencies), successors


@prepared(task=str)
def _neighbours(task):
    both = {"side": Value("s"), "state": Value("")}
    dependencies = (
        Task.objects.filter(dependents__pk=task)
        .annotate(side=Value("d"), state=F("status"))
        .order_by()
        .values_list("side", "pk", "state")
    )
    depending = (
        Depends.objects.filter(to_task_id=task)
        .annotate(**both)
        .order_by()
        .values_list("side", "from_task_id", "state")
    )
    batons = (
        Task.objects.filter(handoff_from_id=task)
        .annotate(**both)
        .order_by()
        .values_list("side", "pk", "state")
    )
    return dependencies.union(depending, batons, all=True)


def extend_from_database(graph):
    """Add to ``graph`` (``{id: [dependency ids]}``) the stored edges of every task it reaches
    but does not list itself; the tasks it lists keep their own (new) edges."""
    frontier = {d for deps in graph.values() for d in deps if d not in graph}
    while frontier:
        for node in frontier:
            graph[node] = []
        rows = []
        for chunk in chunks(sorted(frontier)):
            rows += Depends.objects.filter(from_task_id__in=chunk).values_list(
                "from_task_id", "to_task_id"
            )
        frontier = set()
        for src, dst in rows:
            graph[src].append(dst)
            if dst not in graph:
                frontier.add(dst)
    return graph


def find_cycles(graph, starts):
    """Yield each cycle a depth-first walk from ``starts`` finds, as ``[a, b, …, a]``."""
    colour, position = {}, {}
    for start in starts:
        if start in colour:
            continue
        path = [start]
        position[start] = 0
        colour[start] = 1
        stack = [iter(graph.get(start, ()))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                done = path.pop()
                colour[done] = 2
                del position[done]
                stack.pop()
                continue
            state = colour.get(nxt)
            if state is None:
                colour[nxt] = 1
                position[nxt] = len(path)
                path.append(nxt)
                stack.append(iter(graph.get(nxt, ())))
            elif state == 1:
                yield path[position[nxt] :] + [nxt]


def find_cycle(task_id, dependency_ids):
    """Return the path ``[task_id, …, task_id]`` that would close a cycle if ``task_id``
    depended on ``dependency_ids`` (with the stored edges of every other task), or None."""
    graph = extend_from_database({task_id: list(dependency_ids)})
    for cycle in find_cycles(graph, [task_id]):
        if cycle[0] == task_id:
            return cycle
    return None
