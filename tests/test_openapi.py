"""The OpenAPI document imports as a GPT Action, and a schema-driven fuzz run finds no 5xx."""

import pytest
import schemathesis
from django.conf import settings
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from openapi_spec_validator import validate
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tasks_app.api import api
from tasks_app.models import PodToken

pytestmark = pytest.mark.django_db

wsgi = get_wsgi_application()
schema = schemathesis.openapi.from_wsgi("/api/openapi.json", wsgi)


@pytest.fixture
def document(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_the_document_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_operation_has_an_operation_id_and_a_short_description(document):
    ids = []
    for path, method, operation in operations(document):
        assert operation.get("operationId"), (method, path)
        assert 0 < len(operation.get("description", "")) <= 300, (method, path)
        assert operation.get("summary"), (method, path)
        assert isinstance(operation.get("x-openai-isConsequential"), bool), (method, path)
        ids.append(operation["operationId"])
    assert len(ids) == len(set(ids))
    assert {"nextTask", "startTask", "activateTask", "completeTask", "autoHandoffTask"} <= set(ids)
    assert {"scaleOutTask", "traceTask", "listTasks", "getTask", "createTask", "listPods"} <= set(
        ids
    )


def test_bearer_auth_is_the_one_declared_scheme_and_guards_every_operation(document):
    schemes = document["components"]["securitySchemes"]
    assert list(schemes.values()) == [{"type": "http", "scheme": "bearer"}]
    [name] = schemes
    for path, method, operation in operations(document):
        assert operation["security"] == [{name: []}], (method, path)


def test_servers_carry_the_public_url(document):
    assert document["servers"] == [{"url": settings.PODBOARD_PUBLIC_URL}]


def test_the_interactive_docs_are_served(client):
    response = client.get("/api/docs")
    assert response.status_code == 200
    assert b"openapi.json" in response.content


def test_the_benchmark_floor_route_is_not_in_the_document(document):
    assert not any("_floor" in path for path in document["paths"])


def test_the_document_is_generated_from_the_api_object(document):
    assert document["paths"].keys() == api.get_openapi_schema()["paths"].keys()


# Fuzzing -------------------------------------------------------------------------------------


@pytest.fixture
def fuzz_token(make_task):
    """A DevPod token, and a few tasks for generated ids to land on.

    The WSGI app runs inside the test's transaction, so, as Django's test client does, keep
    the request signals from closing the connection under it.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield _fuzz_data(make_task)
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _fuzz_data(make_task):
    make_task("PROD-1", pod="ProductPod", status="done")
    make_task("DEV-1", depends_on=["PROD-1"], handoff_from_id="PROD-1")
    make_task("0", priority=1)
    make_task("QA-1", pod="QAPod", depends_on=["DEV-1"])
    return PodToken.issue(pod=_devpod())[1]


def _devpod():
    from tasks_app.models import Pod

    return Pod.objects.get(name="DevPod")


@pytest.mark.slow
@schema.parametrize()
@hypothesis_settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_fuzzing_the_api_finds_no_server_error(case, fuzz_token):
    case.call_and_validate(
        headers={"Authorization": f"Bearer {fuzz_token}"},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
