"""The notifications consumer on real deliveries: exactly once, ack after commit, poison to DLQ."""

from __future__ import annotations

import json
import uuid

import pytest
from django.conf import settings
from kombu import Producer

from messaging.consumers import NotificationsConsumer
from messaging.models import Message, Notification
from outbox.broker import broker_connection
from outbox.consuming import DeadLetter, Outcome
from outbox.envelope import data_schema_url
from outbox.models import InboxEntry
from tests.helpers import get_messages, queue_depth, relay_pending_events, wait_until


def deliveries(channel, topology, count: int) -> list:
    relay_pending_events()
    return get_messages(channel, topology.queue_for("notifications"), expected=count)


@pytest.mark.django_db
def test_message_created_builds_the_receivers_notification(alice, bob, topology, broker_channel):
    message = Message.objects.create(sender=alice, receiver=bob, content="Lunch at noon?")
    [delivery] = deliveries(broker_channel, topology, 1)

    outcome = NotificationsConsumer().handle_delivery(delivery.body)

    assert outcome is Outcome.APPLIED
    notification = Notification.objects.get()
    assert notification.user == bob
    assert notification.message == message
    assert notification.notification_type == Notification.NotificationType.MESSAGE
    assert notification.title == "New message from alice"
    assert notification.content == "Lunch at noon?"
    assert notification.is_read is False
    assert str(notification.source_event_id) == json.loads(delivery.body)["id"]


@pytest.mark.django_db
def test_long_content_is_previewed_with_an_ellipsis(alice, bob, topology, broker_channel):
    Message.objects.create(sender=alice, receiver=bob, content="word " * 200)
    [delivery] = deliveries(broker_channel, topology, 1)

    NotificationsConsumer().handle_delivery(delivery.body)

    content = Notification.objects.get().content
    assert len(content) == settings.NOTIFICATION_PREVIEW_LENGTH
    assert content.endswith("…")
    assert ("word " * 200).startswith(content[:-1])


@pytest.mark.django_db
def test_the_same_event_delivered_twice_gives_one_notification(alice, bob, topology, broker_channel):
    Message.objects.create(sender=alice, receiver=bob, content="hi")
    [delivery] = deliveries(broker_channel, topology, 1)
    consumer = NotificationsConsumer()

    outcomes = [consumer.handle_delivery(delivery.body), consumer.handle_delivery(delivery.body)]

    assert outcomes == [Outcome.APPLIED, Outcome.DUPLICATE]
    assert Notification.objects.count() == 1
    assert InboxEntry.objects.count() == 1


@pytest.mark.django_db
def test_message_read_marks_that_messages_notification_read(alice, bob, topology, broker_channel):
    message = Message.objects.create(sender=alice, receiver=bob, content="hi")
    other = Message.objects.create(sender=alice, receiver=bob, content="other")
    consumer = NotificationsConsumer()
    for delivery in deliveries(broker_channel, topology, 2):
        consumer.handle_delivery(delivery.body)

    message.is_read = True
    message.save()
    [read] = deliveries(broker_channel, topology, 1)
    consumer.handle_delivery(read.body)

    assert Notification.objects.get(message=message).is_read is True
    assert Notification.objects.get(message=other).is_read is False


@pytest.mark.django_db
def test_message_read_handled_before_message_created_still_ends_read(alice, bob, topology, broker_channel):
    message = Message.objects.create(sender=alice, receiver=bob, content="hi")
    message.is_read = True
    message.save()
    created, read = deliveries(broker_channel, topology, 2)
    consumer = NotificationsConsumer()

    consumer.handle_delivery(read.body)
    consumer.handle_delivery(created.body)

    assert Notification.objects.get(message=message).is_read is True


@pytest.mark.django_db
def test_an_event_for_a_deleted_message_is_absorbed_without_a_notification(alice, bob, topology, broker_channel):
    message = Message.objects.create(sender=alice, receiver=bob, content="gone soon")
    [delivery] = deliveries(broker_channel, topology, 1)
    message.delete()

    outcome = NotificationsConsumer().handle_delivery(delivery.body)

    assert outcome is Outcome.APPLIED
    assert Notification.objects.count() == 0


def cloudevent(**overrides) -> bytes:
    document = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/test",
        "type": "message.read",
        "subject": "x",
        "time": "2026-01-01T00:00:00Z",
        "datacontenttype": "application/json",
        "data": {"message_id": str(uuid.uuid4()), "receiver_id": 1, "read_at": "2026-01-01T00:00:00Z"},
    }
    document.update(overrides)
    # The schema it names follows its type and version unless the test names another (or none).
    document.setdefault("dataschema", data_schema_url(document["type"], document.get("schemaversion", 1)))
    document = {key: value for key, value in document.items() if value is not None}
    return json.dumps(document).encode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json at all", "malformed envelope"),
        (cloudevent(type="message.deleted"), "unknown event type"),
        (cloudevent(data={"message_id": "nope"}), "fails"),
        (cloudevent(schemaversion=9), "v9 is newer than the versions this consumer accepts"),
        (cloudevent(dataschema=None), "'dataschema' is missing"),
        (cloudevent(dataschema="https://elsewhere.example/message.read/v1.json"), "dataschema is not this service's"),
    ],
    ids=["not-json", "unknown-type", "bad-data", "newer-version", "no-dataschema", "foreign-dataschema"],
)
def test_malformed_or_unknown_events_are_refused_for_the_dead_letter_queue(body, reason):
    with pytest.raises(DeadLetter, match=reason):
        NotificationsConsumer().handle_delivery(body)

    assert InboxEntry.objects.count() == 0


@pytest.mark.django_db
def test_poison_goes_to_the_dead_letter_queue_and_the_next_message_still_flows(alice, bob, topology, broker_channel):
    queue = topology.queue_for("notifications")
    Producer(broker_channel).publish(
        b"not json", exchange=topology.events, routing_key="message.created", content_type="application/json"
    )
    Message.objects.create(sender=alice, receiver=bob, content="fine")
    relay_pending_events()
    consumer = NotificationsConsumer()

    for delivery in get_messages(broker_channel, queue, expected=2):
        consumer.settle([delivery])

    assert Notification.objects.count() == 1
    dead_letter_queue = topology.dead_letter_queue_for("notifications")
    assert wait_until(lambda: queue_depth(broker_channel, dead_letter_queue) == 1, what="the poison in the DLQ")
    assert queue_depth(broker_channel, queue) == 0
    [dead] = get_messages(broker_channel, dead_letter_queue, expected=1)
    assert dead.body == b"not json"


@pytest.mark.django_db
def test_a_redelivery_after_the_consumer_died_before_its_ack_gives_one_notification(alice, bob, topology):
    Message.objects.create(sender=alice, receiver=bob, content="hi")
    relay_pending_events()
    queue = topology.queue_for("notifications")
    consumer = NotificationsConsumer()

    # The first consumer commits, then its connection dies before the ack.
    with broker_connection() as doomed:
        [first] = get_messages(doomed.channel(), queue, expected=1)
        assert consumer.handle_delivery(first.body) is Outcome.APPLIED
    # The broker hands the unacked delivery to the next consumer, marked redelivered.
    with broker_connection() as survivor:
        channel = survivor.channel()
        [again] = get_messages(channel, queue, expected=1)
        assert again.delivery_info["redelivered"] is True
        consumer.settle([again])
        assert queue_depth(channel, queue) == 0

    assert Notification.objects.count() == 1


@pytest.mark.django_db
def test_a_batch_with_poison_duplicates_and_both_events_of_a_message_settles_in_one_go(
    alice, bob, topology, broker_channel
):
    message = Message.objects.create(sender=alice, receiver=bob, content="hi")
    message.is_read = True
    message.save()
    other = Message.objects.create(sender=alice, receiver=bob, content="other")
    relay_pending_events()
    queue = topology.queue_for("notifications")
    Producer(broker_channel).publish(b"poison", exchange=topology.events, routing_key="message.created")
    consumer = NotificationsConsumer()
    batch = get_messages(broker_channel, queue, expected=4)
    # The same deliveries once more, as a redelivery would bring them.
    duplicate_bodies = [m.body for m in batch if m.body != b"poison"]

    consumer.settle(batch)
    for body in duplicate_bodies:
        assert consumer.handle_delivery(body) is Outcome.DUPLICATE

    assert Notification.objects.get(message=message).is_read is True
    assert Notification.objects.get(message=other).is_read is False
    assert Notification.objects.count() == 2
    assert InboxEntry.objects.count() == 3
    assert wait_until(lambda: queue_depth(broker_channel, topology.dead_letter_queue_for("notifications")) == 1)
    broker_channel.close()  # nothing unacked may come back
    with broker_connection() as conn:
        assert queue_depth(conn.channel(), queue) == 0
    consumer._dead_letters.close()


@pytest.mark.django_db(transaction=True)
def test_a_transaction_settles_at_most_half_the_prefetch_window_and_every_delivery_once(alice, bob, topology):
    messages = [Message.objects.create(sender=alice, receiver=bob, content=f"m{i}") for i in range(12)]
    relay_pending_events()
    batches: list[int] = []

    class RecordingConsumer(NotificationsConsumer):
        def settle(self, batch: list) -> None:
            batches.append(len(batch))
            super().settle(batch)

    consumer = RecordingConsumer(prefetch=4)
    try:
        wait_until(lambda: consumer.work_once() or consumer.stats.settled >= 12, what="every delivery settled")
    finally:
        consumer.disconnect()

    assert consumer.batch_limit == 2
    assert max(batches) <= 2
    assert sum(batches) == 12
    assert sorted(Notification.objects.values_list("message_id", flat=True)) == sorted(m.pk for m in messages)


def test_a_lone_delivery_is_settled_without_waiting_and_a_burst_is_read_as_it_waits(
    alice, bob, topology, broker_channel
):
    consumer = NotificationsConsumer(prefetch=10)
    reads: list[float | None] = []
    try:
        consumer._connect()
        wire = consumer._connection.drain_events

        def counted(timeout=None):
            reads.append(timeout)
            return wire(timeout=timeout)

        consumer._connection.drain_events = counted
        Message.objects.create(sender=alice, receiver=bob, content="alone")
        relay_pending_events()

        def receive() -> list:
            reads.clear()  # the reads of the call that returns the delivery
            return consumer.receive_batch()

        lone = wait_until(receive, what="the lone delivery")
        lone_reads = len(reads)
        consumer.settle(lone)

        for i in range(3):
            Message.objects.create(sender=alice, receiver=bob, content=f"burst {i}")
        relay_pending_events()
        queue = topology.queue_for("notifications")
        # All three sent to the consumer (none left ready in the queue) before it reads any.
        wait_until(lambda: queue_depth(broker_channel, queue) == 0, what="the burst sent to the consumer")
        reads.clear()
        burst = consumer.receive_batch()
        burst_reads = list(reads)
        consumer.settle(burst)
    finally:
        consumer.disconnect()

    # The lone delivery took one read and no wait for company.
    assert len(lone) == 1
    assert lone_reads == 1
    assert len(burst) == 3
    # What waited on the socket behind the first was read as it was, without a timeout.
    assert burst_reads[1:3] == [None, None]
