"""With every request beyond PodBoard refused, the API docs still render every operation, and
no page asks for a file PodBoard does not have (the favicon included)."""

import httpx
import pytest
from playwright.sync_api import expect

from .seeding import PASSWORD, USERNAME

pytestmark = pytest.mark.browser

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


def offline(page, base_url):
    """Abort every request that does not go to ``base_url``; return the list of aborted URLs."""
    blocked = []

    def route(request_route):
        url = request_route.request.url
        if url.startswith((base_url + "/", "data:", "blob:")):
            request_route.continue_()
        else:
            blocked.append(url)
            request_route.abort("internetdisconnected")

    page.route("**/*", route)
    return blocked


def test_api_docs_render_every_operation_with_the_network_blocked(page, live_server_url):
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    blocked = offline(page, live_server_url)
    document = httpx.get(live_server_url + "/api/openapi.json", timeout=10).json()
    operation_ids = sorted(
        operation["operationId"]
        for item in document["paths"].values()
        for method, operation in item.items()
        if method in HTTP_METHODS
    )

    page.goto(live_server_url + "/api/docs")

    expect(page.locator(".swagger-ui .info .title")).to_contain_text("PodBoard")
    blocks = page.locator(".swagger-ui .opblock")
    expect(blocks).to_have_count(len(operation_ids))
    expect(
        page.locator(".swagger-ui .opblock-summary-path", has_text="/api/tasks/next")
    ).to_be_visible()
    servers = page.locator(".swagger-ui .servers select option")
    expect(servers).to_have_text([document["servers"][0]["url"]])
    assert blocked == []
    assert errors == []


def test_pages_load_without_a_missing_file(page, live_server_url):
    """No 404 on the way: the board, a task page, the admin and the docs, favicon included."""
    missing = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    blocked = offline(page, live_server_url)
    page.goto(live_server_url + "/login/")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("#board-body")).to_be_visible()
    icon = page.evaluate("() => document.querySelector('link[rel=icon]').href")
    assert icon == live_server_url + "/static/favicon.svg"
    for path in ("/admin/", "/api/docs", "/metrics/"):
        page.goto(live_server_url + path)
        page.wait_for_load_state("load")
    favicon = httpx.get(live_server_url + "/favicon.ico", timeout=10, follow_redirects=True)
    assert favicon.status_code == 200
    assert favicon.headers["content-type"] == "image/svg+xml"
    assert missing == []
    assert blocked == []
