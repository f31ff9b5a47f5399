"""The delivery chain of a task, as a graph laid out left to right.

The chain is every task reachable from the task through dependencies and batons in either
direction (continuations carry their original's baton; a rework task is depended on by the
task that sent the work back), found by one recursive query and capped at ``MAX_NODES``.
Edges run from the earlier task to the later one: ``dependency``, ``baton``, ``continuation``
(a scale-out), ``rework`` (from the task that was sent back to its ``.fix`` task, and from that
to the task waiting for it).

Columns are dependency depth (a task sits right of everything it waits for), rows are pod lanes
in the board's pod order, so a chain reads like the board turned on its side: left to right in
the order work happened, one lane per pod. The critical path walks back from the task that
finished last through, each time, the predecessor that finished last: the tasks that set the
delivery's end. The SVG is drawn here, so the page needs no script to show it.
"""

import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape as esc

from django.db import connection
from django.urls import reverse
from django.utils import timezone

from .sql import DEPENDS, EVENT, POD, TASK, dialect, fetch

MAX_NODES = 400
NODE_W, NODE_H = 176, 62
GAP_X, GAP_Y = 44, 14
LANE_LABEL_W, LANE_PAD = 112, 12
REWORK_RE = re.compile(r"^(?P<root>.+)\.fix\d+$")
DAG_KINDS = ("dependency", "baton", "continuation", "rework")


@dataclass
class Node:
    id: str
    title: str
    pod: str
    status: str
    tokens: int
    scale_root: str
    version: int
    created_at: datetime
    completed_at: datetime | None
    handoff_from: str | None
    mode: str = ""
    wait_s: float | None = None
    waiting_since: datetime | None = None
    rank: int = 0
    row: int = 0
    x: int = 0
    y: int = 0
    critical: bool = False
    preds: list = field(default_factory=list)


@dataclass
class Edge:
    source: str
    target: str
    kind: str
    critical: bool = False


@dataclass
class Chain:
    task_id: str
    nodes: dict
    edges: list
    lanes: list  # [(pod, top, height)]
    width: int
    height: int
    truncated: bool
    stamp: str

    def ordered_nodes(self):
        return sorted(self.nodes.values(), key=lambda n: (n.rank, n.pod, n.created_at, n.id))


def chain_ids(task_id, limit=MAX_NODES):
    """Return the ids of the tasks linked to ``task_id`` (itself first), nearest first."""
    if connection.vendor == "postgresql":
        sql = f"""
            WITH RECURSIVE chain(id) AS (
                SELECT %(id)s::varchar
                UNION
                SELECT n.id FROM chain c CROSS JOIN LATERAL (
                    SELECT d.to_task_id AS id FROM {DEPENDS} d WHERE d.from_task_id = c.id
                    UNION ALL
                    SELECT d.from_task_id FROM {DEPENDS} d WHERE d.to_task_id = c.id
                    UNION ALL
                    SELECT t.handoff_from_id FROM {TASK} t
                    WHERE t.id = c.id AND t.handoff_from_id IS NOT NULL
                    UNION ALL
                    SELECT t.id FROM {TASK} t WHERE t.handoff_from_id = c.id
                ) n
            )
            SELECT id FROM chain LIMIT %(limit)s
        """
    else:
        sql = f"""
            WITH RECURSIVE chain(id) AS (
                SELECT %(id)s
                UNION SELECT d.to_task_id FROM chain c JOIN {DEPENDS} d ON d.from_task_id = c.id
                UNION SELECT d.from_task_id FROM chain c JOIN {DEPENDS} d ON d.to_task_id = c.id
                UNION SELECT t.handoff_from_id FROM chain c JOIN {TASK} t ON t.id = c.id
                    WHERE t.handoff_from_id IS NOT NULL
                UNION SELECT t.id FROM chain c JOIN {TASK} t ON t.handoff_from_id = c.id
            )
            SELECT id FROM chain LIMIT %(limit)s
        """
    return [row[0] for row in fetch(sql, {"id": task_id, "limit": limit + 1})]


def build_chain(task_id, limit=MAX_NODES):
    """Return the laid-out ``Chain`` of ``task_id``, or None when there is no such task."""
    ids = chain_ids(task_id, limit)
    truncated = len(ids) > limit
    ids = ids[:limit]
    d = dialect()
    rows = fetch(
        f"""
        SELECT t.id, t.title, p.name, t.status, t.token_count, t.scale_root, t.version,
            t.created_at, t.completed_at, t.handoff_from_id, p."order"
        FROM {TASK} t JOIN {POD} p ON p.id = t.pod_owner_id WHERE {_among(d, "t.id")}
        """,
        {"ids": _ids_param(d, ids)},
    )
    nodes = {row[0]: Node(*row[:7], *map(_as_datetime, row[7:9]), row[9]) for row in rows}
    if task_id not in nodes:
        return None
    pod_order = {row[2]: row[10] for row in rows}
    edges = _edges(d, nodes)
    _modes_and_waits(d, nodes)
    _rank(nodes, edges)
    _critical_path(nodes, edges)
    lanes, width, height = _place(nodes, pod_order)
    stamp = hashlib.sha1(
        "|".join(f"{n.id}:{n.version}" for n in sorted(nodes.values(), key=lambda n: n.id)).encode()
    ).hexdigest()[:16]
    return Chain(task_id, nodes, edges, lanes, width, height, truncated, stamp)


def _among(d, column):
    """``column`` is one of the ids in parameter ``ids`` (one parameter, however many ids)."""
    if d.postgres:
        return f"{column} = ANY(%(ids)s)"
    return f"{column} IN (SELECT value FROM json_each(%(ids)s))"


def _ids_param(d, ids):
    return list(ids) if d.postgres else json.dumps(list(ids))


def _as_datetime(value):
    """A timestamp from a raw query: SQLite answers naive UTC (or text), PostgreSQL aware."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value is None or value.tzinfo:
        return value
    return value.replace(tzinfo=UTC)


def chain_stamp(task_id, limit=MAX_NODES):
    """A short fingerprint of the chain's tasks and versions: equal stamps, nothing to redraw."""
    ids = chain_ids(task_id, limit)[:limit]
    d = dialect()
    pairs = sorted(
        fetch(
            f"SELECT t.id, t.version FROM {TASK} t WHERE {_among(d, 't.id')}",
            {"ids": _ids_param(d, ids)},
        )
    )
    return hashlib.sha1("|".join(f"{i}:{v}" for i, v in pairs).encode()).hexdigest()[:16]


def _edges(d, nodes):
    ids = set(nodes)
    found = {}
    links = fetch(
        f"SELECT from_task_id, to_task_id FROM {DEPENDS} d "
        f"WHERE {_among(d, 'd.from_task_id')} AND {_among(d, 'd.to_task_id')}",
        {"ids": _ids_param(d, nodes)},
    )
    for dependent, prerequisite in links:
        kind = "rework" if REWORK_RE.match(prerequisite) else "dependency"
        found[(prerequisite, dependent)] = kind
    for node in nodes.values():
        source = node.handoff_from
        if source in ids:
            is_continuation = bool(node.scale_root) and source.startswith(node.scale_root)
            found[(source, node.id)] = "continuation" if is_continuation else "baton"
        rework = REWORK_RE.match(node.id)
        if rework:
            root = rework.group("root")
            origin = _latest_of_scale_chain(nodes, root)
            if origin and (origin, node.id) not in found:
                found[(origin, node.id)] = "rework"
    edges = [Edge(s, t, k) for (s, t), k in sorted(found.items())]
    for edge in edges:
        nodes[edge.target].preds.append(edge.source)
    return edges


def _latest_of_scale_chain(nodes, root):
    """The task a rework of ``root`` reworks: the root, or its latest continuation shown."""
    members = [n for n in nodes.values() if n.id == root or n.scale_root == root]
    members = [n for n in members if not REWORK_RE.match(n.id)]
    if not members:
        return None
    return max(members, key=lambda n: (n.created_at, n.id)).id


def _modes_and_waits(d, nodes):
    """Set each node's resolved mode and its wait from becoming workable to its claim."""
    fields = ", ".join(
        d.json_text("e.payload", key) for key in ("continuation_of", "blocked", "mode", "why")
    )
    events = fetch(
        f"""
        SELECT e.task_key, e.kind, e.created_at, {fields} FROM {EVENT} e
        WHERE {_among(d, "e.task_key")} AND e.kind IN ('created', 'handoff', 'claimed')
        ORDER BY e.created_at, e.id
        """,
        {"ids": _ids_param(d, nodes)},
    )
    workable = {}
    for key, kind, at, continuation_of, blocked, mode, why in events:
        node = nodes[key]
        at = _as_datetime(at)
        if kind == "created":
            workable.setdefault(key, at)
            if continuation_of:
                node.mode = "scale"
        elif kind == "handoff":
            if blocked == "true":
                continue
            workable[key] = at
            mode = mode or ""
            node.mode = f"auto→{mode}" if (why or "").startswith("auto") else mode
        elif kind == "claimed" and key in workable:
            node.wait_s = (at - workable.pop(key)).total_seconds()
    for key, since in workable.items():
        node = nodes[key]
        if node.status in ("ready", "active") and node.wait_s is None:
            node.waiting_since = since


def _rank(nodes, edges):
    """Column of each node: one more than its furthest predecessor (Kahn's order)."""
    succ = defaultdict(list)
    indegree = dict.fromkeys(nodes, 0)
    for edge in edges:
        succ[edge.source].append(edge.target)
        indegree[edge.target] += 1
    queue = sorted((n for n, d in indegree.items() if d == 0), key=lambda i: nodes[i].created_at)
    seen = 0
    while queue:
        current = queue.pop(0)
        seen += 1
        for nxt in succ[current]:
            nodes[nxt].rank = max(nodes[nxt].rank, nodes[current].rank + 1)
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                queue.append(nxt)
    if seen < len(nodes):  # a cycle (corrupted data): put what is left after the rest
        top = max((n.rank for n in nodes.values()), default=0)
        for key, degree in indegree.items():
            if degree > 0:
                nodes[key].rank = top + 1


def _critical_path(nodes, edges):
    now = timezone.now()

    def finished(node):
        return node.completed_at or now

    current = max(nodes.values(), key=lambda n: (finished(n), n.rank, n.id))
    current.critical = True
    steps = set()
    while current.preds:
        previous = max((nodes[p] for p in current.preds), key=lambda n: (finished(n), n.id))
        if previous.critical:
            break
        steps.add((previous.id, current.id))
        previous.critical = True
        current = previous
    for edge in edges:
        edge.critical = (edge.source, edge.target) in steps


def _place(nodes, pod_order):
    lanes_of = defaultdict(list)
    for node in nodes.values():
        lanes_of[node.pod].append(node)
    lanes, top = [], 0
    max_rank = max((n.rank for n in nodes.values()), default=0)
    for pod in sorted(lanes_of, key=lambda p: (pod_order[p], p)):
        cells = defaultdict(list)
        for node in sorted(lanes_of[pod], key=lambda n: (n.created_at, n.id)):
            cells[node.rank].append(node)
        rows = max(len(c) for c in cells.values())
        for rank, cell in cells.items():
            for row, node in enumerate(cell):
                node.row = row
                node.x = LANE_LABEL_W + GAP_X // 2 + rank * (NODE_W + GAP_X)
                node.y = top + LANE_PAD + row * (NODE_H + GAP_Y)
        height = 2 * LANE_PAD + rows * NODE_H + (rows - 1) * GAP_Y
        lanes.append((pod, top, height))
        top += height
    width = LANE_LABEL_W + GAP_X + (max_rank + 1) * (NODE_W + GAP_X)
    return lanes, width, top


# Drawing -----------------------------------------------------------------------------------


def duration(seconds):
    """``95`` → ``1m 35s``; short enough for a node."""
    if seconds is None:
        return "—"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds}s" if seconds else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{hours // 24}d {hours % 24}h"


def node_wait(node):
    if node.wait_s is not None:
        return f"waited {duration(node.wait_s)}"
    if node.waiting_since is not None:
        return f"waiting since {node.waiting_since:%m-%d %H:%M} UTC"
    return ""


def tokens(count):
    return f"{count / 1000:.1f}k tok" if count >= 1000 else f"{count} tok"


def _clip(text, size):
    return text if len(text) <= size else text[: size - 1] + "…"


def render_svg(chain):
    """Return the chain as an SVG document fragment (classes only: styles come from CSS)."""
    href = task_href_maker()
    out = [
        f'<svg class="chain-svg" xmlns="http://www.w3.org/2000/svg" width="{chain.width}" '
        f'height="{chain.height}" viewBox="0 0 {chain.width} {chain.height}" role="img" '
        f'aria-labelledby="chain-svg-title">'
        f'<title id="chain-svg-title">Delivery chain of {esc(chain.task_id)}: '
        f"{len(chain.nodes)} tasks</title>"
        "<defs>"
    ]
    for kind in (*DAG_KINDS, "critical"):
        out.append(
            f'<marker id="arrow-{kind}" class="arrow arrow-{kind}" viewBox="0 0 10 10" refX="9" '
            'refY="5" markerUnits="userSpaceOnUse" markerWidth="10" markerHeight="10" '
            'orient="auto-start-reverse">'
            '<path d="M 0 0 L 10 5 L 0 10 z"/></marker>'
        )
    out.append("</defs>")
    for index, (pod, top, height) in enumerate(chain.lanes):
        out.append(
            f'<g class="lane lane-{index % 2}"><rect x="0" y="{top}" width="{chain.width}" '
            f'height="{height}"/><text class="lane-name" x="10" y="{top + 22}">'
            f"{esc(pod)}</text></g>"
        )
    for edge in chain.edges:
        out.append(_edge_path(chain.nodes[edge.source], chain.nodes[edge.target], edge))
    for node in chain.ordered_nodes():
        out.append(_node_group(node, chain.task_id, href(node.id)))
    out.append("</svg>")
    return "".join(out)


def render_rows(chain):
    """Return the rows (``<tr>``) of the chain's table, one per task, in the graph's order."""
    href = task_href_maker()
    return "".join(
        f'<tr><th scope="row"><a href="{esc(href(node.id))}">{esc(node.id)}</a></th>'
        f"<td>{esc(node.pod)}</td><td>{esc(node.status)}</td>"
        f"<td>{esc(node.mode or '—')} · {tokens(node.tokens)}</td>"
        f"<td>{esc(node_wait(node) or '—')}</td><td>{esc(', '.join(node.preds) or '—')}</td>"
        f"<td>{'yes' if node.critical else ''}</td></tr>"
        for node in chain.ordered_nodes()
    )


def _edge_path(a, b, edge):
    x1, y1 = a.x + NODE_W, a.y + NODE_H // 2
    x2, y2 = b.x, b.y + NODE_H // 2
    if x2 > x1:
        bend = max(24, (x2 - x1) // 2)
        d = f"M {x1} {y1} C {x1 + bend} {y1}, {x2 - bend} {y2}, {x2} {y2}"
    else:  # a loop back (or a same-column link): leave below, come back in from the left
        low = max(a.y, b.y) + NODE_H + GAP_Y // 2
        d = f"M {x1} {y1} C {x1 + 40} {low + 30}, {x2 - 40} {low + 30}, {x2} {y2}"
    kind = "critical" if edge.critical else edge.kind
    classes = f"edge edge-{edge.kind}" + (" critical" if edge.critical else "")
    return (
        f'<path class="{classes}" d="{d}" marker-end="url(#arrow-{kind})">'
        f"<title>{esc(a.id)} → {esc(b.id)} ({edge.kind})</title></path>"
    )


def _node_group(node, focus, href):
    classes = f"node status-{node.status}"
    if node.critical:
        classes += " critical"
    if node.id == focus:
        classes += " focus"
    facts = esc(f"{node.mode or '—'} · {tokens(node.tokens)}")
    wait = esc(node_wait(node))
    key = esc(node.id)
    x, y = node.x, node.y
    return (
        f'<a href="{esc(href)}" class="node-link" id="node-{key}">'
        f'<g class="{classes}" data-task-id="{key}">'
        f"<title>{key}: {esc(node.title)} — {node.status}, {facts}"
        f"{', ' + wait if wait else ''}</title>"
        f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6"/>'
        f'<text class="node-id" x="{x + 8}" y="{y + 17}">{esc(_clip(node.id, 17))}</text>'
        f'<text class="node-status" x="{x + NODE_W - 8}" y="{y + 17}" text-anchor="end">'
        f"{node.status}</text>"
        f'<text class="node-facts" x="{x + 8}" y="{y + 35}">{facts}</text>'
        f'<text class="node-wait" x="{x + 8}" y="{y + 52}">{wait}</text>'
        "</g></a>"
    )


def task_href_maker():
    """Return ``href(task_id)``, the detail URL of a task, from one ``reverse`` (ids are
    letters, digits, '.', '_' and '-', which a URL path keeps as they are)."""
    placeholder = "T-0"
    prefix, suffix = reverse("task_detail", args=[placeholder]).split(placeholder)
    return lambda task_id: f"{prefix}{task_id}{suffix}"
