"""``import_tasks`` shows its progress on any stream: plain lines when stderr is not a terminal
(at most one per ``--progress-seconds``), a bar redrawn in place on a terminal."""

import io

import pytest
from django.core.management import call_command

from tasks_app import yamlio
from tasks_app.management.commands.generate_tasks import generate
from tasks_app.models import Task

pytestmark = pytest.mark.django_db

N = 300


@pytest.fixture
def directory(tmp_path):
    pods, records = generate(N, seed=3)
    yamlio.write_directory(tmp_path / "big", pods=pods, records=records)
    return tmp_path / "big"


class Terminal(io.StringIO):
    def isatty(self):
        return True


def line(stage, done, total=N):
    filled = 30 * done // total
    return f"{stage:>6} [{'#' * filled}{'-' * (30 - filled)}] {done}/{total}"


def test_progress_lines_when_stderr_is_not_a_terminal(directory):
    err, out = io.StringIO(), io.StringIO()
    call_command("import_tasks", str(directory), stdout=out, stderr=err, progress_seconds=0)
    assert err.getvalue().splitlines() == [
        line("read", 200),
        line("read", 300),
        line("check", 300),
        line("check", 300),
        line("write", 300),
    ]
    assert Task.objects.count() == N
    assert out.getvalue().startswith(f"{N} task(s): {N} created, 0 updated, 0 unchanged.\n")


def test_no_line_before_the_interval_has_passed(directory):
    err = io.StringIO()
    call_command(
        "import_tasks", str(directory), stdout=io.StringIO(), stderr=err, progress_seconds=3600
    )
    assert err.getvalue() == ""
    assert Task.objects.count() == N


def test_a_bar_redrawn_in_place_on_a_terminal(directory):
    err = Terminal()
    call_command("import_tasks", str(directory), stdout=io.StringIO(), stderr=err)
    text = err.getvalue()
    assert (
        text
        == "".join(
            f"\r{line(stage, done)}"
            for stage, done in [("read", 200), ("read", 300), ("check", 300), ("check", 300)]
            + [("write", 300)]
        )
        + "\n"
    )
