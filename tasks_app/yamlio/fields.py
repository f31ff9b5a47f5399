"""Typed access to one loaded YAML mapping, recording a problem for each bad value.

The reader asks for each value as the type it must be (text, whole number, one of some
choices, task id, timestamp); a bad value is reported with its file, line and key, and the
default stands in, so reading goes on and every problem of a directory is found in one pass.
"""

import json
import math
from datetime import UTC, datetime

from ..models import TASK_ID_RE
from .format import key_line

INT_MAX = 2**31 - 1  # the integer columns of PostgreSQL


def describe(value):
    """Return ``value`` as a problem message names it: short, and typed where not text."""
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return repr(value)
    return {dict: "a mapping", list: "a list"}.get(type(value), f"a {type(value).__name__}")


def text_problem(value):
    """Return why ``value`` cannot be stored as text, or None."""
    if "\x00" in value:
        return "contains a NUL character, which the database cannot store"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate that is not valid Unicode"
    return None


def json_problem(value):
    """Return why ``value`` is not plain JSON data, or None."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            why = text_problem(item)
            if why:
                return why
        elif item is None or isinstance(item, bool | int):
            continue
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"{item!r} is not a JSON number"
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str):
                    return f"the key {describe(key)} is not a string"
                stack.append(key)
                stack.append(sub)
        else:
            return f"{describe(item)} is not JSON data"
    return None


def parse_time(value):
    """Return ``value`` (ISO 8601, naive meaning UTC) as an aware UTC datetime."""
    if not isinstance(value, str):
        raise ValueError
    parsed = datetime.fromisoformat(value.strip())
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


class Fields:
    """The values of mapping ``data`` (loaded from ``node`` of ``file``) by type.

    ``add(file, line, field, message)`` records a problem; ``label`` prefixes the field name
    (``outputs: name``) for mappings nested in a list.
    """

    def __init__(self, add, file, data, node, *, label=""):
        self.add, self.file, self.data, self.node, self.label = add, file, data, node, label

    def problem(self, key, message):
        self.add(self.file, key_line(self.node, key), self.label + key if key else None, message)

    def unknown(self, allowed, ignored=()):
        for key in self.data:
            if key in ignored:
                continue
            if not isinstance(key, str) or key not in allowed:
                self.problem(str(key), f"unknown field (known: {', '.join(allowed)})")

    def has(self, key):
        return key in self.data

    def text(self, key, *, default="", required=False, max_length=None, nullable=False):
        if key not in self.data or (nullable and self.data[key] is None):
            if required:
                self.problem(key, "is required")
            return default
        value = self.data[key]
        if not isinstance(value, str):
            hint = f" (quote it: '{value}')" if isinstance(value, int | float) else ""
            self.problem(key, f"expected text, got {describe(value)}{hint}")
            return default
        why = text_problem(value)
        if why:
            self.problem(key, why)
            return default
        if required and not value.strip():
            self.problem(key, "must not be empty")
        if max_length is not None and len(value) > max_length:
            self.problem(key, f"is {len(value)} characters long; the limit is {max_length}")
            return default
        return value

    def integer(self, key, *, default=0, minimum=-INT_MAX - 1, maximum=INT_MAX, nullable=False):
        if key not in self.data or (nullable and self.data[key] is None):
            return None if nullable else default
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(key, f"expected a whole number, got {describe(value)}")
            return default
        if not minimum <= value <= maximum:
            self.problem(key, f"{value} is out of range ({minimum} to {maximum})")
            return default
        return value

    def boolean(self, key, *, default=False):
        if key not in self.data:
            return default
        value = self.data[key]
        if not isinstance(value, bool):
            self.problem(key, f"expected true or false, got {describe(value)}")
            return default
        return value

    def choice(self, key, choices, *, default):
        if key not in self.data:
            return default
        value = self.data[key]
        if value not in choices:
            self.problem(key, f"{describe(value)} is not one of {', '.join(choices)}")
            return default
        return value

    def task_id(self, key, *, nullable=True):
        value = self.text(key, default=None, nullable=nullable)
        if value is not None and not TASK_ID_RE.match(value):
            self.problem(key, f"{describe(value)} is not a valid task id")
            return None
        return value

    def time(self, key, *, default=None):
        if key not in self.data or self.data[key] is None:
            return default
        value = self.data[key]
        try:
            return parse_time(value)
        except (ValueError, TypeError, OverflowError):
            self.problem(
                key, f"{describe(value)} is not an ISO 8601 timestamp (e.g. 2026-11-20T09:00:00Z)"
            )
            return default
