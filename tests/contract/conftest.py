"""Fixtures of the contract tests: the committed AsyncAPI document, a queue that sees every event."""

from __future__ import annotations

import uuid

import pytest
import yaml
from kombu import Queue

from messaging.contract import COMMITTED_DOCUMENT


@pytest.fixture(autouse=True)
def published_urls(settings):
    """The schema URL and source the committed document was generated with (the defaults)."""
    settings.EVENT_SCHEMA_BASE_URL = "http://127.0.0.1:8000/api/events/schemas"
    settings.OUTBOX_EVENT_SOURCE = "/messaging-service"


@pytest.fixture
def committed_document() -> dict:
    return yaml.safe_load(COMMITTED_DOCUMENT.read_text())


@pytest.fixture
def every_event_queue(topology, broker_channel):
    """A queue of this test's own, bound to the events exchange with `#`, deleted afterwards."""
    queue = Queue(
        f"{topology.events.name}.capture-{uuid.uuid4().hex[:8]}",
        exchange=topology.events,
        routing_key="#",
        durable=False,
        auto_delete=False,
    )
    queue(broker_channel).declare()
    yield queue
    queue(broker_channel).delete()
