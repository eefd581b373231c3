"""No delivery can stop the consumer: forged bodies reach a running consumer through the real
broker; each is dead-lettered with its reason, and a valid event behind it is applied."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from django.db import connection

from messaging.consumers import NotificationsConsumer
from messaging.models import Message, Notification
from outbox.dead_letters import REASON_HEADER
from outbox.envelope import data_schema_url
from tests.helpers import get_messages, publish_confirmed, queue_depth, relay_pending_events, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

CONTENT = "private-content-7f3a"


def forged_event(**overrides) -> dict:
    document = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/x",
        "type": "message.created",
        "subject": "x",
        "time": "2026-01-01T00:00:00Z",
        "sequence": "1",
        # Ours, so that each case reaches the check it is about (a forger copies it from any event).
        "dataschema": data_schema_url("message.created", 1),
        "data": {},
    }
    document.update(overrides)
    return document


def created_data(message_id: str, content: str) -> dict:
    return {
        "message_id": message_id,
        "sender_id": 1,
        "sender_username": "mallory",
        "receiver_id": 2,
        "content": content,
        "sent_at": "2026-01-01T00:00:00Z",
        "is_read": False,
    }


def dead_letter_reasons(broker_channel, topology, expected: int) -> list[str]:
    queue = topology.dead_letter_queue_for("notifications")
    wait_until(lambda: queue_depth(broker_channel, queue) >= expected, what=f"{expected} dead letters")
    return [message.headers[REASON_HEADER] for message in get_messages(broker_channel, queue, expected=expected)]


def assert_a_valid_event_behind_is_applied(alice, bob) -> None:
    message = Message.objects.create(sender=alice, receiver=bob, content="behind the poison")
    relay_pending_events()
    wait_until(
        lambda: Notification.objects.filter(message=message).exists(), timeout=10, what="the valid event applied"
    )


def assert_no_crash_loop(consumer, caplog) -> None:
    assert consumer._outages.consecutive_failures == 0
    lines = [record.getMessage() for record in caplog.records]
    assert not [line for line in lines if "unexpected_error" in line or ".outage " in line]


POISON = {
    # "²".isdigit() is true and int("²") raises.
    "unicode-digit-sequence": (json.dumps(forged_event(sequence="²")).encode(), "must be a string of digits"),
    "nested-2000-deep": (("[" * 2000 + "]" * 2000).encode(), "body is not JSON (RecursionError)"),
    "nested-2000-deep-in-data": (
        json.dumps(forged_event()).replace('"data": {}', '"data": ' + "[" * 2000 + "]" * 2000).encode(),
        "body is not JSON (RecursionError)",
    ),
    "ten-megabytes": (b'{"data": "' + b"x" * (10 * 1024 * 1024) + b'"}', "over the 1048576-byte limit"),
    "json-but-not-an-object": (b'["specversion", "1.0"]', "body is not a JSON object"),
    "sequence-of-the-wrong-type": (json.dumps(forged_event(sequence=7)).encode(), "must be a string of digits"),
    "event-type-of-the-wrong-type": (json.dumps(forged_event(type=["x"])).encode(), "attribute 'type'"),
    "header-like-unknown-type": (json.dumps(forged_event(type=CONTENT + " \n")).encode(), "unknown event type"),
}


@pytest.mark.parametrize(("body", "reason"), POISON.values(), ids=POISON.keys())
def test_a_forged_delivery_is_dead_lettered_with_its_reason_and_the_next_event_applied(
    alice, bob, topology, broker_channel, running_consumer, caplog, body, reason
):
    publish_confirmed(topology, body)

    [dead] = dead_letter_reasons(broker_channel, topology, 1)
    assert reason in dead
    assert_a_valid_event_behind_is_applied(alice, bob)
    assert_no_crash_loop(running_consumer, caplog)
    assert not [record for record in caplog.records if CONTENT in record.getMessage()]


@pytest.mark.parametrize(
    "text", [f"{CONTENT}\u0000", f"{CONTENT}\ud800", f"\udfff{CONTENT}"], ids=["nul", "lone-high", "lone-low"]
)
def test_data_the_database_cannot_store_never_reaches_a_notification_or_a_log_line(
    alice, bob, topology, broker_channel, running_consumer, caplog, text
):
    # The people match our rows, so the event is applied: the notification is built from the
    # message row, and the event's text (which PostgreSQL would refuse) is never written.
    message = Message.objects.create(sender=alice, receiver=bob, content="real")
    Notification.objects.all().delete()
    data = {**created_data(str(message.message_id), text), "sender_id": alice.pk, "receiver_id": bob.pk}
    publish_confirmed(topology, json.dumps(forged_event(id=str(uuid.uuid4()), data=data)).encode())

    notification = wait_until(lambda: Notification.objects.filter(message=message).first(), what="the notification")
    assert notification.content == "real"
    assert_a_valid_event_behind_is_applied(alice, bob)
    assert_no_crash_loop(running_consumer, caplog)
    for record in caplog.records:
        assert CONTENT not in record.getMessage()
        assert CONTENT not in (record.exc_text or "")


class JsonColumnConsumer(NotificationsConsumer):
    """Hands each event's data to PostgreSQL as jsonb, as a consumer storing it in a JSON column does."""

    def apply_batch(self, events) -> None:
        with connection.cursor() as cursor:
            for event in events:
                cursor.execute("SELECT %s::jsonb", [json.dumps(event.data)])


def test_a_database_error_on_an_events_values_logs_its_type_and_event_id_only(topology, broker_channel, caplog):
    caplog.set_level(logging.DEBUG)
    event_id = str(uuid.uuid4())
    publish_confirmed(
        topology,
        json.dumps(forged_event(id=event_id, data=created_data(str(uuid.uuid4()), f"{CONTENT}\u0000"))).encode(),
    )
    consumer = JsonColumnConsumer()
    [delivery] = get_messages(broker_channel, topology.queue_for("notifications"), expected=1)

    consumer.settle([delivery])

    [dead] = dead_letter_reasons(broker_channel, topology, 1)
    assert dead == "the database refused the event's values: DataError"
    [failure] = [record for record in caplog.records if "consumer.handler_failed" in record.getMessage()]
    assert f"event={event_id}" in failure.getMessage()
    assert "error=DataError" in failure.getMessage()
    assert failure.exc_info is None
    for record in caplog.records:
        assert CONTENT not in record.getMessage()
        assert "JSON data" not in record.getMessage()
    consumer.disconnect()
