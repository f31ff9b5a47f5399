"""Admin for push: a pod's webhook (URL checked, secret shown once), the outbox and its tries.

``PodWebhookAdmin`` is mixed into ``tasks_app.admin.PodAdmin``: a "Webhook" section with the
URL, a "new secret" box and a link to the pod's deliveries. Saving a URL for the first time (or
asking for a new secret) generates a ``whsec_…`` secret and shows it on one page, once; after
that only its first characters are shown.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from ..models import DeliveryAttempt, WebhookDelivery
from .signing import new_secret
from .urls import check_url

WEBHOOK_FIELDS = ["webhook_url", "rotate_webhook_secret", "webhook_secret_shown", "deliveries_link"]


class PodWebhookForm(forms.ModelForm):
    webhook_url = forms.URLField(
        required=False,
        max_length=500,
        assume_scheme="https",
        help_text="Where PodBoard POSTs when work becomes workable (http or https).",
    )
    rotate_webhook_secret = forms.BooleanField(
        required=False,
        label="New secret",
        help_text="Generate a new signing secret (shown once). A new URL gets one anyway if the "
        "pod has none.",
    )

    def clean_webhook_url(self):
        url = (self.cleaned_data.get("webhook_url") or "").strip()
        if url:
            try:
                check_url(url)
            except ValidationError as exc:
                raise forms.ValidationError(exc.messages) from None
        return url


class PodWebhookAdmin:
    """Mixin for the Pod admin (see the module docstring)."""

    form = PodWebhookForm

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        rest = [
            (name, {**options, "fields": [f for f in options["fields"] if f not in WEBHOOK_FIELDS]})
            for name, options in fieldsets
        ]
        fields = ["webhook_url", "rotate_webhook_secret"]
        if obj is not None:
            fields += ["webhook_secret_shown", "deliveries_link"]
        return [
            *rest,
            (
                "Webhook",
                {
                    "fields": fields,
                    "description": "PodBoard POSTs signed notices (Standard Webhooks) here when "
                    "a task of this pod becomes workable. Receivers verify them with the secret.",
                },
            ),
        ]

    def get_readonly_fields(self, request, obj=None):
        return [
            *super().get_readonly_fields(request, obj),
            "webhook_secret_shown",
            "deliveries_link",
        ]

    @admin.display(description="secret")
    def webhook_secret_shown(self, pod):
        if not pod.webhook_secret:
            return "—"
        return f"{pod.webhook_secret[:10]}… (shown once when it was made)"

    @admin.display(description="deliveries")
    def deliveries_link(self, pod):
        url = reverse("admin:tasks_app_webhookdelivery_changelist") + f"?pod__id__exact={pod.pk}"
        return format_html('<a href="{}">Deliveries and attempts</a>', url)

    def save_model(self, request, obj, form, change):
        url = form.cleaned_data.get("webhook_url", obj.webhook_url)
        if not url:
            obj.webhook_secret = ""
        elif not obj.webhook_secret or form.cleaned_data.get("rotate_webhook_secret"):
            obj.webhook_secret = new_secret()
            request._podboard_webhook_secret = obj.webhook_secret
        super().save_model(request, obj, form, change)

    def _secret_page(self, request, obj):
        secret = getattr(request, "_podboard_webhook_secret", None)
        if secret is None:
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": f"Webhook secret for {obj.name}",
            "opts": self.opts,
            "pod": obj,
            "secret": secret,
            "change_url": reverse("admin:tasks_app_pod_change", args=[obj.pk]),
        }
        return TemplateResponse(request, "admin/tasks_app/pod/webhook_secret.html", context)

    def response_add(self, request, obj, post_url_continue=None):
        page = self._secret_page(request, obj)
        return page or super().response_add(request, obj, post_url_continue)

    def response_change(self, request, obj):
        page = self._secret_page(request, obj)
        return page or super().response_change(request, obj)


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = ["at", "status_code", "error", "duration_ms"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-at", "-id"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """The outbox: every notice a pod was (or will be) sent, each attempt, and "send again"."""

    list_display = [
        "id", "kind", "task_key", "pod", "state", "attempts", "next_attempt_at", "created_at",
        "delivered_at", "error_short",
    ]  # fmt: skip
    list_filter = ["state", "kind", "pod"]
    search_fields = ["task_key", "webhook_id"]
    date_hierarchy = "created_at"
    actions = ["send_again"]
    inlines = [DeliveryAttemptInline]
    readonly_fields = [
        "pod", "event", "kind", "task_key", "webhook_id", "url", "payload", "state", "attempts",
        "next_attempt_at", "last_error", "created_at", "delivered_at",
    ]  # fmt: skip
    fields = readonly_fields
    list_select_related = ["pod"]

    @admin.display(description="last error")
    def error_short(self, delivery):
        return (
            (delivery.last_error[:80] + "…")
            if len(delivery.last_error) > 80
            else delivery.last_error
        )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Send again now", permissions=["view"])
    def send_again(self, request, queryset):
        from .worker import resend

        count = resend(queryset)
        self.message_user(
            request,
            f"{count} deliver{'y' if count == 1 else 'ies'} will be sent again by the delivery "
            "worker (manage.py deliver_webhooks).",
            messages.SUCCESS,
        )
