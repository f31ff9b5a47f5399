"""Give a pod a webhook URL and print its new signing secret (shown this once)."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tasks_app.models import Pod
from tasks_app.push.pods import set_webhook


class Command(BaseCommand):
    help = (
        "Set POD's webhook URL and print a new whsec_… signing secret, once. Receivers verify "
        "deliveries with it (any Standard Webhooks library). Running it again rotates the secret."
    )

    def add_arguments(self, parser):
        parser.add_argument("pod", help="The pod's name, e.g. DevPod.")
        parser.add_argument("url", help="Where PodBoard POSTs, e.g. http://127.0.0.1:9100/hook.")

    def handle(self, *args, pod, url, **options):
        found = Pod.objects.filter(name=pod).first()
        if found is None:
            known = ", ".join(Pod.objects.values_list("name", flat=True)) or "none yet"
            raise CommandError(f"No pod named {pod!r} (pods: {known}).")
        try:
            secret = set_webhook(found, url)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(secret)
        self.stderr.write(
            f"{found.name} now receives webhooks at {url}. The secret above is shown once: "
            "store it with the receiver."
        )
