#!/usr/bin/env python
"""Run every benchmark and write docs/BENCHMARKS.md.

    python bench/run_all.py                 # every bench script + the stress short form
    python bench/run_all.py --quick         # smaller sizes, for a quick look
    python bench/run_all.py --full-stress   # the stress section from `stress.py --full`
    python bench/run_all.py --only live,stress
    python bench/run_all.py --list          # each section's commands; runs nothing

The contract with each bench script: it runs on its own (its own database and ports), prints
its result as markdown (a title line or two and a table) on stdout, progress on stderr, and
exits 0. ``run_all`` runs each in a subprocess with the flags below, keeps its stdout for the
report and its stderr in ``var/bench/<name>.log``. A missing script or a failed run gets a
clear line in the report instead of its table; the other sections still run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import machine_info, machine_table, markdown_table  # noqa: E402

REPORT = ROOT / "docs" / "BENCHMARKS.md"
PG_FOR_VERSION = "postgres://postgres@127.0.0.1:5432/postgres"
LOGS = ROOT / "var" / "bench"

# The speed floor measured on this machine class (2 cores), for comparison with PodBoard.
FLOOR_FACTS = [
    (
        "trivial django-ninja endpoint: bearer-token lookup + one atomic UPDATE",
        "~600 req/s on two uvicorn workers (~300 on one daphne process)",
    ),
    ("bare SQL `FOR UPDATE SKIP LOCKED` claim loop on PostgreSQL", "~2,500 claims/s"),
    ("channels-redis delivery to 100 sockets", "p95 ~3 ms"),
]


class Section:
    """One benchmark: which script, its flags, and what the report calls it.

    ``runs`` (and ``quick_runs``), when given, run the script several times, each with its own
    ``(args, extra environment)``, and join their outputs (for scripts printing a row a run).
    """

    def __init__(
        self, key, title, script, args=(), quick=(), intro="", timeout=1800, runs=None,
        quick_runs=None,
    ):  # fmt: skip
        self.key, self.title, self.script = key, title, script
        self.args, self.quick, self.intro, self.timeout = list(args), list(quick), intro, timeout
        self.runs, self.quick_runs = runs, quick_runs


YAML_PG = {"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/yamlbench"}
METRICS_SQLITE = f"sqlite:///{ROOT / 'var' / 'bench-metrics.sqlite3'}"

SECTIONS = [
    Section(
        "api",
        "Claim throughput and latency vs the framework floor",
        "bench_api.py",
        intro=(
            "Pods pulling and completing through the HTTP API (`next` → `complete`), compared "
            "in the same run with a bare django-ninja endpoint (its own ASGI app, no PodBoard "
            "middleware: bearer lookup + one atomic UPDATE) and with PodBoard's own floor "
            "route: on PostgreSQL with 2 workers, and on the embedded default (SQLite, one "
            "process)."
        ),
        runs=[([], {}), (["--sqlite", "--workers", "1"], {})],
        quick_runs=[
            (["--seconds", "3", "--tasks", "5000"], {}),
            (["--sqlite", "--workers", "1", "--seconds", "3", "--tasks", "5000"], {}),
        ],
    ),
    Section(
        "board",
        "Board server time vs task count",
        "bench_board.py",
        quick=["--sizes", "100", "1000", "--runs", "3"],
        intro="Server time to render the board (`GET /`) as the number of tasks grows.",
    ),
    Section(
        "live",
        "Live-update delay vs connected boards",
        "bench_live.py",
        quick=["--boards", "1,10", "--calls", "10"],
        intro="Delay from an API change to its push arriving on every connected board.",
    ),
    Section(
        "yaml",
        "Import/export time vs task count",
        "bench_yaml.py",
        intro="`import_tasks` / `export_tasks` on generated task directories.",
        runs=[
            (["--tasks", "100"], {}),
            (["--tasks", "1000", "--no-header"], {}),
            (["--tasks", "10000", "--no-header"], {}),
            (["--tasks", "1000", "--no-header"], YAML_PG),
            (["--tasks", "10000", "--no-header"], YAML_PG),
        ],
        quick_runs=[
            (["--tasks", "100"], {}),
            (["--tasks", "1000", "--no-header"], {}),
            (["--tasks", "1000", "--no-header"], YAML_PG),
        ],
    ),
    Section(
        "import",
        "Import of 50,000 tasks: memory and progress",
        "bench_import_memory.py",
        intro=(
            "`manage.py import_tasks DIR` reports `read`, `check` and `write` progress on any "
            "stream: a bar redrawn in place on a terminal, otherwise one line at most every "
            "`--progress-seconds` (3 s by default). It streams: reading checks each task and "
            "keeps only a small entry (id, pod, dependencies, a digest of its data); the "
            "checks that need every task (references, cycles, what changed) use those "
            "entries; writing reads the changed tasks again 1,000 at a time and writes them "
            "with their dependencies, notes, traces and `imported` Events, refusing a task "
            "whose files changed since the check. Target (issue 16): peak memory under "
            "~200 MB at 50,000 tasks (410 MB, and no output for 2 minutes, before). About "
            "100 MB of any peak is the process itself: an 11-task import peaks at ~104 MB."
        ),
        quick=["--tasks", "5000"],
        timeout=7200,
    ),
    Section(
        "push",
        "Push to pods: webhook, long-poll and polling",
        "bench_push.py",
        intro=(
            "From a sync handoff's commit to the successor's pod holding its start context, by "
            "webhook + start, by long-poll and by 1 s polling; and what 16 idle pods cost the "
            "server with and without long-poll."
        ),
        runs=[([], {}), (["--postgres"], {})],
        quick_runs=[(["--rounds", "8", "--idle-seconds", "10"], {})],
    ),
    Section(
        "metrics",
        "Flow metrics at 1M events",
        "bench_metrics.py",
        intro=(
            "`GET /api/metrics/flow` and `/metrics/` with 100,000 tasks and 1,000,000 Events, "
            "on PostgreSQL and on SQLite, closed days rolled up beforehand (docs/metrics.md). "
            "Targets: ≤ 300 ms on PostgreSQL, ≤ 1 s on SQLite, for `days=30` and the page."
        ),
        runs=[([], {}), (["--database-url", METRICS_SQLITE], {})],
        quick_runs=[
            (["--tasks", "10000"], {}),
            (["--tasks", "10000", "--database-url", METRICS_SQLITE], {}),
        ],
    ),
    Section(
        "chain",
        "Delivery chain of 200 tasks",
        "bench_chain.py",
        intro=(
            "`/chains/<id>/` for one delivery of 204 linked tasks: server time through Django's "
            "test client, layout in headless Chromium against a real server. Targets: server "
            "≤ 200 ms, browser layout ≤ 500 ms."
        ),
        runs=[([], {}), (["--sqlite"], {})],
        quick_runs=[(["--runs", "3"], {})],
    ),
    Section(
        "browser",
        "The board in Chromium at 50,000 tasks",
        "bench_browser.py",
        intro=(
            "`bench/bench_browser.py` (Playwright + `/usr/bin/chromium --no-sandbox`, one "
            "uvicorn process, SQLite, the bench_board seed: four pods, 75 % done, 20 % ready, "
            "5 % active). After two warm-up visits, each run measures the board's first "
            "contentful paint and load event (Navigation Timing of a fresh visit); a drag of a "
            "Ready card to another pod's Ready column and a reorder within Ready, from the "
            "mouse release until the card sits in its new column with the server's answer "
            "swapped in (the server's share: the request's time to first byte); and a search "
            "typed key by key, from the last key until the filtered board is on the page (the "
            "board waits 300 ms after the last key before it asks). Targets from issue 16: "
            "paint < 1 s, load < 1.5 s, drags < 300 ms, search < 500 ms after the last key."
        ),
        runs=[(["--runs", "5"], {})],
        quick_runs=[(["--tasks", "5000", "--runs", "3"], {})],
        timeout=3600,
    ),
    Section(
        "stress",
        "Stress run",
        "stress.py",
        intro=(
            "Pods of three types work a task graph through the API on several server workers "
            "while boards watch over websockets; then every invariant is checked in the "
            "database. The bare-SQL claim loop is measured on the same PostgreSQL as the floor. "
            "Then the same on the embedded default (`--embedded`: SQLite, one process)."
        ),
        runs=[([], {}), (["--embedded"], {})],
        timeout=3600,
    ),
]


def _bench_env():
    """Return the environment for a bench script: never the caller's own database or Redis.

    Each script picks its dedicated database (and drops it): a DATABASE_URL left in the shell
    must not send it to somebody's development data.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _accepts(script, args):
    """Return True when ``script`` mentions every ``--option`` in ``args`` (its argparse does)."""
    source = script.read_text(encoding="utf-8", errors="replace")
    return all(f'"{a}"' in source for a in args if a.startswith("--"))


def _last_full_stress():
    """Return the last `stress.py --full` run's report (``make stress``), if there is one."""
    path = LOGS / "stress-full.json"
    if not path.exists():
        return "\n\n_No full stress run on record: run `make stress`._"
    data = json.loads(path.read_text())
    when = data.get("machine", {}).get("date", "an earlier run")
    return f"\n\nThe last full run (`make stress`, {when}):\n\n" + data.get("markdown", "")


def _runs(section, *, quick):
    """Return the ``(args, extra environment)`` of each run of ``section``."""
    runs = (section.quick_runs if quick else section.runs) or section.runs
    if runs is None:
        args = list(section.args)
        if quick and _accepts(ROOT / "bench" / section.script, section.quick):
            args += section.quick
        runs = [(args, {})]
    return runs


def run_section(section, *, quick, full_stress):
    """Run one bench script (once or several times); return ``(markdown, status line)``."""
    script = ROOT / "bench" / section.script
    if not script.exists():
        line = f"not run: `bench/{section.script}` does not exist (yet)."
        return f"_{line}_", line
    runs = _runs(section, quick=quick)
    json_path = None
    if section.key == "stress":
        form = "full" if full_stress else "short"
        runs = [
            (
                args
                + ["--log", str(LOGS / "stress-server.log")]
                + [
                    "--json",
                    str(LOGS / f"stress-{'embedded-' * ('--embedded' in args)}{form}.json"),
                ]
                + (["--full"] if full_stress else []),
                env,
            )
            for args, env in runs
        ]
    LOGS.mkdir(parents=True, exist_ok=True)
    log_path = LOGS / f"{section.key}.log"
    began = time.monotonic()
    outputs, failure = [], None
    with open(log_path, "w") as log:
        for args, extra_env in runs:
            print(f"== {section.script} {' '.join(args)}", file=sys.stderr, flush=True)
            try:
                result = subprocess.run(
                    [sys.executable, str(script), *args],
                    cwd=ROOT,
                    env={**_bench_env(), **extra_env},
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                    timeout=section.timeout,
                )
            except subprocess.TimeoutExpired:
                failure = f"`bench/{section.script} {' '.join(args)}` timed out after "
                failure += f"{section.timeout}s; see `{log_path.relative_to(ROOT)}`."
                break
            if result.stdout.strip():
                outputs.append(result.stdout.strip())
            if result.returncode != 0:
                failure = (
                    f"`bench/{section.script} {' '.join(args)}` exited with "
                    f"{result.returncode}; see `{log_path.relative_to(ROOT)}`."
                )
                break
    seconds = time.monotonic() - began
    body = "\n".join(outputs)
    if json_path is not None and json_path.exists():
        body = json.loads(json_path.read_text()).get("markdown", body)
    if section.key == "stress" and not full_stress:
        body += _last_full_stress()
    if failure:
        return (body + "\n\n" if body else "") + f"**{failure}**", failure
    return body or "_(no output)_", f"`bench/{section.script}` ok in {seconds:.0f}s"


def build_report(results, machine, *, quick, full_stress):
    lines = [
        "# PodBoard benchmarks",
        "",
        "Generated by `make bench` (`bench/run_all.py"
        + (" --quick" if quick else "")
        + (" --full-stress" if full_stress else "")
        + "`); do not edit by hand. Each section is the markdown its script printed.",
        "",
        "## Machine",
        "",
        machine_table(machine),
        "",
        "## The floor",
        "",
        "What the stack itself can do on this machine class, measured without PodBoard's logic:",
        "",
        markdown_table(["floor", "figure"], FLOOR_FACTS),
        "",
    ]
    for section, (body, _status) in results:
        lines += [f"## {section.title}", ""]
        if section.intro:
            lines += [section.intro, ""]
        lines += [body, ""]
    lines += [
        "## Runs",
        "",
        markdown_table(["section", "result"], [(s.title, st) for s, (_b, st) in results]),
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes in every bench")
    parser.add_argument("--full-stress", action="store_true", help="run stress.py --full")
    parser.add_argument(
        "--only", help="comma-separated sections: " + ",".join(s.key for s in SECTIONS)
    )
    parser.add_argument(
        "--list", action="store_true", help="print the sections and their commands; run nothing"
    )
    parser.add_argument("--output", default=str(REPORT), help="where to write the report")
    args = parser.parse_args(argv)
    wanted = set(args.only.split(",")) if args.only else {s.key for s in SECTIONS}
    unknown = wanted - {s.key for s in SECTIONS}
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    if args.list:
        for section in SECTIONS:
            if section.key in wanted:
                print(f"{section.key}: {section.title}")
                for run_args, env in _runs(section, quick=args.quick):
                    extra = "".join(f"{k}={v} " for k, v in env.items())
                    print(f"    {extra}bench/{section.script} {' '.join(run_args)}".rstrip())
        return 0
    results = []
    for section in SECTIONS:
        if section.key not in wanted:
            continue
        body, status = run_section(section, quick=args.quick, full_stress=args.full_stress)
        print(f"   {status}", file=sys.stderr, flush=True)
        results.append((section, (body, status)))
    machine = machine_info(
        database_url=os.environ.get("STRESS_DATABASE_URL", PG_FOR_VERSION),
        redis_url=os.environ.get("STRESS_REDIS_URL", "redis://127.0.0.1:6379/5"),
    )
    text = build_report(results, machine, quick=args.quick, full_stress=args.full_stress)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print(f"wrote {output}", file=sys.stderr)
    failed = [st for _s, (_b, st) in results if "exited with" in st or "timed out" in st]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
