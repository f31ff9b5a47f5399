"""The workflow rules of DESIGN.md: the only code that changes a task's state.

Every rule runs through the rule runner (``runner.rule``): one transaction, its locks, the
Events it records, one announcement to open boards after commit, and a typed result
(``results``). A refusal is a ``RuleError`` with a stable ``code``; the API and the views
choose its HTTP status. Views, the API, the admin, YAML import and commands call only these.

Modules: ``runner`` (the runner and ``RuleError``), ``rows`` (lock, save, refusals shared by
the rules), ``claims`` (rule 2's claim on both engines), ``trace`` (reasoning traces),
``handoff`` (rules 4–7), ``lifecycle`` (rules 1–3, 8, 9 and create/edit/delete/import),
``control`` (human control: review, send back, ask/answer, comments, pause), ``results``
(what the rules answer).
"""

from ..graph import find_cycle
from . import control, handoff, lifecycle
from . import trace as _trace
from .handoff import resolve_mode
from .results import Completion, Handoff, Pull, Rework, StartWork
from .runner import RuleError, not_found, rule

activate = rule(lifecycle.activate)
claim_next = rule(lifecycle.claim_next)
pull = rule(lifecycle.pull)
start = rule(lifecycle.start)
trace = rule(_trace.trace)
complete = rule(handoff.complete)
scale_out = rule(handoff.scale_out)
auto_handoff = rule(handoff.auto_handoff)
move = rule(lifecycle.move)
create_task = rule(lifecycle.create_task)
edit_task = rule(lifecycle.edit_task)
delete_tasks = rule(lifecycle.delete_tasks)
import_plan = rule(lifecycle.import_plan)
_expire_batch = rule(lifecycle.expire_leases)
review = rule(control.review)
send_back = rule(control.send_back)
ask = rule(control.ask)
answer = rule(control.answer)
comment = rule(control.comment)
pause = rule(control.pause)


def resume(*, pod, actor):
    """Resume a paused pod (``pause`` with ``paused=False``)."""
    return pause(pod=pod, actor=actor, paused=False)


def expire_leases(*, now=None, batch=500):
    """Return every active task whose lease ran out to ready (rule 9), ``batch`` tasks per
    transaction; return how many."""
    total = 0
    while True:
        count = _expire_batch(now=now, batch=batch)
        total += count
        if count < batch:
            return total


__all__ = [
    "Completion",
    "Handoff",
    "Pull",
    "Rework",
    "RuleError",
    "StartWork",
    "activate",
    "answer",
    "ask",
    "auto_handoff",
    "claim_next",
    "comment",
    "complete",
    "create_task",
    "delete_tasks",
    "edit_task",
    "expire_leases",
    "find_cycle",
    "import_plan",
    "move",
    "not_found",
    "pause",
    "pull",
    "resolve_mode",
    "resume",
    "review",
    "scale_out",
    "send_back",
    "start",
    "trace",
]
