"""The demo's setup, the simulator command's options, and the not-migrated message."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from tasks_app.models import Event, Task

ROOT = Path(settings.BASE_DIR)


def write_examples(root):
    """Write a two-task directory in the DESIGN.md format."""
    for task_id, pod, deps in [("PROD-1", "ProductPod", []), ("DEV-1", "DevPod", ["PROD-1"])]:
        folder = root / "tasks" / task_id
        folder.mkdir(parents=True)
        lines = [f"id: {task_id}", f"title: Example {task_id}", f"pod_owner: {pod}"]
        if deps:
            lines.append(f"depends_on: [{', '.join(deps)}]")
        (folder / "task.yaml").write_text("\n".join(lines) + "\n")
    return root


def test_demo_setup_loads_examples_into_an_empty_database_and_creates_the_login(
    db, tmp_path, capsys
):
    call_command(
        "demo", no_serve=True, examples=str(write_examples(tmp_path)), port=8411, history=0
    )
    out = capsys.readouterr().out

    assert set(Task.objects.values_list("pk", flat=True)) == {"PROD-1", "DEV-1"}
    assert Event.objects.filter(kind="imported").count() == 2
    user = authenticate(username="demo", password="podboard-demo")
    assert user is not None and user.is_staff
    assert "http://127.0.0.1:8411/" in out
    assert "podboard-demo" in out


def test_demo_setup_keeps_existing_tasks_and_password(db, tmp_path, make_task, capsys):
    make_task("DEV-7")
    get_user_model().objects.create_user("demo", password="changed-by-me-1")
    call_command("demo", no_serve=True, examples=str(write_examples(tmp_path)))
    out = capsys.readouterr().out

    assert list(Task.objects.values_list("pk", flat=True)) == ["DEV-7"]
    assert authenticate(username="demo", password="changed-by-me-1") is not None
    assert "password unchanged" in out


def test_demo_setup_without_an_example_directory_starts_empty(db, tmp_path, capsys):
    call_command("demo", no_serve=True, examples=str(tmp_path / "missing"), history=0)
    assert "No example directory" in capsys.readouterr().out
    assert not Task.objects.exists()


def test_demo_setup_refuses_a_broken_example_directory(db, tmp_path):
    (tmp_path / "tasks" / "DEV-1").mkdir(parents=True)
    (tmp_path / "tasks" / "DEV-1" / "task.yaml").write_text("id: DEV-1\nstatus: [\n")
    with pytest.raises(CommandError, match="task.yaml"):
        call_command("demo", no_serve=True, examples=str(tmp_path))
    assert not Task.objects.exists()


def test_repository_examples_load_in_the_demo(db, capsys):
    examples = ROOT / "examples" / "tasks"
    if not examples.is_dir():
        pytest.skip("examples/tasks is not in the repository yet")
    call_command("demo", no_serve=True)
    assert Task.objects.filter(status="ready").exists()


def test_demo_warns_when_listening_beyond_this_machine(db, tmp_path, capsys):
    call_command("demo", no_serve=True, host="0.0.0.0", examples=str(tmp_path / "none"))
    out = capsys.readouterr().out
    assert "known password" in out
    assert "http://127.0.0.1:8000/" in out


@pytest.mark.parametrize(
    "options, message",
    [
        ({"pods": " , "}, "names no pod"),
        ({"instances": 0}, "at least 1"),
        ({"speed": -1}, "negative"),
        ({"token": ["DevPod"]}, "POD=TOKEN"),
    ],
)
def test_simulate_pods_refuses_bad_options(db, options, message):
    with pytest.raises(CommandError, match=message):
        call_command("simulate_pods", **options)


def test_simulate_pods_says_when_no_server_answers(db):
    with pytest.raises(CommandError, match="No PodBoard answers"):
        call_command(
            "simulate_pods",
            url="http://127.0.0.1:8499",
            wait=0.3,
            token=["ProductPod=a", "DevPod=b", "QAPod=c"],
        )


def _request_unmigrated(tmp_path, path, method="get", **extra):
    """Make a request in a fresh process whose SQLite database has no tables."""
    script = (
        "import django, json; django.setup()\n"
        "from django.test import Client\n"
        # As the test runner does: the test client's host name is allowed for this run only.
        "from django.test.utils import setup_test_environment; setup_test_environment()\n"
        f"r = Client().{method}({path!r}, **{extra!r})\n"
        "print(json.dumps({'status': r.status_code, 'type': r['Content-Type'],"
        " 'body': r.content.decode()}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="podboard.settings",
        PODBOARD_SQLITE_PATH=str(tmp_path / "empty.sqlite3"),
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_signing_in_explains_an_unmigrated_database(tmp_path):
    answer = _request_unmigrated(
        tmp_path, "/login/", "post", data={"username": "demo", "password": "podboard-demo"}
    )
    assert answer["status"] == 503
    assert "manage.py migrate" in answer["body"]


def test_api_explains_an_unmigrated_database_in_json(tmp_path):
    answer = _request_unmigrated(tmp_path, "/api/tasks", HTTP_AUTHORIZATION="Bearer pb_x")
    assert answer["status"] == 503
    assert json.loads(answer["body"])["code"] == "unavailable"
    assert "migrate" in json.loads(answer["body"])["detail"]


@pytest.mark.slow
def test_demo_serves_simulates_and_stops_cleanly_on_ctrl_c(tmp_path):
    import signal
    import time

    import httpx

    port = 8420
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(PODBOARD_SQLITE_PATH=str(tmp_path / "demo.sqlite3"), PYTHONUNBUFFERED="1")
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        demo = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "demo",
                "--port",
                str(port),
                "--speed",
                "20",
                "--seed",
                "1",
                "--examples",
                str(tmp_path / "none"),
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            completed = False
            while time.monotonic() < deadline and not completed:
                time.sleep(0.5)
                completed = " completed " in log.read_text()
            assert completed, log.read_text()
            login = httpx.get(f"http://127.0.0.1:{port}/login/", timeout=5)
            assert login.status_code == 200
        finally:
            demo.send_signal(signal.SIGINT)
            code = demo.wait(timeout=30)
    text = log.read_text()
    assert code == 0, text
    assert "Simulator stopped" in text and text.rstrip().endswith("Stopped.")
    assert "Traceback" not in text
