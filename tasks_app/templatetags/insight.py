"""Filters of the insight pages."""

from django import template

register = template.Library()


@register.filter
def seconds(value):
    """``5400`` → ``1:30:00``, ``95.5`` → ``0:01:36``, ``None`` → ``—`` (no data)."""
    if value is None or value == "":
        return "—"
    total = int(round(float(value)))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours}:{minutes:02}:{secs:02}"
    return f"{days}d {clock}" if days else clock
