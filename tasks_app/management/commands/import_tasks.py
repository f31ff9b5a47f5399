"""``manage.py import_tasks DIR [--dry-run]``: load a directory of task.yaml files."""

from django.core.management.base import BaseCommand, CommandError

from tasks_app import yaml_io


def describe(summary, *, dry_run):
    """Return a one-paragraph account of an import summary."""
    created, updated, unchanged = summary["created"], summary["updated"], summary["unchanged"]
    verb = ("would create", "would update") if dry_run else ("created", "updated")
    lines = [
        f"{len(created) + len(updated) + len(unchanged)} task(s): {len(created)} {verb[0]}, "
        f"{len(updated)} {verb[1]}, {len(unchanged)} unchanged."
    ]
    if updated and len(updated) <= 20:
        lines.append(f"Updated: {', '.join(updated)}.")
    if summary["pods_created"]:
        lines.append(f"Pods {verb[0]}: {', '.join(summary['pods_created'])}.")
    if summary["pods_updated"]:
        lines.append(f"Pods {verb[1]}: {', '.join(summary['pods_updated'])}.")
    if dry_run:
        lines.append("Dry run: nothing was written.")
    return "\n".join(lines)


class Command(BaseCommand):
    help = (
        "Import a task directory (pods.yaml, tasks/<id>/task.yaml …). The whole directory is "
        "checked first; on any problem every problem is printed and nothing is written."
    )

    def add_arguments(self, parser):
        parser.add_argument("directory")
        parser.add_argument(
            "--dry-run", action="store_true", help="Check and report; write nothing."
        )
        parser.add_argument(
            "--actor", default="import", help="Who the history names (default: import)."
        )
        parser.add_argument(
            "--progress",
            action="store_true",
            help="Draw the progress bar even when stderr is not a terminal.",
        )

    def handle(self, *, directory, dry_run, actor, progress, **options):
        bar = yaml_io.ProgressBar(self.stderr, force=progress)
        try:
            summary = yaml_io.import_directory(
                directory, actor=actor, dry_run=dry_run, progress=bar
            )
        except yaml_io.ImportErrors as exc:
            bar.close()
            for problem in exc.problems:
                self.stderr.write(str(problem))
            message = f"{len(exc.problems)} problem(s) in {directory}; nothing was imported."
            raise CommandError(message, returncode=1) from None
        bar.close()
        self.stdout.write(describe(summary, dry_run=dry_run))
