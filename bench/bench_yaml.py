"""Time YAML import and export of a generated task directory.

    .venv/bin/python bench/bench_yaml.py              # 1,000 tasks
    .venv/bin/python bench/bench_yaml.py --tasks 10000

Runs against a fresh throw-away database: a temporary SQLite file by default, or a test
database created next to the one ``DATABASE_URL`` names (and dropped afterwards). Prints one
markdown table row per run.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--header", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="podboard-bench-"))
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "podboard.settings")
    os.environ["PODBOARD_SQLITE_TEST_PATH"] = str(work / "bench.sqlite3")
    import django

    django.setup()
    from django.db import connection

    from tasks_app import yamlio
    from tasks_app.management.commands.generate_tasks import generate
    from tasks_app.models import Task

    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        source, first, second = work / "generated", work / "export-1", work / "export-2"
        clock = _Clock()
        pods, records = generate(args.tasks, seed=args.seed)
        yamlio.write_directory(source, pods=pods, records=records)
        generate_s = clock.stop()
        files = sum(1 for p in source.rglob("*") if p.is_file())

        clock = _Clock()
        summary = yamlio.import_directory(source)
        import_s = clock.stop()
        assert len(summary["created"]) == Task.objects.count() == args.tasks

        clock = _Clock()
        summary = yamlio.import_directory(source)
        reimport_s = clock.stop()
        assert len(summary["unchanged"]) == args.tasks

        clock = _Clock()
        yamlio.export_directory(first)
        export_s = clock.stop()

        # Touch every task so the re-import has to rewrite all of them.
        for path in source.glob("tasks/*/task.yaml"):
            path.write_text(path.read_text().replace("priority: ", "priority: 1", 1))
        clock = _Clock()
        summary = yamlio.import_directory(source)
        update_s = clock.stop()
        assert len(summary["updated"]) == args.tasks

        yamlio.import_directory(first)
        yamlio.export_directory(second)
        identical = _tree(first) == _tree(second)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        shutil.rmtree(work, ignore_errors=True)

    if args.header:
        print("Seconds as wall (CPU of this process), so a busy machine shows in the numbers.")
        print(
            "| database | tasks | files | generate | import | re-import unchanged "
            "| re-import all changed | export | export→import→export identical |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    same = "yes" if identical else "NO"
    print(
        f"| {connection.vendor} | {args.tasks} | {files} | {generate_s} | {import_s} "
        f"| {reimport_s} | {update_s} | {export_s} | {same} |"
    )
    return 0 if identical else 1


class _Clock:
    """Wall and CPU time since creation, formatted as ``12.3 (10.1)``."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self):
        wall, cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
        return f"{wall:.1f} ({cpu:.1f})"


def _tree(root):
    return {
        p.relative_to(root): p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()
    }


if __name__ == "__main__":
    sys.exit(main())
