"""``create_pod_token POD [--label L]``: issue a pod token and print it once.

``--revoke PREFIX`` revokes the pod's tokens whose printed prefix starts with PREFIX instead.
"""

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from tasks_app.models import Pod, PodToken


class Command(BaseCommand):
    help = "Issue an API token for a pod and print it once (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("pod", help="The pod's name, e.g. DevPod.")
        parser.add_argument("--label", default="", help="What the token is for, e.g. 'dev GPT'.")
        parser.add_argument(
            "--revoke", metavar="PREFIX", help="Revoke this pod's tokens starting with PREFIX."
        )

    def handle(self, *args, pod, label, revoke, **options):
        found = Pod.objects.filter(name=pod).first()
        if found is None:
            known = ", ".join(Pod.objects.values_list("name", flat=True)) or "none yet"
            raise CommandError(f"No pod named {pod!r} (known: {known}).")
        if revoke is not None:
            self._revoke(found, revoke)
            return
        token, raw = PodToken.issue(pod=found, label=label[:100])
        self.stderr.write(
            f"Token {token.prefix}… for {found.name} created. It is shown once; store it now."
        )
        self.stdout.write(raw)

    def _revoke(self, pod, prefix):
        if len(prefix) < 4:
            raise CommandError("Give at least 4 characters of the token's prefix.")
        count = PodToken.objects.filter(
            pod=pod, prefix__startswith=prefix[:10], revoked_at__isnull=True
        ).update(revoked_at=timezone.now())
        if not count:
            raise CommandError(f"No active {pod.name} token starts with {prefix!r}.")
        self.stdout.write(f"Revoked {count} {pod.name} token(s) starting with {prefix!r}.")
