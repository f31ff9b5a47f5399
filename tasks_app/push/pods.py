"""Setting a pod's webhook: the URL is checked, a new secret is generated and shown once."""

from ..models import Pod
from .signing import new_secret
from .urls import check_url


def set_webhook(pod, url, *, rotate=True):
    """Give ``pod`` the webhook ``url`` (checked, see ``urls``); return the new secret.

    ``rotate=False`` keeps an existing secret (a URL change only). An empty ``url`` removes the
    webhook and its secret; pending deliveries then fail at their next attempt.
    """
    if not url:
        Pod.objects.filter(pk=pod.pk).update(webhook_url="", webhook_secret="")
        pod.webhook_url = pod.webhook_secret = ""
        return ""
    check_url(url)
    secret = pod.webhook_secret if (pod.webhook_secret and not rotate) else new_secret()
    Pod.objects.filter(pk=pod.pk).update(webhook_url=url, webhook_secret=secret)
    pod.webhook_url, pod.webhook_secret = url, secret
    return secret
