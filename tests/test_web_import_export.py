"""Import and export from the web: staff only, dry-run preview, then confirm."""

import io
import zipfile

import pytest
from django.urls import reverse

from tasks_app.models import Task

pytestmark = pytest.mark.django_db


def make_zip(files):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    buffer.seek(0)
    buffer.name = "tasks.zip"
    return buffer


GOOD = {
    "tasks/DEV-900/task.yaml": "id: DEV-900\ntitle: Imported from the web\npod_owner: WebPod\n",
    "tasks/DEV-900/prompt.txt": "Do the thing.\n",
}


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def test_import_and_export_are_staff_only(client, lead, pods):
    for url in [reverse("import"), reverse("export")]:
        assert client.get(url).status_code == 302  # anonymous → login
    client.force_login(lead)
    assert client.get(reverse("import")).status_code == 403
    assert client.get(reverse("export")).status_code == 403
    response = client.post(reverse("import"), {"step": "preview", "archive": make_zip(GOOD)})
    assert response.status_code == 403
    assert not Task.objects.filter(pk="DEV-900").exists()


def test_preview_writes_nothing_then_confirm_imports(staff_client, pods):
    response = staff_client.post(reverse("import"), {"step": "preview", "archive": make_zip(GOOD)})
    html = response.content.decode()
    assert response.status_code == 200
    assert "dry run" in html and "<code>DEV-900</code>" in html and "<code>WebPod</code>" in html
    assert not Task.objects.filter(pk="DEV-900").exists()

    response = staff_client.post(reverse("import"), {"step": "confirm"}, follow=True)
    assert "Imported: 1 created" in response.content.decode()
    task = Task.objects.get(pk="DEV-900")
    assert task.pod_owner.name == "WebPod" and task.prompt == "Do the thing.\n"


def test_confirm_without_a_preview_asks_for_the_file_again(staff_client, pods):
    response = staff_client.post(reverse("import"), {"step": "confirm"}, follow=True)
    assert "choose the file again" in response.content.decode()


def test_bad_archive_lists_its_problems_and_writes_nothing(staff_client, pods):
    bad = make_zip(
        {
            "tasks/DEV-1/task.yaml": "id: DEV-1\ntitle: x\npod_owner: DevPod\nstatus: sideways\n",
            "tasks/DEV-2/task.yaml": "id: DEV-2\ntitle: y\npod_owner: DevPod\ndepends_on: [GONE]\n",
        }
    )
    response = staff_client.post(reverse("import"), {"step": "preview", "archive": bad})
    html = response.content.decode()
    assert response.status_code == 422
    assert "nothing was written" in html
    assert "tasks/DEV-1/task.yaml" in html and "tasks/DEV-2/task.yaml" in html
    assert not Task.objects.exists()


def test_not_a_zip_is_refused(staff_client, pods):
    junk = io.BytesIO(b"not a zip at all")
    junk.name = "junk.zip"
    response = staff_client.post(reverse("import"), {"step": "preview", "archive": junk})
    assert response.status_code == 422 and "not a zip" in response.content.decode()


def test_export_downloads_a_zip_of_the_tasks(staff_client, make_task):
    make_task("DEV-1", title="Exported")
    response = staff_client.get(reverse("export"))
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert "attachment" in response["Content-Disposition"]
    names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    assert any(name.endswith("tasks/DEV-1/task.yaml") for name in names)
