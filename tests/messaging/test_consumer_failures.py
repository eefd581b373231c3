"""Consumer failures: dead letters carry their reason, failing handlers are retried then parked."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
from django.db import OperationalError
from kombu import Producer

from messaging.consumers import NotificationsConsumer
from messaging.models import Message, Notification
from outbox.dead_letters import CONSUMER_HEADER, ORIGINAL_ROUTING_KEY_HEADER, REASON_HEADER
from outbox.worker import BrokerUnavailable
from tests.helpers import get_messages, queue_depth, relay_pending_events, wait_until
from tooling.faults.tcp_proxy import TcpProxy


class FlakyConsumer(NotificationsConsumer):
    """The notifications consumer whose first `failures` batches fail."""

    def __init__(self, failures: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.failures = failures

    def apply_batch(self, events) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("transient trouble")
        super().apply_batch(events)


@pytest.fixture
def quick_retries(settings):
    settings.CONSUMER_MAX_DELIVERIES = 3
    settings.CONSUMER_RETRY_MAX_DELAY_SECONDS = 0.01
    return settings


@pytest.mark.django_db
def test_a_dead_lettered_delivery_carries_the_reason_in_a_header(topology, broker_channel):
    Producer(broker_channel).publish(
        b'{"specversion": "1.0"}',
        exchange=topology.events,
        routing_key="message.created",
        content_type="application/json",
    )
    consumer = NotificationsConsumer()
    [delivery] = get_messages(broker_channel, topology.queue_for("notifications"), expected=1)

    consumer.settle([delivery])

    [dead] = get_messages(broker_channel, topology.dead_letter_queue_for("notifications"), expected=1)
    assert dead.headers[REASON_HEADER] == "malformed envelope: attribute 'id' is missing or not a non-empty string"
    assert dead.headers[CONSUMER_HEADER] == "notifications"
    assert dead.headers[ORIGINAL_ROUTING_KEY_HEADER] == "message.created"
    assert dead.body == b'{"specversion": "1.0"}'
    consumer._dead_letters.close()


@pytest.mark.django_db
def test_a_handler_that_keeps_failing_is_retried_then_dead_lettered(
    alice, bob, topology, broker_channel, quick_retries
):
    Message.objects.create(sender=alice, receiver=bob, content="hi")
    relay_pending_events()
    consumer = FlakyConsumer(failures=99)
    queue = topology.queue_for("notifications")

    for _ in range(3):
        [delivery] = get_messages(broker_channel, queue, expected=1)
        consumer.settle([delivery])

    [dead] = get_messages(broker_channel, topology.dead_letter_queue_for("notifications"), expected=1)
    assert dead.headers[REASON_HEADER] == "handler failed on 3 deliveries: RuntimeError"
    assert wait_until(lambda: queue_depth(broker_channel, queue) == 0, what="the queue to be empty")
    assert Notification.objects.count() == 0
    consumer._dead_letters.close()


@pytest.mark.django_db
def test_a_transient_handler_failure_is_retried_and_applied_once(alice, bob, topology, broker_channel, quick_retries):
    Message.objects.create(sender=alice, receiver=bob, content="hi")
    relay_pending_events()
    consumer = FlakyConsumer(failures=1)
    queue = topology.queue_for("notifications")

    for _ in range(2):
        [delivery] = get_messages(broker_channel, queue, expected=1)
        consumer.settle([delivery])

    assert Notification.objects.count() == 1
    assert queue_depth(broker_channel, topology.dead_letter_queue_for("notifications")) == 0


class DatabaseDownConsumer(NotificationsConsumer):
    """The notifications consumer whose database refuses every batch, as one that is down does."""

    def apply_batch(self, events) -> None:
        raise OperationalError("the server closed the connection unexpectedly")


@pytest.mark.django_db(transaction=True)
def test_a_broker_lost_while_waiting_out_a_database_outage_is_a_broker_outage_not_the_events_fault(
    alice, bob, topology, broker_channel, caplog
):
    broker = urlsplit(django_settings.BROKER_URL)
    proxy = TcpProxy(broker.port or 5672, broker.hostname or "127.0.0.1").start()
    Message.objects.create(sender=alice, receiver=bob, content="hi")
    relay_pending_events()
    consumer = DatabaseDownConsumer(url=proxy.url_for(django_settings.BROKER_URL), max_backoff=0.2)
    try:
        batch = wait_until(consumer.receive_batch, what="the delivery through the proxy")
        proxy.cut()
        caplog.set_level(logging.INFO, logger="outbox.consuming")

        with pytest.raises(BrokerUnavailable):
            consumer.settle(batch)
    finally:
        consumer.disconnect()
        proxy.cut()

    assert not [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    queue = topology.queue_for("notifications")
    assert wait_until(lambda: queue_depth(broker_channel, queue) == 1, what="the delivery back in its queue")
    assert queue_depth(broker_channel, topology.dead_letter_queue_for("notifications")) == 0
