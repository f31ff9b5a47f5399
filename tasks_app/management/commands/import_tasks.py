"""``manage.py import_tasks DIR [--dry-run]``: load a directory of task.yaml files."""

from django.core.management.base import BaseCommand, CommandError

from tasks_app import yamlio
from tasks_app.cli import add_progress_option, describe_import, progress_for


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
        add_progress_option(parser)

    def handle(self, *, directory, dry_run, actor, progress, **options):
        bar = progress_for(options, force=progress)
        try:
            summary = yamlio.import_directory(directory, actor=actor, dry_run=dry_run, progress=bar)
        except yamlio.ImportErrors as exc:
            bar.close()
            for problem in exc.problems:
                self.stderr.write(str(problem))
            message = f"{len(exc.problems)} problem(s) in {directory}; nothing was imported."
            raise CommandError(message, returncode=1) from None
        bar.close()
        self.stdout.write(describe_import(summary, dry_run=dry_run))
