"""Property-based run of every documented operation: no 5xx, and every response as documented.

schemathesis generates valid and invalid requests from /api/schema/ and calls the WSGI app in
process, with a token. Bounded and derandomized so it runs the same in CI, in seconds.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from messaging import services
from messaging.models import Notification

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 25


@pytest.fixture
def connection_kept_between_requests():
    """Django closes the connection as a request starts and ends, which would end the test's transaction.

    Its test client disconnects these receivers around each request; schemathesis calls the WSGI
    app directly, so the test does it.
    """
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def api_schema(db, connection_kept_between_requests, settings, alice, bob):
    # Exercise sending itself, not only its rate limit (429 is documented and tested elsewhere).
    settings.API_MESSAGE_CREATE_RATE = "100000/minute"
    message = services.send_message(sender=bob, receiver=alice, content="hello")
    Notification.objects.create(user=alice, message=message, title="New message from bob", content="hello")
    from config.wsgi import application

    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)


@pytest.fixture
def alice_token(alice) -> str:
    return services.issue_api_token(alice)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@hypothesis_settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    database=None,
    # The database fixture is shared by the examples of one run on purpose: rows accumulate.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_operation_answers_as_its_schema_says(case, alice_token):
    case.call_and_validate(headers={"Authorization": f"Token {alice_token}"}, checks=CHECKS)
