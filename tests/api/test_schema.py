"""The OpenAPI document and the page that shows it."""

from __future__ import annotations

import pytest
import yaml

pytestmark = pytest.mark.django_db

OPERATIONS = {
    ("/api/messages/", "get"),
    ("/api/messages/", "post"),
    ("/api/messages/{message_id}/", "get"),
    ("/api/messages/{message_id}/read/", "post"),
    ("/api/notifications/", "get"),
    ("/api/notifications/{notification_id}/read/", "post"),
    ("/api/notifications/read-all/", "post"),
    ("/api/notifications/unread-count/", "get"),
}


@pytest.fixture
def schema(anonymous) -> dict:
    response = anonymous.get("/api/schema/")
    assert response.status_code == 200
    return yaml.safe_load(response.content)


def test_the_schema_is_openapi_3_and_public(schema):
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "Messaging API"


def test_the_schema_describes_every_operation_and_only_those(schema):
    documented = {(path, method) for path, item in schema["paths"].items() for method in item}

    assert documented == OPERATIONS


def test_every_operation_requires_a_token_or_a_session(schema):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["tokenAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": 'Token-based authentication with required prefix "Token"',
    }
    for path, method in OPERATIONS:
        assert schema["paths"][path][method]["security"] == [{"tokenAuth": []}, {"cookieAuth": []}]
        assert "401" in schema["paths"][path][method]["responses"]


def test_the_schema_documents_the_limits_and_errors_of_sending(schema, settings):
    send = schema["paths"]["/api/messages/"]["post"]
    request = schema["components"]["schemas"]["MessageCreateRequest"]

    assert {"201", "400", "401", "429"} <= set(send["responses"])
    assert request["properties"]["content"]["maxLength"] == settings.MESSAGE_MAX_LENGTH
    assert set(request["required"]) == {"receiver", "content"}


def test_the_schema_is_also_served_as_json(anonymous):
    response = anonymous.get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.")


def test_the_docs_page_renders_the_schema(anonymous):
    response = anonymous.get("/api/docs/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"/api/schema/" in response.content


def test_the_docs_page_loads_swagger_ui_from_our_own_static_files(anonymous, settings):
    import re

    page = anonymous.get("/api/docs/").content.decode()

    sources = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', page)
    assert any("swagger-ui" in source for source in sources)
    assert all(not source.startswith(("http://", "https://", "//")) for source in sources), sources
