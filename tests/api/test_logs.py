"""Message content never reaches the logs, whatever the API is asked and at any log level."""

from __future__ import annotations

import logging

import pytest

pytestmark = pytest.mark.django_db

SECRET = "the-launch-code-is-0000"


def test_no_message_content_reaches_the_logs_even_at_debug_with_debug_on(caplog, settings, as_alice, as_bob, bob):
    # DEBUG on makes Django log every SQL statement with its parameters, content included.
    settings.DEBUG = True
    caplog.set_level(logging.DEBUG)

    sent = as_alice.post("/api/messages/", {"receiver": "bob", "content": SECRET})
    message_url = f"/api/messages/{sent.json()['id']}/"
    as_bob.get("/api/messages/")
    as_bob.get(message_url)
    as_bob.post(f"{message_url}read/")
    as_alice.post(f"{message_url}read/")  # 403
    as_alice.post("/api/messages/", {"receiver": "nobody", "content": SECRET, "x": SECRET})  # 400
    as_alice.post("/api/messages/", {"receiver": "bob", "content": SECRET * 1000})  # 400, too long

    assert sent.status_code == 201
    assert "message.sent" in caplog.text
    assert SECRET not in caplog.text


def test_a_client_error_leaves_no_line_of_djangos_request_logger(caplog, anonymous, as_alice):
    # The access line (runserver's or gunicorn's) already carries the path and status.
    caplog.set_level(logging.INFO)

    responses = [
        anonymous.get("/api/messages/"),  # 401
        as_alice.get("/api/no-such-endpoint/"),  # 404
        as_alice.post("/api/messages/", {"receiver": "nobody", "content": "hi"}),  # 400
    ]

    assert [response.status_code for response in responses] == [401, 404, 400]
    assert [record for record in caplog.records if record.name == "django.request"] == []


def test_runservers_access_line_passes_the_request_filter_as_it_is():
    import logging
    import socket

    from config.request_log import RequestLogFilter

    with socket.socket() as raw_socket:
        # What django.server logs: the client's socket as `request`, the status as `status_code`.
        record = logging.LogRecord(
            "django.server", logging.WARNING, __file__, 1, '"%s" %s %s', ("GET /x/ HTTP/1.1", "404", "10"), None
        )
        record.request, record.status_code = raw_socket, 404

        assert RequestLogFilter().filter(record)
    assert record.getMessage() == '"GET /x/ HTTP/1.1" 404 10'
