"""Template helpers for the board and the task detail: sanitised Markdown, token counts."""

import json

import markdown as markdown_lib
import nh3
from django import template
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.timesince import timesince

register = template.Library()

# What pod-written Markdown may become. No scripts, styles, iframes, forms or event handlers:
# nh3 drops every tag and attribute not listed here.
ALLOWED_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "code",
    "dd",
    "del",
    "details",
    "div",
    "dl",
    "dt",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "kbd",
    "li",
    "ol",
    "p",
    "pre",
    "s",
    "span",
    "strong",
    "sub",
    "summary",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "ul",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "td": {"align"},
    "th": {"align"},
}
URL_SCHEMES = {"http", "https", "mailto"}


def render_markdown(text):
    """Return ``text`` (Markdown written by a pod or a person) as sanitised HTML."""
    if not text:
        return ""
    html = markdown_lib.markdown(
        str(text), extensions=["fenced_code", "tables", "sane_lists"], output_format="html"
    )
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )


@register.filter(name="markdown")
def markdown_filter(text):
    return mark_safe(render_markdown(text))  # noqa: S308 - nh3 sanitised it just above


@register.filter
def tokens(value):
    """Return a token count the way people read it: 950, 9.1k, 1.2M."""
    try:
        n = int(value or 0)
    except (TypeError, ValueError):
        return ""
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k".replace(".0k", "k")
    return f"{n / 1_000_000:.1f}M".replace(".0M", "M")


@register.filter
def as_json(value):
    """Return ``value`` as indented JSON text (shown in ``<pre>``; the template escapes it)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


@register.filter
def is_url(value):
    return isinstance(value, str) and value.startswith(("http://", "https://"))


@register.simple_tag
def waiting_on_human():
    """Return how many tasks wait for a person's answer (the header's count); one indexed
    query."""
    from django.db import DatabaseError

    from ..models import Task

    try:
        return Task.objects.filter(asked_at__isnull=False).count()
    except DatabaseError:  # an error page must render without a working database
        return "?"


@register.filter
def ago(value, now=None):
    """Return how long ago ``value`` was: "just now" under a minute, else "5 minutes ago"."""
    if not value:
        return ""
    now = now or timezone.now()
    if (now - value).total_seconds() < 60:
        return "just now"
    return f"{timesince(value, now)} ago"
