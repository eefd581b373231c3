"""Fixtures of the messaging tests."""

from __future__ import annotations

import logging

import pytest

from messaging.consumers import NotificationsConsumer
from tests.helpers import run_in_thread


@pytest.fixture
def running_consumer(topology, caplog):
    """A notifications consumer running in a thread on this test's queues, stopped afterwards."""
    caplog.set_level(logging.DEBUG)
    consumer = NotificationsConsumer(max_backoff=0.2)
    runner = run_in_thread(consumer)
    yield consumer
    consumer.stop()
    runner.join(15)
    assert not runner.is_alive()
