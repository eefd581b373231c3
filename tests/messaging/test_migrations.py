"""The migration that makes a message's notification unique keeps the one its own event built."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection

from messaging.models import Message
from outbox.models import OutboxEvent
from tests.helpers import migrate_to

BEFORE = [("messaging", "0007_guard_checks_the_created_event_names_the_message")]
AFTER = [("messaging", "0008_one_notification_per_message")]


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_the_notification_built_from_the_messages_own_event(alice, bob):
    message = Message.objects.create(sender=alice, receiver=bob, content="hi")
    own_event = OutboxEvent.objects.get(aggregate_id=str(message.pk), event_type="message.created").event_id
    # The forged one first: the oldest is not the one to keep.
    notifications = [("New message from security-team", uuid.uuid4()), ("New message from alice", own_event)]
    migrate_to(BEFORE)
    try:
        with connection.cursor() as cursor:
            for title, source in notifications:
                cursor.execute(
                    "INSERT INTO messaging_notification (notification_id, user_id, message_id, notification_type,"
                    " title, content, is_read, created_at, source_event_id)"
                    " VALUES (gen_random_uuid(), %s, %s, 'message', %s, '', false, clock_timestamp(), %s)",
                    [bob.pk, message.pk, title, source],
                )
    finally:
        migrate_to(AFTER)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT title FROM messaging_notification WHERE message_id = %s", [message.pk])
            assert cursor.fetchall() == [("New message from alice",)]
    finally:
        migrate_to()  # the later migrations too, for the tests that follow
