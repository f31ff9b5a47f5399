"""Filters of the insight pages."""

from django import template
from django.utils import timezone

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


@register.filter
def ago(value, now=None):
    """How long ago ``value`` (a datetime) was: "just now", "3 min ago", "5 h ago", "2 d ago".
    static/js/activity.js says the same as time goes by."""
    if not value:
        return ""
    seconds = ((now or timezone.now()) - value).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} d ago"


@register.simple_tag
def activity_kinds():
    """``[(kind, label)]`` of the Events the activity feed can be filtered by."""
    from ..insight.feed import KIND_LABELS

    return list(KIND_LABELS.items())
