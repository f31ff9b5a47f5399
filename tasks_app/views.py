"""The board, the task detail and the web import/export: thin function views.

Every state change goes through ``tasks_app.workflow``; a refused change (``RuleError``) is
shown to the person with its ``detail`` and the HTTP status the API would give it.
Moving tasks and running actions needs ``tasks_app.change_task`` (``may_change_tasks``);
other signed-in users get a read-only board and 403. Board pages hold one person's view and
a CSRF token, so they are never cached (``Cache-Control: private, no-store``).

Why one module of this size: the board, detail and import views share the permission,
toast and refusal helpers; each view is a short function.
"""

import json
import os
import secrets
import tempfile
import time
from functools import wraps
from pathlib import Path
from urllib.parse import quote

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.contrib.staticfiles import finders
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from . import board, control_pages, live, workflow, yamlio
from .api.errors import status_for
from .models import Event, HandoffNote, Pod, Status, Task
from .workflow import RuleError

# Auth ----------------------------------------------------------------------------------------


def login_required_htmx(view):
    """Like ``login_required``, but an htmx request gets a client redirect to the login page
    instead of the login page swapped into a fragment."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            if request.htmx:
                login = (
                    reverse("login")
                    + "?"
                    + urlencode({"next": request.htmx.current_url_abs_path or "/"})
                )
                return HttpResponseClientRedirect(login)
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return wrapper


def staff_required(view):
    """Anonymous → login page; logged in but not staff → 403."""

    @wraps(view)
    @login_required
    def wrapper(request, *args, **kwargs):
        if not request.user.is_staff:
            raise PermissionDenied("Only staff can import or export tasks.")
        return view(request, *args, **kwargs)

    return wrapper


CHANGE_TASK = "tasks_app.change_task"
READ_ONLY = (
    "You can watch the board but not change it: moving tasks and running actions needs the "
    "“change task” permission. Ask an admin for it."
)


def may_change_tasks(user):
    """Return True when ``user`` may move tasks and run actions on the board: a superuser, a
    staff member, or someone granted ``tasks_app.change_task`` (directly or by a group)."""
    return user.is_active and (user.is_staff or user.has_perm(CHANGE_TASK))


def _actor(request):
    return request.user.get_username()


def _toast_trigger(response, message, *, level="error", task_id=""):
    response["HX-Trigger"] = json.dumps(
        {"podboard:toast": {"message": message, "level": level, "task": task_id}}
    )
    return response


# Board ---------------------------------------------------------------------------------------


@never_cache
@require_GET
@login_required_htmx
def board_view(request):
    filters = board.Filters.from_query(request.GET)
    # Read the event sequence before the board, so the live socket replays anything in between.
    live_seq = live.latest_seq_now()
    lanes = board.board_lanes(filters)
    context = {
        "live_seq": live_seq,
        "filters": filters,
        "lanes": lanes,
        "nothing_matches": filters.active
        and not any(column["count"] for lane in lanes for column in lane["columns"]),
        "pods": board.lane_pods(),
        # Called by the template only where the filter form is drawn (not for #board-body).
        "task_types": board.task_types,
        "statuses": board.COLUMNS,
        "filter_query": urlencode(filters.as_query()),
        "board_read_only": not may_change_tasks(request.user),
        "page_size": board.PAGE_SIZE,
    }
    template = "tasks_app/board.html"
    partial = (
        request.htmx
        and not request.htmx.history_restore_request
        and request.htmx.target == "board-body"
    )
    if partial:
        template += "#board-body"
    else:
        context["live_js"] = finders.find("js/live.js") is not None
    response = render(request, template, context)
    if partial:
        query = context["filter_query"]
        response["HX-Push-Url"] = reverse("board") + (f"?{query}" if query else "")
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


MAX_OFFSET = 2_147_483_647
MAX_LIMIT = 200


@never_cache
@require_GET
@login_required_htmx
def column_more(request, pod, status):
    """The next page of one column: cards to append, and a new "show more" button (OOB).

    ``offset`` (default 0) and ``limit`` (default the page size, at most ``MAX_LIMIT``).
    """
    if status not in Status.values:
        raise Http404("No such column.")
    pod = get_object_or_404(Pod, name=pod)
    filters = board.Filters.from_query(request.GET)
    try:
        offset = int(request.GET.get("offset") or 0)
    except ValueError:
        offset = -1
    if not 0 <= offset <= MAX_OFFSET:
        # A database refuses (SQLite: overflow) an offset past its integer range: say so here.
        return HttpResponseBadRequest(
            f"offset must be a whole number from 0 to {MAX_OFFSET}.",
            content_type="text/plain; charset=utf-8",
        )
    try:
        # The board reloads a column's page (offset 0) of the size it shows.
        limit = min(max(int(request.GET.get("limit") or board.PAGE_SIZE), 1), MAX_LIMIT)
    except ValueError:
        limit = board.PAGE_SIZE
    cards, next_offset = board.column_page(pod, status, filters, offset, limit)
    return render(
        request,
        "tasks_app/board.html#more-page",
        {
            "pod": pod,
            "column": {"status": status, "cards": cards, "next_offset": next_offset},
            "pods": board.lane_pods(),
            "statuses": board.COLUMNS,
            "filter_query": urlencode(filters.as_query()),
            "board_read_only": not may_change_tasks(request.user),
        },
    )


@never_cache
@require_POST
@login_required_htmx
def move_view(request):
    """Apply a drag or a move-menu choice through ``workflow.move``.

    htmx / fetch: 200 with the re-rendered card and out-of-band counts, or the refusal's status
    (409, 422, 404) with the reason in an ``HX-Trigger`` toast and the card as it now is.
    Plain form post (no JavaScript): redirect to the board with a message.
    """
    data = request.POST
    task_id = data.get("task", "")
    task = Task.objects.select_related("pod_owner").filter(pk=task_id).first()
    if not may_change_tasks(request.user):
        if not request.htmx:
            raise PermissionDenied(READ_ONLY)
        # The card goes back where it was, and the toast says why.
        return _move_refused(request, RuleError("forbidden", READ_ONLY), task)
    filters = board.Filters.from_query(data)
    if task is None:
        return _move_refused(request, workflow.not_found(task_id))
    to_status = data.get("to_status") or task.status
    to_pod_name = data.get("to_pod") or task.pod_owner.name
    try:
        version = int(data["version"]) if data.get("version") else None
        moved = workflow.move(
            task_id=task.pk,
            actor=_actor(request),
            to_status=to_status,
            to_pod=to_pod_name,
            version=version,
            after_id=data.get("after", ""),
            before_id=data.get("before", ""),
        )
    except ValueError:
        return _move_refused(request, RuleError("validation_error", "Bad version."), task)
    except RuleError as refusal:
        return _move_refused(request, refusal, task)
    if not request.htmx:
        messages.success(request, f"Moved {moved.pk} to {moved.pod_owner.name} · {moved.status}.")
        return _back_to_board(request)
    html = board.render_cards([moved.pk], request)[moved.pk] + board.render_counts(filters)
    response = _with_place(HttpResponse(html), moved.pk)
    text, level = f"{moved.pk} → {moved.pod_owner.name} · {moved.get_status_display()}", "success"
    over = board.over_wip(moved)
    if over:
        # Allowed, but said: the lane is now over its WIP limit (its badge turns red too).
        text, level = f"{text}. {over}", "warning"
    return _toast_trigger(response, text, level=level, task_id=moved.pk)


def _move_refused(request, refusal, task=None):
    """Answer a refused move: the card as it now is, where it now is (``_with_place``), and
    a toast that says why and, after a conflict, where the task is now."""
    detail = refusal.detail
    place = board.card_place(task.pk) if task is not None else None
    if refusal.code == "conflict" and place is not None:
        now = Task.objects.select_related("pod_owner").get(pk=task.pk)
        detail += f" It is now {now.get_status_display()} in {now.pod_owner.name}."
    if not request.htmx:
        messages.error(request, detail)
        return _back_to_board(request)
    html = ""
    if place is not None:
        html = board.render_cards([task.pk], request).get(task.pk, "")
    response = HttpResponse(html, status=status_for(refusal))
    response["X-Podboard-Code"] = refusal.code
    if task is not None:
        _with_place(response, task.pk, place)
    return _toast_trigger(response, detail, task_id=task.pk if task else "")


def _with_place(response, task_id, place=None):
    """Say where the card belongs (``PodBoard-Lane``, ``PodBoard-Before``: DOM ids, URL-quoted;
    no lane: the task is gone), so the page puts it there whatever it showed before."""
    place = place or board.card_place(task_id)
    lane, before = place or ("", "")
    response["PodBoard-Lane"] = quote(lane)
    response["PodBoard-Before"] = quote(before)
    return response


def _back_to_board(request):
    target = request.POST.get("next") or reverse("board")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = reverse("board")
    return redirect(target)


# Task detail ---------------------------------------------------------------------------------


def _baton_trail(task, limit=25):
    """Return the handoff chain through ``task``: ``[{from, to, note}]`` oldest first.

    Walks ``handoff_from`` back (at most ``limit`` hops) and the batons ``task`` passed on.
    """
    chain = [task]
    seen = {task.pk}
    while chain[0].handoff_from_id and len(chain) < limit:
        parent = (
            Task.objects.select_related("pod_owner").filter(pk=chain[0].handoff_from_id).first()
        )
        if parent is None or parent.pk in seen:
            break
        seen.add(parent.pk)
        chain.insert(0, parent)
    pairs = [(a, b) for a, b in zip(chain, chain[1:], strict=False)]
    onward = list(task.baton_successors.select_related("pod_owner").order_by("created_at", "id"))
    pairs += [(task, successor) for successor in onward]
    if not pairs:
        return []
    notes = {}
    lookup = Q()
    for a, b in pairs:
        lookup |= Q(from_task_id=a.pk, to_task_id=b.pk)
    for note in HandoffNote.objects.filter(lookup).order_by("created_at", "id"):
        notes[(note.from_task_id, note.to_task_id)] = note  # the latest wins
    return [{"from": a, "to": b, "note": notes.get((a.pk, b.pk))} for a, b in pairs]


def _detail_context(task):
    dependencies = list(task.depends_on.select_related("pod_owner").order_by("id"))
    successors = {
        t.pk: t
        for t in Task.objects.filter(Q(depends_on=task) | Q(handoff_from=task))
        .select_related("pod_owner")
        .order_by("id")
        .distinct()
    }
    return {
        "task": task,
        "waits_for": [d.pk for d in dependencies if d.status != Status.DONE],
        "dependencies": dependencies,
        "successors": list(successors.values()),
        "baton_trail": _baton_trail(task),
        "notes_received": list(
            task.notes_received.select_related("from_task").order_by("-created_at", "-id")
        ),
        "notes_written": list(
            task.notes_written.select_related("to_task").order_by("-created_at", "-id")
        ),
        "trace_steps": list(task.trace_steps.order_by("step", "id")),
        "thoughts": list(task.thoughts.order_by("step", "id")),
        "events": list(Event.objects.filter(task_key=task.pk).order_by("-id")[:100]),
        "continuations": list(
            Task.objects.filter(scale_root=task.scale_root or task.pk)
            .exclude(pk=task.pk)
            .order_by("created_at", "id")
            .values_list("pk", "status")
        ),
        "handoff_candidates": list(
            Task.objects.exclude(status=Status.DONE)
            .exclude(pk=task.pk)
            .order_by("pod_owner__order", "id")
            .values_list("pk", "title")[:200]
        ),
        "admin_url": reverse("admin:tasks_app_task_change", args=[task.pk]),
    }


def _render_detail(request, task_id, status=200, fragment=False):
    """Render the task page, or its ``#panel`` fragment for the board's panel (and, with
    ``fragment``, for any htmx request)."""
    task = get_object_or_404(Task.objects.select_related("pod_owner", "handoff_from"), pk=task_id)
    template = "tasks_app/task_detail.html"
    context = _detail_context(task)
    context.update(control_pages.detail_context(task))
    context["read_only"] = not may_change_tasks(request.user)
    if request.htmx and (fragment or request.htmx.target == "panel"):
        template += "#panel"
        context["in_panel"] = request.htmx.target == "panel"
    response = render(request, template, context, status=status)
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


@never_cache
@require_GET
@login_required_htmx
def task_detail(request, task_id):
    return _render_detail(request, task_id)


ACTIONS = {"activate", "complete", "handoff", "scale_out", "reopen"}


@never_cache
@require_POST
@login_required_htmx
def task_action(request, task_id, action):
    """Run one workflow rule on a task from its detail page or panel."""
    if action not in ACTIONS:
        raise Http404("No such action.")
    task = get_object_or_404(Task, pk=task_id)
    if not may_change_tasks(request.user):
        if not request.htmx:
            raise PermissionDenied(READ_ONLY)
        messages.error(request, READ_ONLY)
        return _render_detail(request, task.pk, status=403)
    actor = _actor(request)
    data = request.POST
    try:
        if action == "activate":
            workflow.activate(task_id=task.pk, actor=actor)
            done = f"{task.pk} is active."
        elif action == "complete":
            result = workflow.complete(
                task_id=task.pk, actor=actor, handoff_note=data.get("note", "")
            )
            started = ", ".join(work.task.pk for work in result.started) or "none"
            done = f"{task.pk} is done. Successors started now: {started}."
        elif action == "handoff":
            next_id = (data.get("next_task_id") or "").strip()
            if not next_id:
                raise RuleError("validation_error", "Choose the task to hand off to.")
            handoff = workflow.auto_handoff(
                task_id=task.pk, next_task_id=next_id, note=data.get("note", ""), actor=actor
            )
            done = f"{task.pk} hands its baton to {handoff.task.pk} ({handoff.mode})."
        elif action == "reopen":
            # Done → Ready is the board's move rule (DESIGN: "Done → Ready reopens the task").
            workflow.move(
                task_id=task.pk,
                actor=actor,
                to_status=Status.READY,
                version=int(data["version"]) if data.get("version") else None,
            )
            done = f"{task.pk} is reopened: back in Ready for {task.pod_owner.name}."
        else:
            result = workflow.scale_out(
                task_id=task.pk,
                actor=actor,
                reason=data.get("reason", "") or "manual",
                note=data.get("note", ""),
            )
            done = f"{task.pk} scaled out to {result.continuation.pk}."
    except ValueError:
        messages.error(request, "Bad version.")
        return (
            _render_detail(request, task.pk, status=422)
            if request.htmx
            else redirect("task_detail", task_id=task.pk)
        )
    except RuleError as refusal:
        messages.error(request, refusal.detail)
        if request.htmx:
            return _render_detail(request, task.pk, status=status_for(refusal))
        return redirect("task_detail", task_id=task.pk)
    messages.success(request, done)
    if request.htmx:
        return _render_detail(request, task.pk)
    return redirect("task_detail", task_id=task.pk)


# Import / export -----------------------------------------------------------------------------

UPLOAD_SESSION_KEY = "podboard_import_upload"


def _upload_dir():
    path = Path(tempfile.gettempdir()) / "podboard-imports"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


# An upload waits for its confirmation at most this long, and at most this many wait at once
# (the oldest go first): a preview nobody confirms does not stay on disk.
PREVIEW_MAX_AGE_SECONDS = 3600
PREVIEW_MAX_COUNT = 20


def _preview_age(path, now):
    try:
        return now - path.stat().st_mtime
    except FileNotFoundError:
        return None


def sweep_previews(now=None, keep=PREVIEW_MAX_COUNT):
    """Delete uploads waiting for confirmation that are too old, then the oldest beyond
    ``keep``; return how many were deleted."""
    now = time.time() if now is None else now
    waiting = []
    for path in _upload_dir().glob("*.zip"):
        age = _preview_age(path, now)
        if age is not None:
            waiting.append((age, path))
    waiting.sort(key=lambda item: item[0])
    doomed = [path for age, path in waiting if age > PREVIEW_MAX_AGE_SECONDS]
    fresh = [path for age, path in waiting if age <= PREVIEW_MAX_AGE_SECONDS]
    doomed += fresh[max(keep, 0) :]
    for path in doomed:
        path.unlink(missing_ok=True)
    return len(doomed)


def _stored_upload(request):
    name = request.session.get(UPLOAD_SESSION_KEY, "")
    if not name or "/" in name or name.startswith("."):
        return None
    path = _upload_dir() / name
    age = _preview_age(path, time.time())
    if age is None or not path.is_file():
        return None
    if age > PREVIEW_MAX_AGE_SECONDS:
        path.unlink(missing_ok=True)
        return None
    return path


def _forget_upload(request):
    path = _stored_upload(request)
    request.session.pop(UPLOAD_SESSION_KEY, None)
    if path is not None:
        path.unlink(missing_ok=True)


@staff_required
def import_view(request):
    """Upload a zip → dry-run preview → confirm. Nothing is written before the confirmation."""
    context = {}
    if request.method == "POST" and request.POST.get("step") == "confirm":
        path = _stored_upload(request)
        if path is None:
            messages.error(request, "The upload expired; choose the file again.")
            return redirect("import")
        try:
            with path.open("rb") as fileobj:
                summary = yamlio.import_zip(fileobj, actor=_actor(request), dry_run=False)
        except yamlio.ImportErrors as errors:
            context["problems"] = [str(p) for p in errors.problems]
        else:
            _forget_upload(request)
            messages.success(request, "Imported: " + _summary_text(summary))
            return redirect("board")
    elif request.method == "POST":
        upload = request.FILES.get("archive")
        if upload is None:
            context["problems"] = ["Choose a .zip file of a task directory."]
        else:
            _forget_upload(request)
            sweep_previews(keep=PREVIEW_MAX_COUNT - 1)
            name = secrets.token_hex(16) + ".zip"
            path = _upload_dir() / name
            with path.open("wb") as out:
                for chunk in upload.chunks():
                    out.write(chunk)
            os.chmod(path, 0o600)
            try:
                with path.open("rb") as fileobj:
                    summary = yamlio.import_zip(fileobj, actor=_actor(request), dry_run=True)
            except yamlio.ImportErrors as errors:
                path.unlink(missing_ok=True)
                context["problems"] = [str(p) for p in errors.problems]
            except BaseException:
                path.unlink(missing_ok=True)
                raise
            else:
                request.session[UPLOAD_SESSION_KEY] = name
                context.update(preview=_summary_rows(summary), filename=upload.name)
    elif request.method != "GET":
        return HttpResponse(status=405)
    return render(
        request, "tasks_app/import.html", context, status=422 if context.get("problems") else 200
    )


def _as_list(value):
    if isinstance(value, int):
        return [], value
    items = list(value or [])
    return items, len(items)


def _summary_rows(summary):
    rows = []
    for key, label in [
        ("created", "Created"),
        ("updated", "Updated"),
        ("unchanged", "Unchanged"),
        ("pods_created", "Pods created"),
        ("pods_updated", "Pods updated"),
    ]:
        if key not in summary:
            continue
        items, count = _as_list(summary.get(key))
        rows.append({"label": label, "count": count, "items": [str(i) for i in items][:200]})
    return rows


def _summary_text(summary):
    return ", ".join(f"{row['count']} {row['label'].lower()}" for row in _summary_rows(summary))


@require_GET
@staff_required
def export_view(request):
    data = yamlio.export_zip()
    response = HttpResponse(data, content_type="application/zip")
    response["Content-Disposition"] = 'attachment; filename="podboard-tasks.zip"'
    return response
