"""Measure `import_tasks` of a large generated directory: peak memory, time, progress.

    .venv/bin/python bench/bench_import_memory.py                # 50,000 tasks
    .venv/bin/python bench/bench_import_memory.py --tasks 5000

Writes a directory with `manage.py generate_tasks N DIR` (the same seed gives the same bytes),
migrates a fresh SQLite file, then runs `manage.py import_tasks DIR` twice under
`/usr/bin/time -v`, each in its own process: the first import (every task created) and a
re-import of the same directory (every task unchanged: read, checked, compared, not written).
Reports each run's peak resident memory (`Maximum resident set size`), wall and CPU seconds,
and how many progress lines it wrote to stderr (`--progress-seconds 3`, stderr not a
terminal). Everything lives in a temporary directory removed afterwards. Prints a markdown
table on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import markdown_table  # noqa: E402
from tests.support.servers import django_env, manage  # noqa: E402

TIME = "/usr/bin/time"
PROGRESS_SECONDS = 3
TARGET_MB = 200  # issue 16: 50,000 tasks stay under ~200 MB


def log(line):
    print(line, file=sys.stderr, flush=True)


def timed_import(directory, env):
    """Run ``import_tasks directory`` under ``time -v``; return its figures."""
    result = subprocess.run(
        [
            TIME,
            "-v",
            sys.executable,
            "manage.py",
            "import_tasks",
            str(directory),
            "--progress-seconds",
            str(PROGRESS_SECONDS),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=7200,
    )
    if result.returncode != 0:
        raise SystemExit(f"import_tasks failed:\n{result.stdout}\n{result.stderr[-4000:]}")

    def figure(label):
        match = re.search(rf"^\s*{re.escape(label)}: (.+)$", result.stderr, re.M)
        return match.group(1).strip()

    wall = 0.0
    for part in figure("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":"):
        wall = wall * 60 + float(part)
    progress_lines = [
        line for line in result.stderr.splitlines() if re.match(r"^\s*(read|check|write) \[", line)
    ]
    return {
        "peak_mb": int(figure("Maximum resident set size (kbytes)")) / 1024,
        "wall": wall,
        "cpu": float(figure("User time (seconds)")) + float(figure("System time (seconds)")),
        "progress": len(progress_lines),
        "summary": result.stdout.splitlines()[0] if result.stdout else "",
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not Path(TIME).exists():
        sys.exit(f"{TIME} is missing (apt-get install time)")
    work = Path(tempfile.mkdtemp(prefix="podboard-bench-import-"))
    try:
        env = django_env(database_url="", redis_url="", PODBOARD_SQLITE_PATH=work / "db.sqlite3")
        directory = work / "tasks"
        log(f"generating {args.tasks} tasks in {directory}")
        manage(
            "generate_tasks", str(args.tasks), str(directory), "--seed", str(args.seed),
            env=env, timeout=7200,
        )  # fmt: skip
        size = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
        manage("migrate", "--noinput", "-v", "0", env=env)
        rows = []
        for label in ("import (all created)", "re-import (all unchanged)"):
            log(f"{label} …")
            run = timed_import(directory, env)
            log(f"  {run['summary']} peak {run['peak_mb']:.0f} MB, {run['wall']:.0f} s")
            rows.append(
                [
                    label,
                    f"{args.tasks:,}",
                    f"{run['peak_mb']:.0f}",
                    f"< {TARGET_MB}",
                    "yes" if run["peak_mb"] < TARGET_MB else "**no**",
                    f"{run['wall']:.0f}",
                    f"{run['cpu']:.0f}",
                    str(run["progress"]),
                ]
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    headers = [
        "run",
        "tasks",
        "peak RSS (MB)",
        "target MB",
        "met",
        "wall s",
        "CPU s",
        f"progress lines (every {PROGRESS_SECONDS} s)",
    ]
    print(
        f"`manage.py import_tasks` on SQLite, a generated directory of {args.tasks:,} tasks "
        f"({size / 1024**2:,.1f} MB of files), each run in its own process under "
        "`/usr/bin/time -v`\n\n" + markdown_table(headers, rows)
    )


if __name__ == "__main__":
    main()
