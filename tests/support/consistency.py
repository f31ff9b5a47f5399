"""The invariants of the task graph and its event log, checked after a stress or a fault run.

A stress run and a fault test each end by asking the database whether anything went wrong;
both ask the same questions here, so a rule they prove is stated once.
"""


def check_consistency(*, expect_all_done=False):
    """Check the task graph and the event log in the current Django database.

    Return a dict ``name → list of problems`` (each list empty when the invariant holds):
    done exactly once, no double claim, successors started only after their dependencies,
    sync successors of a done task started, scale-out successors waiting for the continuation,
    the event log replaying to every task's status.
    """
    from tasks_app.models import Event, HandoffNote, Task

    Depends = Task.depends_on.through
    problems = {
        "not_done": [],
        "finished_twice": [],
        "done_without_event": [],
        "double_claims": [],
        "started_before_dependency": [],
        "started_at_before_dependency_completed_at": [],
        "sync_successor_not_started": [],
        "scale_out_half_applied": [],
        "successor_skipped_continuation": [],
        "event_log_mismatch": [],
    }
    tasks = {
        row[0]: row
        for row in Task.objects.values_list(
            "id", "status", "started_at", "completed_at", "handoff_mode", "handoff_from_id"
        )
    }
    edges = list(Depends.objects.values_list("from_task_id", "to_task_id"))  # (dependent, dep)
    finish_events = {}
    claims = {}
    replay = {}
    mismatched = set()
    scale_events = []
    finish_seq = {}  # task → id of its (last) completed/scaled_out event
    active_seq = {}  # task → id of the first event that made it active
    for seq, task_key, kind, from_status, to_status, payload in Event.objects.order_by(
        "id"
    ).values_list("id", "task_key", "kind", "from_status", "to_status", "payload"):
        if kind in ("completed", "scaled_out"):
            finish_events[task_key] = finish_events.get(task_key, 0) + 1
            finish_seq[task_key] = seq
        if to_status == "active" and from_status != "active" and task_key not in active_seq:
            # A sync handoff activates the successor inside the completing transaction, just
            # before that task's own completed event: remember whose completion it was.
            via = payload.get("handoff_from") if kind == "handoff" else None
            active_seq[task_key] = (seq, via)
        if kind == "scaled_out":
            scale_events.append((task_key, payload))
        if kind == "claimed":
            claims.setdefault(task_key, []).append(payload.get("instance", ""))
        if kind in ("lease_expired", "moved") and task_key in claims:
            claims[task_key].append(None)  # a legitimate release: the next claim is a new one
        if to_status:
            current = replay.get(task_key)
            if from_status and current is not None and from_status != current:
                mismatched.add(task_key)
            replay[task_key] = to_status
    for task_id, (_, status, _started_at, completed_at, _mode, _baton) in tasks.items():
        if status != "done":
            problems["not_done"].append(task_id)
        finished = finish_events.get(task_id, 0)
        if status == "done" and finished == 0:
            problems["done_without_event"].append(task_id)
        if finished > 1:
            problems["finished_twice"].append(task_id)
        if status == "done" and completed_at is None:
            problems["done_without_event"].append(f"{task_id} (no completed_at)")
        if replay.get(task_id) != status or task_id in mismatched:
            problems["event_log_mismatch"].append(
                f"{task_id}: events say {replay.get(task_id)}, row says {status}"
            )
    for task_id, holders in claims.items():
        run = []
        for holder in holders:
            if holder is None:
                run = []
                continue
            run.append(holder)
            if len(run) > 1:
                problems["double_claims"].append(f"{task_id}: {run}")
                break
    # Every edge: the dependent started only after its dependency was done, by the event
    # sequence (commit order) and by the timestamps the rows show.
    for dependent, dependency in edges:
        dep_row, row = tasks.get(dependency), tasks.get(dependent)
        if row is None or dep_row is None:
            continue
        if _started_early(active_seq.get(dependent), dependency, finish_seq):
            problems["started_before_dependency"].append(
                f"{dependent} (event #{active_seq[dependent][0]}) before {dependency} was done"
            )
        if row[2] is not None and (dep_row[3] is None or row[2] < dep_row[3]):
            problems["started_at_before_dependency_completed_at"].append(
                f"{dependent} {row[2].isoformat()} < {dependency} {dep_row[3]}"
            )
    # A done sync task: each successor whose dependencies are all done has started.
    undone_deps = {}
    successors = {}
    for dependent, dependency in edges:
        if tasks.get(dependency, (None, "ready"))[1] != "done":
            undone_deps.setdefault(dependent, []).append(dependency)
        successors.setdefault(dependency, set()).add(dependent)
    for task_id, row in tasks.items():
        if row[5]:
            successors.setdefault(row[5], set()).add(task_id)
    scaled = {key for key, _ in scale_events}
    for task_id, row in tasks.items():
        if row[1] != "done" or row[4] != "sync" or task_id in scaled:
            continue
        for successor in successors.get(task_id, ()):
            srow = tasks.get(successor)
            if srow and srow[1] == "ready" and not undone_deps.get(successor):
                problems["sync_successor_not_started"].append(f"{task_id} → {successor}")
    # Scale-outs: a continuation with its scale note exists; successors waited for it.
    scale_notes = set(
        HandoffNote.objects.filter(handoff_type="scale").values_list("from_task_id", "to_task_id")
    )
    for task_key, payload in scale_events:
        continuation = payload.get("continuation")
        crow = tasks.get(continuation)
        if crow is None or (task_key, continuation) not in scale_notes or crow[5] != task_key:
            problems["scale_out_half_applied"].append(f"{task_key} → {continuation}")
            continue
        for successor in payload.get("moved_successors", []):
            if _started_early(active_seq.get(successor), continuation, finish_seq):
                problems["successor_skipped_continuation"].append(
                    f"{successor} started before continuation {continuation} was done"
                )
    for dependent, dependency in edges:
        if dependency in scaled and tasks.get(dependent, (None, "done"))[1] != "done":
            problems["successor_skipped_continuation"].append(
                f"{dependent} still waits on scaled-out {dependency}"
            )
    if not expect_all_done:
        problems.pop("not_done")
    return problems


def _started_early(activation, dependency, finish_seq):
    """Return True when ``activation`` (``(event id, handoff_from)``) came before
    ``dependency`` was done: neither after its finishing event nor inside its completion."""
    if activation is None:
        return False
    seq, via = activation
    done_at = finish_seq.get(dependency)
    if done_at is None:
        return True
    return seq < done_at and via != dependency
