"""``manage.py export_tasks DIR``: write tasks to a directory of task.yaml files."""

from django.core.management.base import BaseCommand

from tasks_app import yamlio
from tasks_app.cli import add_progress_option, progress_for


class Command(BaseCommand):
    help = (
        "Export tasks to DIR (pods.yaml, tasks/<id>/…), deterministically: export → import → "
        "export gives the same bytes. Other task directories already in DIR are left alone."
    )

    def add_arguments(self, parser):
        parser.add_argument("directory")
        parser.add_argument(
            "--task",
            action="append",
            dest="task_ids",
            metavar="ID",
            help="Export only this task (repeatable).",
        )
        add_progress_option(parser)

    def handle(self, *, directory, task_ids, progress, **options):
        bar = progress_for(options, force=progress)
        count = yamlio.export_directory(directory, task_ids=task_ids, progress=bar)
        bar.close()
        self.stdout.write(f"Exported {count} task(s) to {directory}.")
