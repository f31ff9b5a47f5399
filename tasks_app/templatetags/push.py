"""Template tags for push: a task's webhook deliveries and their attempts (the detail page)."""

from django import template
from django.db.models import Prefetch

from ..models import DeliveryAttempt, WebhookDelivery

register = template.Library()

SHOWN = 20


@register.simple_tag
def webhook_deliveries(task):
    """Return the task's latest deliveries (newest first), each with its attempts."""
    return list(
        WebhookDelivery.objects.filter(task_key=task.pk)
        .select_related("pod")
        .prefetch_related(Prefetch("tries", queryset=DeliveryAttempt.objects.order_by("at", "id")))
        .order_by("-id")[:SHOWN]
    )


@register.filter
def scale_out_at(pod):
    """Return the token count at which ``pod``'s instances are advised to scale out (90 %)."""
    from ..workflow.trace import ADVICE_AT

    return int(pod.context_limit * ADVICE_AT)
