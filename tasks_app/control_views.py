"""People steering the pods from the board and the task page: review, send back, answer,
comment, pause.

Each view calls its rule in ``tasks_app.workflow`` and answers the way it was asked:

- htmx aimed at a card (``HX-Target: task-<id>``, the card's own buttons): the card as it now
  is plus the lanes' counts out of band, and a toast; a refusal answers its HTTP status (409
  ``conflict`` when somebody else decided first) with the card showing the winner.
- other htmx (the task panel, a fragment): the task detail fragment with a message.
- a plain form post: 303 to the task's page (or the board, for pause), with a message; a
  refusal shows the task's page with the reason, under the refusal's status (409, 422, 403).

Acting needs the ``tasks_app.change_task`` permission, as every action on the board.
"""

from urllib.parse import urlsplit

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from . import board, workflow
from .api.errors import status_for
from .models import Pod, Task
from .views import (
    READ_ONLY,
    _actor,
    _render_detail,
    _toast_trigger,
    login_required_htmx,
    may_change_tasks,
)
from .workflow import RuleError


class HttpResponseSeeOther(HttpResponseRedirect):
    status_code = 303


def _board_filters(request):
    """Return the filters of the board the request came from (htmx sends its URL)."""
    current = request.htmx.current_url if request.htmx else ""
    return board.Filters.from_query(QueryDict(urlsplit(current or "").query))


def _aimed_at_card(request, task_id):
    return bool(request.htmx) and request.htmx.target == f"task-{task_id}"


def _next_url(request, default):
    target = request.POST.get("next") or default
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = default
    return target


def _answer(request, task_id, *, done="", refusal=None):
    """Answer a control's outcome (``done``: what happened; ``refusal``: a ``RuleError``)."""
    status = status_for(refusal) if refusal else 200
    text = refusal.detail if refusal else done
    if refusal is not None and refusal.code == "conflict":
        text += " The card now shows what happened; look again."
    if _aimed_at_card(request, task_id):
        cards = board.render_cards([task_id], request)
        html = cards.get(task_id, "") + board.render_counts(_board_filters(request))
        response = HttpResponse(html, status=status)
        if refusal is not None:
            response["X-Podboard-Code"] = refusal.code
        return _toast_trigger(
            response, text, level="error" if refusal else "success", task_id=task_id
        )
    (messages.error if refusal else messages.success)(request, text)
    if request.htmx or refusal is not None:
        # A refusal shows the page (or fragment) with its reason, under the refusal's status.
        response = _render_detail(request, task_id, status=status, fragment=bool(request.htmx))
        if refusal is not None:
            response["X-Podboard-Code"] = refusal.code
        return response
    page = reverse("task_detail", args=[task_id])
    return HttpResponseSeeOther(_next_url(request, page))


def _may_act(request, task_id=None):
    """Refuse a person without the ``change task`` permission (403)."""
    if may_change_tasks(request.user):
        return None
    if not request.htmx:
        raise PermissionDenied(READ_ONLY)
    if task_id is not None:
        return _answer(request, task_id, refusal=RuleError("forbidden", READ_ONLY))
    response = HttpResponse(status=403)
    return _toast_trigger(response, READ_ONLY)


def _version(request):
    raw = request.POST.get("version") or ""
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise RuleError("validation_error", "Bad version.") from None


def _control(view):
    """Wrap a task control: the task must exist (404), the person may act (403), and a
    refused rule is answered as ``_answer`` says."""

    def wrapper(request, task_id):
        task = get_object_or_404(Task.objects.only("pk"), pk=task_id)
        refused = _may_act(request, task.pk)
        if refused is not None:
            return refused
        try:
            done = view(request, task.pk)
        except RuleError as refusal:
            return _answer(request, task.pk, refusal=refusal)
        return _answer(request, task.pk, done=done)

    wrapper.__name__ = view.__name__
    wrapper.__doc__ = view.__doc__
    return never_cache(require_POST(login_required_htmx(wrapper)))


@_control
def review(request, task_id):
    """Approve a task in Review or request changes (fields ``verdict``, ``note``, and on the
    task page ``handoff_note``: the completion's note as the person edited it)."""
    data = request.POST
    verdict = data.get("verdict", "")
    handoff_note = data.get("handoff_note")
    decided = workflow.review(
        task_id=task_id,
        verdict=verdict,
        note=data.get("note", ""),
        actor=_actor(request),
        version=_version(request),
        handoff_note=handoff_note.replace("\r\n", "\n") if handoff_note is not None else None,
    )
    if isinstance(decided, workflow.Completion):
        started = ", ".join(work.task.pk for work in decided.started)
        return f"Approved {task_id}: it is done." + (f" Started now: {started}." if started else "")
    return f"Changes requested: {task_id} is back in Ready for {decided.pod_owner.name}."


@_control
def send_back(request, task_id):
    """Send a done dependency (field ``to``) back for rework with ``findings``."""
    data = request.POST
    sent = workflow.send_back(
        task_id=task_id,
        to=(data.get("to") or "").strip(),
        findings=data.get("findings", ""),
        actor=_actor(request),
        version=_version(request),
    )
    return (
        f"Sent {data.get('to')} back: {sent.rework.pk} is ready for "
        f"{sent.rework.pod_owner.name}; {task_id} waits for it."
    )


@_control
def answer(request, task_id):
    """Answer the task's open question (field ``answer``)."""
    workflow.answer(task_id=task_id, answer=request.POST.get("answer", ""), actor=_actor(request))
    return f"Answered: {task_id}'s holder will find it in its comments."


@_control
def comment(request, task_id):
    """Comment on the task (field ``body``, Markdown)."""
    workflow.comment(task_id=task_id, body=request.POST.get("body", ""), actor=_actor(request))
    return "Comment added."


@never_cache
@require_POST
@login_required_htmx
def pause(request, pod):
    """Pause (``paused=1``) or resume (``paused=0``) a pod from its lane menu."""
    pod = get_object_or_404(Pod, name=pod)
    refused = _may_act(request)
    if refused is not None:
        return refused
    paused = request.POST.get("paused", "1") not in ("0", "false", "")
    changed = workflow.pause(pod=pod.name, actor=_actor(request), paused=paused)
    text = (
        f"{changed.name} is paused: next hands out nothing and sync handoffs to it wait."
        if changed.paused
        else f"{changed.name} is running again."
    )
    if request.htmx:
        response = HttpResponse(board.render_counts(_board_filters(request)))
        return _toast_trigger(response, text, level="success")
    messages.success(request, text)
    return HttpResponseSeeOther(_next_url(request, reverse("board")))
