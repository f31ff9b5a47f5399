"""What every page carries besides its content: the favicon, gzip, and the API document's
``servers`` URL that follows the port the demo serves."""

import gzip

import pytest
from django.test import override_settings

from tasks_app.management.commands.demo import public_url

pytestmark = pytest.mark.django_db


@pytest.fixture
def client_lead(client, lead, make_task):
    make_task("DEV-1", title="Build the sign-in form")
    client.force_login(lead)
    return client


# Favicon -------------------------------------------------------------------------------------


def test_favicon_ico_redirects_to_the_svg_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"] == "/static/favicon.svg"


def test_the_svg_icon_is_served(client):
    response = client.get("/static/favicon.svg")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    body = b"".join(response.streaming_content)
    assert body.startswith(b'<svg xmlns="http://www.w3.org/2000/svg"')


ICON_LINK = b'<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">'


@pytest.mark.parametrize("path", ["/", "/tasks/DEV-1/", "/metrics/", "/import/"])
def test_every_page_links_the_icon(client, staff, make_task, path):
    make_task("DEV-1")
    client.force_login(staff)
    response = client.get(path)
    assert response.status_code == 200
    assert ICON_LINK in response.content


def test_the_login_page_links_the_icon(client):
    response = client.get("/login/")
    assert response.status_code == 200
    assert ICON_LINK in response.content


# Compression ---------------------------------------------------------------------------------


def test_the_board_is_sent_gzipped_to_a_client_that_accepts_it(client_lead):
    plain = client_lead.get("/")
    assert plain.status_code == 200
    assert not plain.has_header("Content-Encoding")
    response = client_lead.get("/", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in response["Vary"]
    html = gzip.decompress(response.content).decode()
    assert 'id="task-DEV-1"' in html
    assert "Build the sign-in form" in html
    assert len(response.content) < len(plain.content) / 2


def test_api_json_is_never_compressed(client, pod_tokens, make_task):
    make_task("DEV-2")
    response = client.get(
        "/api/tasks",
        headers={"Authorization": f"Bearer {pod_tokens['DevPod']}", "Accept-Encoding": "gzip"},
    )
    assert response.status_code == 200
    assert not response.has_header("Content-Encoding")
    assert response.json()["items"][0]["id"] == "DEV-2"


def test_zip_exports_are_not_compressed_twice(client, staff, make_task):
    make_task("DEV-3")
    client.force_login(staff)
    response = client.get("/export/", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert not response.has_header("Content-Encoding")
    assert response.content[:4] == b"PK\x03\x04"


# The API document's servers URL --------------------------------------------------------------


def test_the_documents_servers_url_follows_the_setting_when_it_changes(client):
    with override_settings(PODBOARD_PUBLIC_URL="http://127.0.0.1:9000"):
        document = client.get("/api/openapi.json").json()
    assert document["servers"] == [{"url": "http://127.0.0.1:9000"}]
    with override_settings(PODBOARD_PUBLIC_URL="https://board.example.com"):
        document = client.get("/api/openapi.json").json()
    assert document["servers"] == [{"url": "https://board.example.com"}]


def test_the_demo_announces_the_port_it_serves(monkeypatch):
    monkeypatch.delenv("PODBOARD_PUBLIC_URL", raising=False)
    assert public_url("http://127.0.0.1:9000") == "http://127.0.0.1:9000"


def test_an_operators_public_url_wins_over_the_demos_port(monkeypatch):
    monkeypatch.setenv("PODBOARD_PUBLIC_URL", "https://board.example.com/")
    assert public_url("http://127.0.0.1:9000") == "https://board.example.com"
