"""The workflow rules of DESIGN.md: the only code that changes a task's state.

Every rule runs through the rule runner (``runner.rule``): one transaction, its locks, the
Events it records, one announcement to open boards after commit, and a typed result
(``results``). A refusal is a ``RuleError`` with a stable ``code``; the API and the views
choose its HTTP status. Views, the API, the admin, YAML import and commands call only these.

Modules: ``runner`` (the runner and ``RuleError``), ``rows`` (lock, save, refusals shared by
the rules), ``claims`` (rule 2's claim on both engines), ``trace`` (reasoning traces),
``handoff`` (rules 4–7), ``lifecycle`` (rules 1–3, 8, 9 and create/edit/delete/import),
``results`` (what the rules answer).
"""

from ..graph import find_cycle
from . import handoff, lifecycle
from . import trace as _trace
from .handoff import resolve_mode
from .results import Completion, Handoff, StartWork
from .runner import RuleError, not_found, rule

activate = rule(lifecycle.activate)
claim_next = rule(lifecycle.claim_next)
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
    "RuleError",
    "StartWork",
    "activate",
    "auto_handoff",
    "claim_next",
    "complete",
    "create_task",
    "delete_tasks",
    "edit_task",
    "expire_leases",
    "find_cycle",
    "import_plan",
    "move",
    "not_found",
    "resolve_mode",
    "scale_out",
    "start",
    "trace",
]
