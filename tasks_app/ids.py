"""Derived task ids: continuations ``<root>.<n>`` (from 2) and reworks ``<root>.fix<n>``.

Pure functions, shared by the rules and the task generator, so every path names a
continuation the same way.
"""

import re

_DERIVED = re.compile(r"^(?P<root>.+?)(?:\.(?:\d+|fix\d+))+$")
_REWORK = re.compile(r"\.fix\d+$")


def root_of(task_id, scale_root=""):
    """Return the id without any derived suffix (``DEV-101`` for ``DEV-101.2`` and for
    ``DEV-101.fix1``); ``scale_root``, the first task of a scale-out chain, when known."""
    task_id = scale_root or task_id
    match = _DERIVED.match(task_id)
    return match.group("root") if match else task_id


def _next_free(root, taken, separator, first):
    prefix = f"{root}{separator}"
    used = {t[len(prefix) :] for t in taken if t.startswith(prefix)}
    n = first
    numbers = [int(u) for u in used if u.isdigit()]
    if numbers:
        n = max(n, max(numbers) + 1)
    while str(n) in used:
        n += 1
    return f"{prefix}{n}"


def continuation_id(root, taken):
    """Return the next free ``<root>.<n>`` (n from 2) not in ``taken``."""
    return _next_free(root, set(taken), ".", 2)


def rework_id(root, taken):
    """Return the next free ``<root>.fix<n>`` (n from 1) not in ``taken``."""
    return _next_free(root, set(taken), ".fix", 1)


def is_rework_id(task_id):
    """Return True for a rework id (``<root>.fix<n>``)."""
    return bool(_REWORK.search(task_id))


# What a continuation takes over from the task it continues (rule 5); the rest is its own.
CONTINUATION_CARRIES = (
    "title",
    "description",
    "pod_owner",
    "task_type",
    "priority",
    "handoff_mode",
    "prompt",
)


def carried_over(task):
    """Return the fields a continuation of ``task`` (a Task or a YAML record) starts with."""
    return {
        **{name: getattr(task, name) for name in CONTINUATION_CARRIES},
        "inputs": dict(task.inputs or {}),
    }
