"""notification.created / notification.read: appended by the consumer with the rows, once, in order."""

from __future__ import annotations

import json

import pytest

from messaging.consumers import NotificationsConsumer
from messaging.events import NOTIFICATION_CREATED, NOTIFICATION_READ
from messaging.models import Message, Notification
from messaging.topology import NOTIFICATION_EVENTS_CONSUMER, NOTIFICATIONS_CONSUMER
from outbox import consuming
from outbox.consuming import Outcome
from outbox.models import OutboxEvent
from tests.helpers import get_messages, relay_pending_events

pytestmark = pytest.mark.django_db


def notification_events() -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(aggregate_type="notification").order_by("id"))


def deliveries(channel, topology, count: int) -> list:
    relay_pending_events()
    return get_messages(channel, topology.queue_for(NOTIFICATIONS_CONSUMER), expected=count)


def test_a_created_notification_appends_notification_created_with_its_fields(alice, bob, topology, broker_channel):
    Message.objects.create(sender=alice, receiver=bob, content="Lunch at noon?")
    [delivery] = deliveries(broker_channel, topology, 1)

    NotificationsConsumer().handle_delivery(delivery.body)

    notification = Notification.objects.get()
    [event] = notification_events()
    assert event.event_type == NOTIFICATION_CREATED
    assert event.aggregate_id == str(notification.pk)
    assert event.payload["notification_id"] == str(notification.pk)
    assert event.payload["user_id"] == bob.pk
    assert event.payload["message_id"] == str(notification.message_id)
    assert event.payload["title"] == "New message from alice"
    assert event.payload["content"] == "Lunch at noon?"
    assert event.payload["is_read"] is False


def created_and_read(consumer, alice, bob, topology, channel) -> tuple:
    """A message whose notification the consumer built, then read: the message and both deliveries,
    the read's not yet applied."""
    message = Message.objects.create(sender=alice, receiver=bob, content="hi")
    [created] = deliveries(channel, topology, 1)
    consumer.handle_delivery(created.body)
    message.is_read = True
    message.save()
    [read] = deliveries(channel, topology, 1)
    return message, created, read


def created_then_read(consumer, alice, bob, topology, channel) -> tuple:
    """`created_and_read`, the read applied too: both deliveries."""
    _, created, read = created_and_read(consumer, alice, bob, topology, channel)
    consumer.handle_delivery(read.body)
    return created, read


def test_a_redelivered_event_appends_nothing_twice(alice, bob, topology, broker_channel):
    consumer = NotificationsConsumer()
    created, read = created_then_read(consumer, alice, bob, topology, broker_channel)

    assert consumer.handle_delivery(created.body) is Outcome.DUPLICATE
    assert consumer.handle_delivery(read.body) is Outcome.DUPLICATE
    assert [event.event_type for event in notification_events()] == [NOTIFICATION_CREATED, NOTIFICATION_READ]


def test_a_read_of_an_unread_notification_appends_notification_read(alice, bob, topology, broker_channel):
    created_then_read(NotificationsConsumer(), alice, bob, topology, broker_channel)

    notification = Notification.objects.get()
    assert notification.is_read is True
    read_event = notification_events()[-1]
    assert read_event.event_type == NOTIFICATION_READ
    assert read_event.aggregate_id == str(notification.pk)
    assert read_event.payload["notification_id"] == str(notification.pk)
    assert read_event.payload["user_id"] == bob.pk


def test_a_read_of_a_message_unread_in_our_rows_flips_and_announces_nothing(alice, bob, topology, broker_channel):
    consumer = NotificationsConsumer()
    message, _, read = created_and_read(consumer, alice, bob, topology, broker_channel)
    Message.objects.filter(pk=message.pk).update(is_read=False)  # unread again before the event is applied

    assert consumer.handle_delivery(read.body) is Outcome.APPLIED

    assert Notification.objects.get().is_read is False
    assert [event.event_type for event in notification_events()] == [NOTIFICATION_CREATED]


def test_a_notification_created_already_read_is_announced_by_its_created_event_alone(
    alice, bob, topology, broker_channel
):
    message = Message.objects.create(sender=alice, receiver=bob, content="hi")
    message.is_read = True
    message.save()
    created, read = deliveries(broker_channel, topology, 2)

    NotificationsConsumer().settle([created, read])

    [event] = notification_events()
    assert event.event_type == NOTIFICATION_CREATED
    assert event.payload["is_read"] is True


def test_a_failed_apply_appends_no_notification_event(alice, bob, topology, broker_channel, monkeypatch):
    Message.objects.create(sender=alice, receiver=bob, content="hi")
    [delivery] = deliveries(broker_channel, topology, 1)

    def fail_after_the_events(*args, **kwargs):
        raise RuntimeError("the transaction fails after the events were appended")

    monkeypatch.setattr(consuming, "failpoint", fail_after_the_events)
    with pytest.raises(RuntimeError):
        NotificationsConsumer().handle_delivery(delivery.body)

    assert notification_events() == []
    assert Notification.objects.count() == 0


def test_the_relay_publishes_each_notifications_events_in_order(alice, bob, topology, broker_channel):
    messages = [Message.objects.create(sender=alice, receiver=bob, content=f"n{i}") for i in range(3)]
    consumer = NotificationsConsumer()
    for delivery in deliveries(broker_channel, topology, 3):
        consumer.settle([delivery])
    for message in messages:
        message.is_read = True
        message.save()
    for delivery in deliveries(broker_channel, topology, 3):
        consumer.settle([delivery])
    relay_pending_events()

    published = get_messages(broker_channel, topology.queue_for(NOTIFICATION_EVENTS_CONSUMER), expected=6)

    by_notification: dict[str, list[str]] = {}
    for delivery in published:
        body = json.loads(delivery.body)
        by_notification.setdefault(body["subject"], []).append(body["type"])
    assert sorted(by_notification) == sorted(str(pk) for pk in Notification.objects.values_list("pk", flat=True))
    assert all(types == [NOTIFICATION_CREATED, NOTIFICATION_READ] for types in by_notification.values())
