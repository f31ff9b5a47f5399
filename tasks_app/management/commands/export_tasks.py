"""``manage.py export_tasks DIR``: write tasks to a directory of task.yaml files."""

from django.core.management.base import BaseCommand

from tasks_app import yaml_io


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
        parser.add_argument(
            "--progress",
            action="store_true",
            help="Draw the progress bar even when stderr is not a terminal.",
        )

    def handle(self, *, directory, task_ids, progress, **options):
        bar = yaml_io.ProgressBar(self.stderr, force=progress)
        count = yaml_io.export_directory(directory, task_ids=task_ids, progress=bar)
        bar.close()
        self.stdout.write(f"Exported {count} task(s) to {directory}.")
