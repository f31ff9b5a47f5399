"""The outbox: webhook deliveries written in the transaction of the change they report.

The rule runner calls ``write_for(events)`` once per rule, after saving its Events and before
commit. A ``WebhookDelivery`` row is written for each workable task (``workable``) whose pod
has a webhook URL, so the delivery commits or rolls back with the change itself: a crash
between commit and send loses nothing, the worker (``worker``) sends it later. After commit,
the pods that got claimable work wake their waiting ``next`` calls, and delivery workers wake
(``wakeup``).

Cost: rules that make nothing workable (claims, traces, most edits) pay nothing; the others pay
one small query for the pods of the rule that have a webhook (read once per transaction) and,
only then, one bulk insert.
"""

import uuid

from django.db import transaction

from ..models import Pod, WebhookDelivery
from ..shapes import iso
from . import wakeup
from .workable import workable


def new_webhook_id():
    """Return a ``webhook-id``: unique per delivery, the same on every retry of it."""
    return f"msg_{uuid.uuid4().hex}"


def payload_for(item):
    """Return the JSON body of a delivery (DESIGN.md, "Push to pods")."""
    return {
        "type": item.kind,
        "task_id": item.task_id,
        "pod": item.pod,
        "event_id": item.event.id,
        "at": iso(item.event.created_at),
    }


def write_for(events):
    """Write the deliveries ``events`` call for, and wake waiters after commit."""
    items, wake_all = workable(events)
    if not items and not wake_all:
        return []
    claimable = sorted({item.pod for item in items if item.claimable})
    deliveries = []
    pods = {item.pod for item in items}
    if pods:
        hooks = {
            name: (pk, url)
            for name, pk, url in Pod.objects.filter(name__in=pods)
            .exclude(webhook_url="")
            .order_by()
            .values_list("name", "pk", "webhook_url")
        }
        if hooks:
            seen = set()
            for item in items:
                key = (item.pod, item.task_id, item.kind)
                if item.pod not in hooks or key in seen:
                    continue
                seen.add(key)
                pod_id, url = hooks[item.pod]
                deliveries.append(
                    WebhookDelivery(
                        pod_id=pod_id,
                        event_id=item.event.id,
                        kind=item.kind,
                        task_key=item.task_id,
                        webhook_id=new_webhook_id(),
                        url=url,
                        payload=payload_for(item),
                        next_attempt_at=item.event.created_at,
                        created_at=item.event.created_at,
                    )
                )
            WebhookDelivery.objects.bulk_create(deliveries)
    if claimable or wake_all or deliveries:
        has_deliveries = bool(deliveries)
        transaction.on_commit(
            lambda: wakeup.after_commit(claimable, sorted(wake_all), has_deliveries),
            robust=True,
        )
    return deliveries
