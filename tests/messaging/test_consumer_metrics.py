"""Consumer metrics on real deliveries: applied, duplicates, dead letters, end-to-end latency."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from kombu import Producer

from messaging.consumers import NotificationsConsumer
from messaging.models import Message
from tests.helpers import append_read_events, get_messages, relay_pending_events
from tests.scraping import value

pytestmark = pytest.mark.django_db

CONSUMER = "notifications"


def processed() -> float:
    return value("outbox_consumer_events_processed_total", consumer=CONSUMER)


def duplicates() -> float:
    return value("outbox_consumer_duplicates_total", consumer=CONSUMER)


def dead_lettered() -> float:
    return value("outbox_consumer_dead_lettered_total", consumer=CONSUMER)


def latency(sample: str, **labels: str) -> float:
    return value(f"outbox_end_to_end_latency_seconds_{sample}", consumer=CONSUMER, **labels)


def deliveries(channel, topology, count: int) -> list:
    relay_pending_events()
    return get_messages(channel, topology.queue_for(CONSUMER), expected=count)


def test_a_batch_counts_new_events_and_absorbed_duplicates_after_commit(
    alice, bob, topology, broker_channel, django_capture_on_commit_callbacks
):
    for text in ("one", "two", "three"):
        Message.objects.create(sender=alice, receiver=bob, content=text)
    batch = deliveries(broker_channel, topology, 3)
    consumer = NotificationsConsumer()
    consumer.apply_events([consumer.check_delivery(batch[0].body)])  # the first one was applied before
    before = (processed(), duplicates(), latency("count"))

    with django_capture_on_commit_callbacks(execute=True):
        consumer.settle(batch)

    assert (processed() - before[0], duplicates() - before[1], latency("count") - before[2]) == (2, 1, 2)


def test_nothing_is_counted_before_the_transaction_commits(alice, bob, topology, broker_channel):
    Message.objects.create(sender=alice, receiver=bob, content="hi")
    [delivery] = deliveries(broker_channel, topology, 1)
    before = processed()

    # Inside the test's transaction: the consumer's own block is not the commit.
    NotificationsConsumer().handle_delivery(delivery.body)

    assert processed() == before


def test_end_to_end_latency_runs_from_the_event_time_to_the_commit(
    topology, broker_channel, django_capture_on_commit_callbacks
):
    occurred = timezone.now() - timedelta(minutes=2)
    append_read_events(1, occurred_at=occurred)
    [delivery] = deliveries(broker_channel, topology, 1)
    within_a_minute, within_five = latency("bucket", le="60.0"), latency("bucket", le="300.0")
    total = latency("sum")

    with django_capture_on_commit_callbacks(execute=True):
        NotificationsConsumer().handle_delivery(delivery.body)

    assert latency("bucket", le="60.0") == within_a_minute
    assert latency("bucket", le="300.0") - within_five == 1
    assert 120 <= latency("sum") - total <= (timezone.now() - occurred).total_seconds()


def test_a_dead_lettered_delivery_is_counted(topology, broker_channel):
    Producer(broker_channel).publish(
        b"not json", exchange=topology.events, routing_key="message.created", content_type="application/json"
    )
    [delivery] = get_messages(broker_channel, topology.queue_for(CONSUMER), expected=1)
    consumer = NotificationsConsumer()
    before = (dead_lettered(), processed())

    consumer.settle([delivery])

    assert (dead_lettered() - before[0], processed() - before[1]) == (1, 0)
    get_messages(broker_channel, topology.dead_letter_queue_for(CONSUMER), expected=1)
    consumer._dead_letters.close()
