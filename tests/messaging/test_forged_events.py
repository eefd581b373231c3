"""Deliveries forged on the events exchange by anyone who may publish there (issues 21 and 22).

The notifications consumer takes what a notification shows from our own rows and checks each
event against the message it names: a forgery either repeats what the real event says, changes
nothing a user sees, or is dead-lettered with its reason.
"""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from django.db import IntegrityError, transaction
from kombu import Producer

from messaging import services
from messaging.consumers import NotificationsConsumer
from messaging.events import MESSAGE_CREATED, MESSAGE_READ
from messaging.models import Message, Notification
from outbox.consuming import DeadLetter, Outcome
from outbox.dead_letters import REASON_HEADER
from outbox.envelope import data_schema_url
from outbox.models import InboxEntry
from tests.helpers import get_messages, queue_depth, relay_pending_events, wait_until

ATTACKER_TEXT = "Your account is locked, log in at evil.example"


def forged_created(message: Message, *, event_id: str | None = None, **data) -> bytes:
    """A hand-made `message.created` CloudEvent naming `message`, as an attacker would publish it."""
    payload = {
        "message_id": str(message.pk),
        "sender_id": message.sender_id,
        "sender_username": "security-team",
        "receiver_id": message.receiver_id,
        "content": ATTACKER_TEXT,
        "sent_at": "2026-01-01T00:00:00Z",
        "is_read": False,
    }
    payload.update(data)
    return envelope(MESSAGE_CREATED, payload, event_id=event_id)


def forged_read(message_id, receiver_id) -> bytes:
    payload = {"message_id": str(message_id), "receiver_id": receiver_id, "read_at": "2026-01-01T00:00:00Z"}
    return envelope(MESSAGE_READ, payload)


def envelope(event_type: str, data: dict, *, event_id: str | None = None) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": event_id or str(uuid.uuid4()),
            "source": "/messaging-service",
            "type": event_type,
            "subject": data["message_id"],
            "time": "2026-01-01T00:00:00Z",
            "datacontenttype": "application/json",
            # Ours: a forger copies it from any real event.
            "dataschema": data_schema_url(event_type, 1),
            "data": data,
        }
    ).encode()


def publish(channel, topology, *bodies: bytes) -> None:
    producer = Producer(channel)
    for body in bodies:
        routing_key = json.loads(body)["type"]
        producer.publish(body, exchange=topology.events, routing_key=routing_key, content_type="application/json")


def settle(channel, topology, expected: int) -> NotificationsConsumer:
    """Take `expected` deliveries off the notifications queue and settle them as one batch."""
    consumer = NotificationsConsumer()
    batch = get_messages(channel, topology.queue_for("notifications"), expected=expected)
    consumer.settle(batch)
    return consumer


def settle_forged(consumer: NotificationsConsumer, channel, topology, body: bytes) -> None:
    """Publish one forged body and let `consumer` settle it; its dead-letter connection is closed."""
    publish(channel, topology, body)
    consumer.settle(get_messages(channel, topology.queue_for("notifications"), expected=1))
    consumer._dead_letters.close()


def dead_letter_reasons(channel, topology, expected: int) -> list[str]:
    queue = topology.dead_letter_queue_for("notifications")
    wait_until(lambda: queue_depth(channel, queue) == expected, what=f"{expected} dead letters")
    return [message.headers[REASON_HEADER] for message in get_messages(channel, queue, expected=expected)]


@pytest.fixture
def mallory(make_user):
    return make_user("mallory")


@pytest.mark.django_db
def test_a_forged_created_with_attacker_text_for_a_real_message_adds_no_second_notification(
    alice, bob, topology, broker_channel, caplog
):
    message = Message.objects.create(sender=alice, receiver=bob, content="Lunch at noon?")
    relay_pending_events()
    consumer = settle(broker_channel, topology, 1)

    with caplog.at_level(logging.INFO, logger="messaging.services"):
        settle_forged(consumer, broker_channel, topology, forged_created(message))

    [notification] = Notification.objects.filter(user=bob)
    assert notification.title == "New message from alice"
    assert notification.content == "Lunch at noon?"
    assert "notification.skipped reason=notification_exists" in caplog.text
    assert ATTACKER_TEXT not in caplog.text


@pytest.mark.django_db
def test_a_forged_created_that_arrives_before_the_real_one_shows_only_what_our_rows_say(
    alice, bob, topology, broker_channel
):
    message = Message.objects.create(sender=alice, receiver=bob, content="Lunch at noon?")
    publish(broker_channel, topology, forged_created(message))
    relay_pending_events()

    settle(broker_channel, topology, 2)._dead_letters.close()

    [notification] = Notification.objects.filter(user=bob)
    assert (notification.title, notification.content) == ("New message from alice", "Lunch at noon?")
    assert InboxEntry.objects.count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["receiver_id", "sender_id"])
def test_a_forged_created_naming_other_people_than_the_message_is_dead_lettered_with_its_reason(
    alice, bob, mallory, topology, broker_channel, field
):
    message = Message.objects.create(sender=alice, receiver=bob, content="hi")
    publish(broker_channel, topology, forged_created(message, **{field: mallory.pk}))

    settle(broker_channel, topology, 1)._dead_letters.close()

    assert not Notification.objects.exists()
    assert not InboxEntry.objects.exists()
    [reason] = dead_letter_reasons(broker_channel, topology, 1)
    assert f"{field} differs from message {message.pk}" in reason


@pytest.mark.django_db
def test_a_created_whose_receiver_does_not_exist_is_dead_lettered(alice, bob, topology, broker_channel):
    message = Message.objects.create(sender=alice, receiver=bob, content="hi")
    missing_user_id = bob.pk + 10_000
    publish(broker_channel, topology, forged_created(message, receiver_id=missing_user_id))

    settle(broker_channel, topology, 1)._dead_letters.close()

    assert not Notification.objects.exists()
    [reason] = dead_letter_reasons(broker_channel, topology, 1)
    assert "receiver_id differs" in reason


@pytest.mark.django_db
def test_a_created_for_a_message_that_does_not_exist_builds_nothing_and_is_logged(alice, bob, caplog):
    ghost = Message(message_id=uuid.uuid4(), sender=alice, receiver=bob, content="never written")
    event_id = uuid.uuid4()
    data = json.loads(forged_created(ghost))["data"]

    with caplog.at_level(logging.INFO, logger="messaging.services"), transaction.atomic():
        created = services.create_message_notifications([(event_id, data)])

    assert created == []
    assert not Notification.objects.exists()
    assert f"notification.skipped reason=message_missing event_id={event_id}" in caplog.text


@pytest.mark.django_db
def test_a_forged_read_of_another_users_message_is_dead_lettered_and_leaves_the_notification_unread(
    alice, bob, mallory, topology, broker_channel
):
    message = Message.objects.create(sender=alice, receiver=bob, content="hi")
    relay_pending_events()
    consumer = settle(broker_channel, topology, 1)
    Message.objects.filter(pk=message.pk).mark_read()  # bob's own read, its event not relayed yet

    settle_forged(consumer, broker_channel, topology, forged_read(message.pk, mallory.pk))

    assert Notification.objects.get(message=message).is_read is False
    [reason] = dead_letter_reasons(broker_channel, topology, 1)
    assert f"receiver_id differs from message {message.pk}" in reason


@pytest.mark.django_db
def test_a_forged_read_of_a_message_still_unread_here_changes_nothing_and_is_logged(
    alice, bob, topology, broker_channel, caplog
):
    message = Message.objects.create(sender=alice, receiver=bob, content="hi")
    relay_pending_events()
    consumer = settle(broker_channel, topology, 1)

    with caplog.at_level(logging.INFO, logger="messaging.services"):
        settle_forged(consumer, broker_channel, topology, forged_read(message.pk, bob.pk))

    assert Notification.objects.get(message=message).is_read is False
    assert "notification.read_skipped reason=message_unread" in caplog.text
    assert queue_depth(broker_channel, topology.dead_letter_queue_for("notifications")) == 0


@pytest.mark.django_db
def test_a_read_for_a_message_that_does_not_exist_changes_nothing(bob, caplog):
    with caplog.at_level(logging.INFO, logger="messaging.services"), transaction.atomic():
        marked = services.apply_message_reads([(uuid.uuid4(), json.loads(forged_read(uuid.uuid4(), bob.pk))["data"])])

    assert marked == 0
    assert "notification.read_skipped reason=message_missing" in caplog.text


@pytest.mark.django_db
def test_a_duplicate_event_id_with_other_data_is_absorbed_by_the_inbox(alice, bob, topology, broker_channel):
    message = Message.objects.create(sender=alice, receiver=bob, content="hi")
    relay_pending_events()
    [real] = get_messages(broker_channel, topology.queue_for("notifications"), expected=1)
    consumer = NotificationsConsumer()
    assert consumer.handle_delivery(real.body) is Outcome.APPLIED
    same_id = json.loads(real.body)["id"]

    outcome = consumer.handle_delivery(forged_created(message, event_id=same_id))

    assert outcome is Outcome.DUPLICATE
    [notification] = Notification.objects.all()
    assert notification.content == "hi"


@pytest.mark.django_db
def test_a_forgery_in_a_batch_is_dead_lettered_and_the_real_events_around_it_are_applied(
    alice, bob, mallory, topology, broker_channel
):
    first = Message.objects.create(sender=alice, receiver=bob, content="one")
    second = Message.objects.create(sender=alice, receiver=bob, content="two")
    relay_pending_events()
    publish(broker_channel, topology, forged_created(first, receiver_id=mallory.pk))

    settle(broker_channel, topology, 3)._dead_letters.close()

    assert set(Notification.objects.values_list("message_id", flat=True)) == {first.pk, second.pk}
    assert len(dead_letter_reasons(broker_channel, topology, 1)) == 1


@pytest.mark.django_db
def test_the_consumer_refusing_a_forgery_is_a_dead_letter():
    assert issubclass(services.EventContradictsOurRows, DeadLetter)


@pytest.mark.django_db
def test_the_database_refuses_a_second_message_notification_for_one_message(alice, bob):
    message = Message.objects.create(sender=alice, receiver=bob, content="hi")
    Notification.objects.create(user=bob, message=message, title="New message from alice")

    with pytest.raises(IntegrityError), transaction.atomic():
        Notification.objects.create(user=bob, message=message, title="New message from security-team")


@pytest.mark.django_db
def test_system_notifications_about_a_message_are_not_limited(alice, bob):
    message = Message.objects.create(sender=alice, receiver=bob, content="hi")
    Notification.objects.create(user=bob, message=message, title="New message from alice")
    for title in ("Reported", "Reviewed"):
        Notification.objects.create(
            user=bob, message=message, title=title, notification_type=Notification.NotificationType.SYSTEM
        )

    assert Notification.objects.filter(message=message).count() == 3


@pytest.mark.django_db
@pytest.mark.parametrize("size", [3, 30])
def test_a_batch_of_message_events_costs_the_same_queries_whatever_its_size(
    alice, bob, django_assert_num_queries, size
):
    messages = [Message.objects.create(sender=alice, receiver=bob, content=f"hi {n}") for n in range(size)]
    Message.objects.filter(pk__in=[m.pk for m in messages]).mark_read()
    events = [(MESSAGE_CREATED, uuid.uuid4(), json.loads(forged_created(m))["data"]) for m in messages]
    events += [(MESSAGE_READ, uuid.uuid4(), json.loads(forged_read(m.pk, bob.pk))["data"]) for m in messages]

    # One statement for the creations, one for the reads, and the savepoint in and out.
    with django_assert_num_queries(4), transaction.atomic():
        services.apply_message_events(events)

    assert Notification.objects.filter(is_read=True).count() == size


@pytest.mark.django_db
def test_long_texts_in_a_batch_cost_one_more_statement_and_are_cut_as_the_preview_cuts(
    alice, bob, django_assert_num_queries, settings
):
    texts = ["short", "word " * 200, "é" * (settings.NOTIFICATION_PREVIEW_LENGTH + 1)]
    messages = [Message.objects.create(sender=alice, receiver=bob, content=text) for text in texts]
    events = [(MESSAGE_CREATED, uuid.uuid4(), json.loads(forged_created(m))["data"]) for m in messages]

    with django_assert_num_queries(4), transaction.atomic():
        services.apply_message_events(events)

    shown = dict(Notification.objects.values_list("message_id", "content"))
    assert [shown[m.pk] for m in messages] == [services.notification_preview(text) for text in texts]
