"""The Django admin: edit anything, run the workflow rules as actions, manage pod tokens.

Every change of a task goes through ``tasks_app.workflow``: actions call their rule; adding a
task is ``create_task``; the change form's save runs inside ``edit_task`` (one ``edited``
Event); deleting is ``delete_tasks`` (a ``deleted`` Event that removes the card from boards).

Why one module of this size: Django finds an app's admin in ``admin.py``; each ModelAdmin
here is short, and the rules they call live in ``workflow``.
"""

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from . import workflow, yamlio
from .graph import blocked_exists
from .models import (
    AutoModeRule,
    Comment,
    Event,
    HandoffNote,
    Pod,
    PodToken,
    Status,
    Task,
    Thought,
    TraceStep,
    validate_created_task_id,
)
from .push.admin import PodWebhookAdmin
from .workflow import RuleError

HISTORY_ROWS = 20


def _actor(request):
    return request.user.get_username()


def _run_rule(modeladmin, request, queryset, verb, rule):
    """Apply ``rule(task_id)`` to each selected task; report successes and refusals."""
    done = []
    for task_id in queryset.order_by("pk").values_list("pk", flat=True):
        try:
            rule(task_id)
        except RuleError as exc:
            modeladmin.message_user(request, f"{task_id}: {exc.detail}", messages.ERROR)
        else:
            done.append(task_id)
    if done:
        modeladmin.message_user(
            request, f"{verb} {len(done)} task(s): {', '.join(done)}.", messages.SUCCESS
        )


# Pods and tokens -----------------------------------------------------------------------------


class PodTokenInline(admin.TabularInline):
    model = PodToken
    fields = ["prefix_shown", "label", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    @admin.display(description="token")
    def prefix_shown(self, token):
        return f"{token.prefix}…"

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Pod)
class PodAdmin(PodWebhookAdmin, admin.ModelAdmin):
    list_display = [
        "name",
        "order",
        "wip_limit",
        "review_required",
        "reviewer",
        "paused",
        "active_tasks",
        "ready_tasks",
        "tokens",
    ]
    list_editable = ["order", "wip_limit"]
    list_select_related = ["reviewer"]
    search_fields = ["name"]
    actions = ["pause", "resume"]

    def save_model(self, request, obj, form, change):
        """Pausing or resuming in the form runs the pause rule (its Event, the board's lane)."""
        if not change or "paused" not in form.changed_data:
            super().save_model(request, obj, form, change)
            return
        wanted, obj.paused = obj.paused, not obj.paused
        super().save_model(request, obj, form, change)
        workflow.pause(pod=obj.name, actor=_actor(request), paused=wanted)
        obj.paused = wanted

    @admin.action(description="Pause selected pods (next hands out nothing)")
    def pause(self, request, queryset):
        self._pause(request, queryset, True)

    @admin.action(description="Resume selected pods")
    def resume(self, request, queryset):
        self._pause(request, queryset, False)

    def _pause(self, request, queryset, paused):
        names = list(queryset.order_by("name").values_list("name", flat=True))
        for name in names:
            workflow.pause(pod=name, actor=_actor(request), paused=paused)
        verb = "Paused" if paused else "Resumed"
        self.message_user(request, f"{verb}: {', '.join(names)}.", messages.SUCCESS)

    inlines = [PodTokenInline]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_active=Count("tasks", filter=Q(tasks__status=Status.ACTIVE), distinct=True),
                n_ready=Count("tasks", filter=Q(tasks__status=Status.READY), distinct=True),
                n_tokens=Count("tokens", filter=Q(tokens__revoked_at=None), distinct=True),
            )
        )

    @admin.display(description="active", ordering="n_active")
    def active_tasks(self, pod):
        return pod.n_active

    @admin.display(description="ready", ordering="n_ready")
    def ready_tasks(self, pod):
        return pod.n_ready

    @admin.display(description="live tokens", ordering="n_tokens")
    def tokens(self, pod):
        return pod.n_tokens


class PodTokenForm(forms.ModelForm):
    class Meta:
        model = PodToken
        fields = ["pod", "label"]


@admin.register(PodToken)
class PodTokenAdmin(admin.ModelAdmin):
    """Issue tokens (the raw value is shown on one page, once) and revoke them."""

    list_display = ["prefix_shown", "pod", "label", "created_at", "last_used_at", "is_active"]
    list_filter = ["pod", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["label", "prefix", "pod__name"]
    actions = ["revoke"]
    form = PodTokenForm

    @admin.display(description="token")
    def prefix_shown(self, token):
        return f"{token.prefix}…"

    @admin.display(description="active", boolean=True)
    def is_active(self, token):
        return token.is_active

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["pod", "label"]
        return ["pod", "label", "prefix_shown", "created_at", "last_used_at", "revoked_at"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["pod", "prefix_shown", "created_at", "last_used_at", "revoked_at"]

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["label"])
            return
        token, raw = PodToken.issue(pod=obj.pod, label=obj.label)
        obj.pk, obj.key_hash, obj.prefix, obj.created_at = (
            token.pk,
            token.key_hash,
            token.prefix,
            token.created_at,
        )
        obj._state.adding = False
        obj._state.db = token._state.db
        # Kept on the request only: the raw value is rendered once and never stored.
        request._podboard_raw_token = raw

    def response_add(self, request, obj, post_url_continue=None):
        raw = getattr(request, "_podboard_raw_token", None)
        if raw is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Token for {obj.pod.name}",
            "opts": self.opts,
            "token": obj,
            "raw_token": raw,
            "changelist_url": reverse("admin:tasks_app_podtoken_changelist"),
        }
        # The admin's views are never_cache: the page is not kept by the browser either.
        return TemplateResponse(request, "admin/tasks_app/podtoken/issued.html", context)

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        count = queryset.filter(revoked_at=None).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)


# Tasks ---------------------------------------------------------------------------------------


class TaskAdminForm(forms.ModelForm):
    """Refuse a dependency cycle with a form error (the admin builds the fields)."""

    def clean_id(self):
        task_id = self.cleaned_data.get("id")
        if task_id and self.instance._state.adding:
            validate_created_task_id(task_id)
        return task_id

    def clean(self):
        cleaned = super().clean()
        task_id = cleaned.get("id") or self.instance.pk
        depends_on = cleaned.get("depends_on")
        if task_id and depends_on is not None:
            path = workflow.find_cycle(task_id, [t.pk for t in depends_on])
            if path:
                self.add_error(
                    "depends_on",
                    f"{task_id} cannot depend on {path[1]}: that makes a cycle "
                    f"({' → '.join(path)}).",
                )
        return cleaned


class HandoffNoteInline(admin.StackedInline):
    model = HandoffNote
    fk_name = "from_task"
    verbose_name = "handoff note written"
    verbose_name_plural = "handoff notes written"
    extra = 0
    autocomplete_fields = ["to_task"]
    fields = [
        ("to_task", "reason", "handoff_type", "mode"),
        "note",
        ("token_count", "author", "author_pod", "created_at"),
    ]


class TraceStepInline(admin.TabularInline):
    model = TraceStep
    extra = 0
    fields = ["step", "action", "rationale", "tokens", "author_pod", "at"]


class ThoughtInline(admin.TabularInline):
    model = Thought
    extra = 0
    fields = ["step", "thought", "at"]


class BlockedFilter(admin.SimpleListFilter):
    title = "blocked"
    parameter_name = "blocked"

    def lookups(self, request, model_admin):
        return [("yes", "Blocked"), ("no", "Not blocked")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(is_blocked_now=True)
        if self.value() == "no":
            return queryset.filter(is_blocked_now=False)
        return queryset


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    form = TaskAdminForm
    list_display = [
        "id",
        "title",
        "pod_owner",
        "status",
        "task_type",
        "priority",
        "handoff_mode",
        "claimed_by",
        "blocked",
    ]
    list_filter = ["pod_owner", "status", "task_type", "handoff_mode", BlockedFilter]
    list_select_related = ["pod_owner"]
    search_fields = ["id", "title"]
    autocomplete_fields = ["depends_on", "handoff_from"]
    list_per_page = 50
    show_full_result_count = False
    inlines = [HandoffNoteInline, TraceStepInline, ThoughtInline]
    actions = [
        "activate",
        "complete",
        "approve",
        "request_changes",
        "scale_out",
        "expire_leases",
        "export_selected",
    ]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "id",
                    "title",
                    "description",
                    ("pod_owner", "status"),
                    ("task_type", "priority", "handoff_mode"),
                ]
            },
        ),
        ("Baton", {"fields": ["depends_on", "handoff_from", "scale_root"]}),
        ("Work", {"fields": ["prompt", "inputs", "outputs", "reasoning_summary", "token_count"]}),
        ("Claim", {"fields": [("claimed_by", "lease_expires_at"), ("question", "asked_at")]}),
        (
            "History",
            {
                "fields": [
                    ("created_at", "started_at", "completed_at"),
                    ("updated_at", "version"),
                    "event_history",
                ]
            },
        ),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(is_blocked_now=blocked_exists())

    def get_readonly_fields(self, request, obj=None):
        # The open question changes only through ask / answer / completion (its Events).
        fields = ["updated_at", "version", "event_history", "question", "asked_at"]
        if obj is not None:
            fields.insert(0, "id")  # the natural key is used in URLs, YAML and the API
        return fields

    @admin.display(description="blocked", boolean=True, ordering="is_blocked_now")
    def blocked(self, task):
        return task.is_blocked_now

    @admin.display(description="events")
    def event_history(self, task):
        if task is None or task.pk is None:
            return "—"
        rows = list(Event.objects.filter(task_key=task.pk).order_by("-id")[:HISTORY_ROWS])
        url = reverse("admin:tasks_app_event_changelist") + f"?task_key={task.pk}"
        if not rows:
            return format_html('No events yet. <a href="{}">Event list</a>', url)
        body = format_html_join(
            "",
            "<tr><td>#{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} → {}</td><td>{}</td></tr>",
            (
                (
                    e.id,
                    e.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    e.kind,
                    e.actor or "—",
                    e.from_status or "·",
                    e.to_status or "·",
                    _pods(e),
                )
                for e in rows
            ),
        )
        return format_html(
            "<table><thead><tr><th>seq</th><th>at (UTC)</th><th>kind</th><th>actor</th>"
            "<th>status</th><th>pod</th></tr></thead><tbody>{}</tbody></table>"
            '<p><a href="{}">All events of {}</a></p>',
            body,
            url,
            task.pk,
        )

    # Saving: creation and edits are recorded as events and announced to boards.

    def save_model(self, request, obj, form, change):
        if change:
            return  # written in save_related, inside the edit rule, with its inlines
        fields = {
            name: form.cleaned_data[name]
            for name in form.cleaned_data
            if name not in ("id", "title", "pod_owner", "depends_on", "handoff_from")
            and name in {f.name for f in Task._meta.concrete_fields}
        }
        created = workflow.create_task(
            actor=_actor(request),
            id=obj.id,
            title=obj.title,
            pod_owner=obj.pod_owner,
            depends_on=[t.pk for t in form.cleaned_data.get("depends_on") or []],
            handoff_from=obj.handoff_from_id,
            **fields,
        )
        obj._state.adding = False
        obj._state.db = created._state.db
        obj.version = created.version

    def save_related(self, request, form, formsets, change):
        if not change:
            super().save_related(request, form, formsets, change)
            return
        changed = set(form.changed_data)
        for formset in formsets:
            if formset.has_changed():
                changed.add(formset.prefix)

        def apply():
            task = form.instance
            task.version = Task.objects.values_list("version", flat=True).get(pk=task.pk)
            super(TaskAdmin, self).save_model(request, task, form, change)
            super(TaskAdmin, self).save_related(request, form, formsets, change)

        workflow.edit_task(
            task_id=form.instance.pk, actor=_actor(request), apply=apply, changed=changed
        )

    def delete_model(self, request, obj):
        workflow.delete_tasks(task_ids=[obj.pk], actor=_actor(request))

    def delete_queryset(self, request, queryset):
        workflow.delete_tasks(
            task_ids=list(queryset.values_list("pk", flat=True)), actor=_actor(request)
        )

    # Actions: each calls its workflow rule and reports refusals as messages.

    @admin.action(description="Activate selected tasks (ready → active)")
    def activate(self, request, queryset):
        actor = _actor(request)
        _run_rule(
            self,
            request,
            queryset,
            "Activated",
            lambda tid: workflow.activate(task_id=tid, actor=actor),
        )

    @admin.action(description="Complete selected tasks (as you)")
    def complete(self, request, queryset):
        actor = _actor(request)
        _run_rule(
            self,
            request,
            queryset,
            "Completed",
            lambda tid: workflow.complete(task_id=tid, actor=actor),
        )

    @admin.action(description="Approve selected tasks in review")
    def approve(self, request, queryset):
        actor = _actor(request)
        _run_rule(
            self,
            request,
            queryset,
            "Approved",
            lambda tid: workflow.review(task_id=tid, verdict="approve", actor=actor),
        )

    @admin.action(description="Request changes on selected tasks in review (back to Ready)")
    def request_changes(self, request, queryset):
        actor = _actor(request)
        _run_rule(
            self,
            request,
            queryset,
            "Sent back to Ready",
            lambda tid: workflow.review(
                task_id=tid,
                verdict="changes_requested",
                note=f"Changes requested by {actor} in the admin.",
                actor=actor,
            ),
        )

    @admin.action(description="Scale out selected tasks (continue on a new instance)")
    def scale_out(self, request, queryset):
        actor = _actor(request)
        made = []

        def rule(tid):
            done = workflow.scale_out(task_id=tid, actor=actor, reason="manual")
            made.append(done.continuation.pk)

        _run_rule(self, request, queryset, "Scaled out", rule)
        if made:
            self.message_user(request, f"Continuations: {', '.join(made)}.", messages.INFO)

    @admin.action(description="Expire ran-out leases now (all tasks)")
    def expire_leases(self, request, queryset):
        count = workflow.expire_leases()
        self.message_user(
            request, f"Returned {count} task(s) with an expired lease to Ready.", messages.SUCCESS
        )

    @admin.action(description="Export selected tasks as a YAML directory (zip)")
    def export_selected(self, request, queryset):
        task_ids = list(queryset.order_by("pk").values_list("pk", flat=True))
        data = yamlio.export_zip(task_ids)
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response = HttpResponse(data, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="podboard-tasks-{stamp}.zip"'
        return response


def _pods(event):
    if event.from_pod and event.to_pod and event.from_pod != event.to_pod:
        return f"{event.from_pod} → {event.to_pod}"
    return event.to_pod or event.from_pod or "·"


# Notes, traces, rules, events ----------------------------------------------------------------


@admin.register(HandoffNote)
class HandoffNoteAdmin(admin.ModelAdmin):
    list_display = [
        "from_task",
        "to_task",
        "reason",
        "handoff_type",
        "mode",
        "token_count",
        "author",
        "author_pod",
        "created_at",
    ]
    list_filter = ["reason", "handoff_type", "mode"]
    search_fields = ["from_task__id", "to_task__id", "note", "author"]
    autocomplete_fields = ["from_task", "to_task"]
    list_select_related = ["from_task", "to_task"]


@admin.register(TraceStep)
class TraceStepAdmin(admin.ModelAdmin):
    list_display = ["task", "step", "action", "tokens", "author_pod", "at"]
    search_fields = ["task__id", "action", "rationale"]
    autocomplete_fields = ["task"]
    list_select_related = ["task"]


@admin.register(Thought)
class ThoughtAdmin(admin.ModelAdmin):
    list_display = ["task", "step", "thought", "at"]
    search_fields = ["task__id", "thought"]
    autocomplete_fields = ["task"]
    list_select_related = ["task"]


@admin.register(Comment)
class CommentAdmin(admin.ModelAdmin):
    """People's comments, pods' questions and the answers: read here, written on the task page
    (``workflow.comment`` / ``ask`` / ``answer``, each with its Event)."""

    list_display = ["task", "kind", "author", "created_at"]
    list_filter = ["kind"]
    search_fields = ["task__id", "body", "author"]
    list_select_related = ["task"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(AutoModeRule)
class AutoModeRuleAdmin(admin.ModelAdmin):
    list_display = ["task_type", "mode", "note"]
    list_editable = ["mode"]
    search_fields = ["task_type"]


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    """The append-only history: readable, never written from here."""

    list_display = [
        "id",
        "created_at",
        "kind",
        "task_key",
        "actor",
        "from_status",
        "to_status",
        "from_pod",
        "to_pod",
    ]
    list_filter = ["kind", "to_pod"]
    search_fields = ["=task_key", "actor"]
    show_full_result_count = False
    list_per_page = 100

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
