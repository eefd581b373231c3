"""Relay metrics against the real PostgreSQL and RabbitMQ: counted once per committed batch."""

from __future__ import annotations

import pytest

from messaging.models import Message
from relay.relay import Relay
from tests.scraping import value

pytestmark = pytest.mark.django_db

COUNTERS = (
    "outbox_events_published_total",
    "outbox_publish_failures_total",
    "outbox_events_dead_total",
    "relay_batch_size_events_count",
    "relay_batch_size_events_sum",
    "relay_publish_confirm_seconds_count",
)


def snapshot() -> dict[str, float]:
    return {name: value(name) for name in COUNTERS}


def deltas(before: dict[str, float]) -> dict[str, float]:
    return {name: value(name) - before[name] for name in COUNTERS}


def send(sender, receiver, count: int, content: str = "hello") -> None:
    for _ in range(count):
        Message.objects.create(sender=sender, receiver=receiver, content=content)


def relay_batches(relay: Relay, count: int) -> None:
    try:
        for _ in range(count):
            relay.relay_batch()
    finally:
        relay.publisher.close()


def test_a_published_batch_counts_its_events_its_size_and_its_confirm_latency(alice, bob, topology):
    send(alice, bob, 5)
    before = snapshot()
    bucket_before = value("relay_batch_size_events_bucket", le="5.0")

    relay_batches(Relay(batch_size=3), 2)

    assert deltas(before) == {
        "outbox_events_published_total": 5,
        "outbox_publish_failures_total": 0,
        "outbox_events_dead_total": 0,
        "relay_batch_size_events_count": 2,
        "relay_batch_size_events_sum": 5,
        "relay_publish_confirm_seconds_count": 2,
    }
    # Both batches (3 and 2 events) fall in the bucket of at most 5.
    assert value("relay_batch_size_events_bucket", le="5.0") - bucket_before == 2
    assert value("relay_publish_confirm_seconds_sum") > 0


def test_an_empty_claim_observes_nothing(topology):
    before = snapshot()

    relay_batches(Relay(), 1)

    assert set(deltas(before).values()) == {0}


def test_failed_attempts_and_dead_events_are_counted(alice, bob, topology, settings):
    settings.OUTBOX_MAX_EVENT_BYTES = 2048
    settings.OUTBOX_MAX_ATTEMPTS = 1
    send(alice, bob, 2, content="x" * 5000)
    send(alice, bob, 1)
    before = snapshot()

    relay_batches(Relay(), 1)

    changed = deltas(before)
    assert changed["outbox_events_published_total"] == 1
    assert changed["outbox_publish_failures_total"] == 2
    assert changed["outbox_events_dead_total"] == 2


def test_a_failed_attempt_with_attempts_left_is_not_dead(alice, bob, topology, settings):
    settings.OUTBOX_MAX_EVENT_BYTES = 2048
    send(alice, bob, 1, content="x" * 5000)
    before = snapshot()

    relay_batches(Relay(), 1)

    changed = deltas(before)
    assert (changed["outbox_publish_failures_total"], changed["outbox_events_dead_total"]) == (1, 0)
