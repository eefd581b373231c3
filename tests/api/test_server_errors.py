"""What the web answers and logs when it fails: a request id, a 503 for the database, one log line."""

from __future__ import annotations

import logging

import pytest
from django.db import OperationalError
from django.test import RequestFactory
from rest_framework.test import APIClient

from config.web_errors import server_error
from messaging import selectors, services

pytestmark = pytest.mark.django_db

SECRET_CONTENT = "the-private-words-of-alice"


@pytest.fixture
def failing_as_alice(client_for, alice) -> APIClient:
    """Alice's client, getting the 500 response rather than the view's exception."""
    client = client_for(alice)
    client.raise_request_exception = False
    return client


def formatted(record: logging.LogRecord) -> str:
    return logging.Formatter("%(levelname)s %(name)s %(message)s").format(record)


def request_log(caplog) -> list[str]:
    return [formatted(record) for record in caplog.records if record.name == "django.request"]


def test_every_response_carries_a_request_id_and_a_well_formed_one_is_kept(as_alice):
    made = as_alice.get("/api/messages/")
    kept = as_alice.get("/api/messages/", HTTP_X_REQUEST_ID="proxy-7f3a.1")
    replaced = as_alice.get("/api/messages/", HTTP_X_REQUEST_ID="bad id\nforged=1")

    assert len(made["X-Request-ID"]) == 32
    assert kept["X-Request-ID"] == "proxy-7f3a.1"
    assert replaced["X-Request-ID"] not in ("bad id\nforged=1", made["X-Request-ID"])


def test_a_database_outage_in_a_view_is_a_json_503_with_retry_after(monkeypatch, failing_as_alice, caplog):
    def refused(*args, **kwargs):
        raise OperationalError("FATAL: sorry, too many clients already")

    monkeypatch.setattr(selectors, "messages_of", refused)

    response = failing_as_alice.get("/api/messages/", HTTP_X_REQUEST_ID="req-503")

    assert response.status_code == 503
    assert int(response["Retry-After"]) >= 1
    assert response.json() == {"detail": "The database is unavailable; try again later.", "request_id": "req-503"}
    assert request_log(caplog) == [
        "ERROR django.request http.error status=503 method=GET path=/api/messages/ request_id=req-503 "
        "error=OperationalError"
    ]


def test_a_database_outage_outside_a_view_is_a_503_too():
    request = RequestFactory().get("/admin/")
    try:
        raise OperationalError("connection refused")
    except OperationalError:
        response = server_error(request)

    assert response.status_code == 503
    assert "Retry-After" in response


def test_an_unexpected_error_is_a_json_500_logged_once_with_the_request_id_and_no_body(
    monkeypatch, failing_as_alice, carol, caplog
):
    def broken(**kwargs):
        raise RuntimeError(f"cannot send {kwargs['content']}")

    monkeypatch.setattr(services, "send_message", broken)

    response = failing_as_alice.post(
        "/api/messages/", {"receiver": "carol", "content": SECRET_CONTENT}, HTTP_X_REQUEST_ID="req-500"
    )

    assert response.status_code == 500
    assert response.json() == {"detail": "Server error.", "request_id": "req-500"}
    [line] = request_log(caplog)
    assert line.startswith(
        "ERROR django.request http.error status=500 method=POST path=/api/messages/ request_id=req-500 "
        "error=RuntimeError"
    )
    assert "Traceback" in line
    assert SECRET_CONTENT not in caplog.text
    assert SECRET_CONTENT not in line
