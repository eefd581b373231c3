"""The consumer's statements look each event's message up by key, whatever the statistics say."""

from __future__ import annotations

import json
import uuid

import pytest
from django.db import connection

from messaging import services
from messaging.models import Message, Notification
from tests.helpers import plan_nodes, plan_of

MESSAGES = Message._meta.db_table


@pytest.fixture
def a_message_left_in_a_bloated_table(transactional_db, alice, bob):
    """Messages deleted and vacuumed, one left: to the planner, reading the whole table once is
    cheaper than a probe by key per event. It is here; it is not when the few rows left are spread
    over thousands of pages and the index is as large, which it then reads for each batch."""
    messages = Message.objects.bulk_create([Message(sender=alice, receiver=bob, content="hello") for _ in range(5000)])
    Message.objects.exclude(pk=messages[-1].pk).delete()
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM (ANALYZE) {MESSAGES}")
    return messages[-1]


def one_event(message: Message, **extra) -> str:
    return json.dumps(
        [
            {
                "event_id": str(uuid.uuid4()),
                "message_id": str(message.pk),
                "sender_id": str(message.sender_id),
                "receiver_id": str(message.receiver_id),
                "position": 0,
                **extra,
            }
        ]
    )


def assert_probed_by_key(plan: dict) -> None:
    """Each event looks its message up by key: no scan of the messages without the event's id."""
    scans = [node for node in plan_nodes(plan) if node.get("Relation Name") == MESSAGES]
    assert scans
    for scan in scans:
        condition = scan.get("Index Cond") or scan.get("Recheck Cond") or ""
        assert "message_id = d.message_id" in condition, (scan["Node Type"], condition)


def test_creating_a_notification_probes_its_message_by_key(a_message_left_in_a_bloated_table):
    message = a_message_left_in_a_bloated_table
    parameters = {
        "batch": one_event(message),
        "type": Notification.NotificationType.MESSAGE.value,
        "title": services.NEW_MESSAGE_TITLE,
        "limit": 100,
    }

    assert_probed_by_key(plan_of(services._create_notifications_sql(), parameters))


def test_a_long_texts_notification_probes_its_message_by_key(a_message_left_in_a_bloated_table):
    message = a_message_left_in_a_bloated_table
    batch = one_event(message, title="New message from alice", content="hello")

    assert_probed_by_key(plan_of(services._CREATE_LONG_NOTIFICATIONS_SQL, ["message", batch]))


def test_marking_a_notification_read_probes_its_message_by_key(a_message_left_in_a_bloated_table):
    message = a_message_left_in_a_bloated_table

    assert_probed_by_key(plan_of(services._MARK_READ_SQL, [one_event(message)]))


def test_the_notification_is_still_built_from_the_message_row(a_message_left_in_a_bloated_table, alice):
    message = a_message_left_in_a_bloated_table

    (created,) = services.create_message_notifications(
        [(uuid.uuid4(), {"message_id": str(message.pk), "sender_id": alice.pk, "receiver_id": message.receiver_id})]
    )

    assert created["title"] == services.NEW_MESSAGE_TITLE + alice.username
    assert created["content"] == "hello"
    assert created["user_id"] == message.receiver_id
