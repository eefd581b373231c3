"""The seed's model behaviour: fields, defaults, readable strings, ordering, constraints."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from messaging.models import Message, Notification
from messaging.services import notification_preview

pytestmark = pytest.mark.django_db


def test_a_new_message_has_a_uuid_key_a_timestamp_and_starts_unread(alice, bob):
    before = timezone.now()

    message = Message.objects.create(sender=alice, receiver=bob, content="hi")

    assert isinstance(message.pk, uuid.UUID)
    assert message.is_read is False
    assert before <= message.timestamp <= timezone.now()
    assert list(alice.sent_messages.all()) == [message]
    assert list(bob.received_messages.all()) == [message]


def test_message_keys_are_time_ordered_so_new_rows_share_the_index_end(alice, bob):
    messages = [Message.objects.create(sender=alice, receiver=bob, content="hi") for _ in range(20)]

    assert {message.pk.version for message in messages} == {7}
    assert [message.pk for message in messages] == sorted(message.pk for message in messages)


def test_message_str_names_both_users_and_never_the_content(alice, bob):
    message = Message.objects.create(sender=alice, receiver=bob, content="the secret plan")

    text = str(message)

    assert "alice" in text
    assert "bob" in text
    assert "secret plan" not in text


def test_messages_are_ordered_newest_first(alice, bob):
    now = timezone.now()
    old = Message.objects.create(sender=alice, receiver=bob, content="old", timestamp=now - timedelta(hours=1))
    new = Message.objects.create(sender=alice, receiver=bob, content="new", timestamp=now)

    assert list(Message.objects.all()) == [new, old]


def test_notification_defaults_and_str(bob):
    notification = Notification.objects.create(user=bob, title="Welcome", content="the secret plan")

    assert isinstance(notification.pk, uuid.UUID)
    assert notification.notification_type == Notification.NotificationType.MESSAGE
    assert notification.is_read is False
    assert notification.source_event_id is None
    assert "bob" in str(notification)
    assert "Welcome" in str(notification)
    assert "secret plan" not in str(notification)


def test_notification_types_are_message_and_system():
    assert Notification.NotificationType.values == ["message", "system"]


def test_notifications_are_ordered_newest_first(bob):
    now = timezone.now()
    old = Notification.objects.create(user=bob, title="old", created_at=now - timedelta(minutes=5))
    new = Notification.objects.create(user=bob, title="new", created_at=now)

    assert list(Notification.objects.all()) == [new, old]


def test_an_event_builds_at_most_one_notification(bob):
    event_id = uuid.uuid4()
    Notification.objects.create(user=bob, title="first", source_event_id=event_id)

    with pytest.raises(IntegrityError), transaction.atomic():
        Notification.objects.create(user=bob, title="second", source_event_id=event_id)


def test_the_database_refuses_a_message_whose_sender_is_its_receiver(alice):
    # Past the service: the constraint guards every write path, bulk and raw SQL included.
    with pytest.raises(IntegrityError, match="message_sender_is_not_receiver"), transaction.atomic():
        Message.objects.create(sender=alice, receiver=alice, content="note to self")


def test_deleting_a_message_deletes_its_notifications(alice, bob):
    message = Message.objects.create(sender=alice, receiver=bob, content="hi")
    Notification.objects.create(user=bob, message=message, title="t")

    message.delete()

    assert Notification.objects.count() == 0


def test_short_content_is_previewed_whole():
    assert notification_preview("short") == "short"


def test_long_content_is_cut_with_an_ellipsis_at_the_configured_length():
    preview = notification_preview("a" * 1000)

    assert len(preview) == settings.NOTIFICATION_PREVIEW_LENGTH
    assert preview.endswith("…")
