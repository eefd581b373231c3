"""Poison under real processes: an event that can never be published, malformed messages on the
queue. Each is parked or dead-lettered with its reason, and everything else flows."""

from __future__ import annotations

import json
import uuid

import pytest
from kombu import Producer

from messaging.models import Message, Notification
from outbox.broker import broker_connection
from outbox.dead_letters import REASON_HEADER
from outbox.envelope import data_schema_url
from outbox.models import OutboxEvent
from tests.helpers import get_messages, queue_depth, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]


def cloudevent(**overrides) -> bytes:
    message_id = str(uuid.uuid4())
    document = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/elsewhere",
        "type": "message.read",
        "subject": message_id,
        "time": "2026-01-01T00:00:00Z",
        "datacontenttype": "application/json",
        "data": {"message_id": message_id, "receiver_id": 1, "read_at": "2026-01-01T00:00:00Z"},
    }
    document.update(overrides)
    # The schema it names follows its type and version unless the test names another (or none).
    document.setdefault("dataschema", data_schema_url(document["type"], document.get("schemaversion", 1)))
    document = {key: value for key, value in document.items() if value is not None}
    return json.dumps(document).encode()


MALFORMED = {
    "not-json": (b"\x00\x01 definitely not json", "message.created", "malformed envelope: body is not JSON"),
    "missing-field": (
        cloudevent(data={"message_id": str(uuid.uuid4()), "read_at": "2026-01-01T00:00:00Z"}),
        "message.read",
        "message.read v1 data at (root) fails 'required'",
    ),
    "unknown-type": (cloudevent(type="message.deleted"), "message.deleted", "unknown event type 'message.deleted'"),
    "wrong-version": (cloudevent(schemaversion=7), "message.read", "v7 is newer than the versions this consumer"),
}


def test_poison_is_parked_or_dead_lettered_and_the_rest_flows(alice, bob, spawn_worker, topology, broker_channel):
    workers_env = {"OUTBOX_MAX_EVENT_BYTES": "4096", "OUTBOX_MAX_ATTEMPTS": "2", "OUTBOX_RETRY_BASE_SECONDS": "0.05"}
    spawn_worker("relay", env=workers_env)
    spawn_worker("consume_notifications", env=workers_env)
    unpublishable = Message.objects.create(sender=alice, receiver=bob, content="x" * 10_000)
    # Confirmed: publishes still in flight when a connection closes may never reach the queue.
    with broker_connection(transport_options={"confirm_publish": True}) as conn:
        producer = Producer(conn.channel())
        for body, routing_key, _ in MALFORMED.values():
            producer.publish(body, exchange=topology.events, routing_key=routing_key, content_type="application/json")
    healthy = [Message.objects.create(sender=alice, receiver=bob, content=f"fine {i}") for i in range(20)]

    wait_until(lambda: Notification.objects.count() == len(healthy), timeout=30, what="the healthy notifications")
    dead_event = wait_until(
        lambda: OutboxEvent.objects.filter(aggregate_id=str(unpublishable.pk), dead_at__isnull=False).first(),
        timeout=30,
        what="the unpublishable event parked dead",
    )
    assert dead_event.attempts == 2
    assert "over the 4096-byte limit" in dead_event.last_error
    assert set(Notification.objects.values_list("message_id", flat=True)) == {m.pk for m in healthy}

    dead_letter_queue = topology.dead_letter_queue_for("notifications")
    wait_until(lambda: queue_depth(broker_channel, dead_letter_queue) == len(MALFORMED), what="the dead letters")
    reasons = [
        m.headers[REASON_HEADER] for m in get_messages(broker_channel, dead_letter_queue, expected=len(MALFORMED))
    ]
    for _, _, reason in MALFORMED.values():
        assert any(reason in seen for seen in reasons), (reason, reasons)
    assert queue_depth(broker_channel, topology.queue_for("notifications")) == 0
