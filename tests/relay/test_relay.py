"""The relay against the real PostgreSQL and RabbitMQ, one step at a time and as a loop."""

from __future__ import annotations

import json
import threading

import pytest
from django.db import connections, transaction
from kombu import Exchange

from messaging.models import Message
from outbox.broker import Topology
from outbox.models import OutboxEvent
from outbox.services import claim_pending_events
from relay.amqp_publisher import BrokerUnavailable, ConfirmingPublisher
from relay.relay import Relay
from tests.helpers import claim_held_by_another_relay, get_messages, queue_depth, wait_until


def send(sender, receiver, count: int) -> list[Message]:
    return [Message.objects.create(sender=sender, receiver=receiver, content=f"message {i}") for i in range(count)]


def run_and_close_connections(relay: Relay) -> None:
    try:
        relay.run()
    finally:
        connections.close_all()


def pending_count() -> int:
    return OutboxEvent.objects.filter(published_at__isnull=True).count()


@pytest.mark.django_db
def test_relay_batch_publishes_in_id_order_and_marks_published(alice, bob, topology, broker_channel):
    messages = send(alice, bob, 3)
    relay = Relay(batch_size=10)

    result = relay.relay_batch()
    relay.publisher.close()

    assert (result.claimed, result.published, result.failed) == (3, 3, 0)
    assert pending_count() == 0
    delivered = get_messages(broker_channel, topology.queue_for("notifications"), expected=3)
    bodies = [json.loads(m.body) for m in delivered]
    assert [b["subject"] for b in bodies] == [str(m.pk) for m in messages]
    events = list(OutboxEvent.objects.order_by("id"))
    assert [b["id"] for b in bodies] == [str(e.event_id) for e in events]
    first = delivered[0]
    assert first.properties["message_id"] == str(events[0].event_id)
    assert first.content_type == "application/cloudevents+json"
    assert first.properties["delivery_mode"] == 2
    assert first.delivery_info["routing_key"] == "message.created"


@pytest.mark.django_db
def test_a_batch_spanning_several_socket_writes_and_frames_arrives_whole_and_in_order(
    alice, bob, topology, broker_channel
):
    # Thirty 9,000-character messages take several of the publisher's socket writes, and one of
    # 300,000 characters (past the API's limit, written through the model) is more than one
    # frame: its body goes in pieces of the broker's frame_max.
    contents = [f"{i:02d} " + "x" * 9000 for i in range(30)]
    contents[12] = "big " + "y" * 300_000
    messages = [Message.objects.create(sender=alice, receiver=bob, content=content) for content in contents]
    relay = Relay(batch_size=50)

    result = relay.relay_batch()
    relay.publisher.close()

    assert (result.claimed, result.published, result.failed) == (30, 30, 0)
    delivered = get_messages(broker_channel, topology.queue_for("notifications"), expected=30)
    bodies = [json.loads(message.body) for message in delivered]
    assert [body["data"]["content"] for body in bodies] == contents
    assert [body["subject"] for body in bodies] == [str(message.pk) for message in messages]


@pytest.mark.django_db
def test_an_event_published_before_any_consumer_started_waits_in_the_queue(alice, bob, broker_namespace, settings):
    # No consumer and no fixture declared anything: the relay declares the queue itself.
    send(alice, bob, 1)
    relay = Relay()

    relay.relay_batch()
    relay.publisher.close()

    from messaging.topology import build_topology
    from outbox.broker import broker_connection

    with broker_connection() as conn:
        queue = build_topology(broker_namespace).queue_for("notifications")
        assert wait_until(lambda: queue_depth(conn.channel(), queue) == 1, what="the event in the queue")


@pytest.mark.django_db
def test_an_unroutable_event_is_never_marked_published(alice, bob, broker_namespace, broker_channel):
    # A topology whose exchange no queue is bound to: RabbitMQ would silently drop the event.
    lonely = Topology(events=Exchange(f"{broker_namespace}lonely.events", type="topic", durable=True))
    message = send(alice, bob, 1)[0]
    relay = Relay(publisher=ConfirmingPublisher(topology=lonely))

    try:
        result = relay.relay_batch()
    finally:
        relay.publisher.close()
        lonely.events(broker_channel).delete()

    assert (result.published, result.failed) == (0, 1)
    event = OutboxEvent.objects.get(aggregate_id=str(message.pk))
    assert event.published_at is None
    assert event.attempts == 1
    assert "unroutable" in event.last_error


@pytest.mark.django_db
def test_broker_down_leaves_the_batch_pending(alice, bob, broker_namespace):
    send(alice, bob, 2)
    relay = Relay(publisher=ConfirmingPublisher(url="amqp://guest:guest@127.0.0.1:1//"))

    with pytest.raises(BrokerUnavailable, match="cannot connect"):
        relay.relay_batch()

    assert pending_count() == 2
    assert set(OutboxEvent.objects.values_list("attempts", flat=True)) == {0}


@pytest.mark.django_db
def test_broker_error_messages_never_show_the_password(broker_namespace):
    publisher = ConfirmingPublisher(url="amqp://guest:hunter2-secret@127.0.0.1:1//")

    with pytest.raises(BrokerUnavailable) as caught:
        publisher.connect()

    assert "hunter2-secret" not in str(caught.value)


@pytest.mark.django_db
def test_drain_publishes_a_backlog_larger_than_one_batch(alice, bob, topology, broker_channel):
    send(alice, bob, 7)
    relay = Relay(batch_size=3)

    result = relay.drain()
    relay.publisher.close()

    assert (result.claimed, result.published) == (7, 7)
    assert pending_count() == 0
    assert len(get_messages(broker_channel, topology.queue_for("notifications"), expected=7)) == 7


@pytest.mark.django_db(transaction=True)
def test_two_relays_claim_disjoint_events(alice, bob):
    send(alice, bob, 6)

    with claim_held_by_another_relay(4) as first_claim, transaction.atomic():
        second_claim = [event.id for event in claim_pending_events(10)]

    assert len(first_claim) == 4
    assert len(second_claim) == 2
    assert not set(first_claim) & set(second_claim)


@pytest.mark.django_db(transaction=True)
def test_running_relay_wakes_on_commit_long_before_its_poll(alice, bob, topology):
    relay = Relay(poll_interval=120)
    runner = threading.Thread(target=run_and_close_connections, args=(relay,))
    runner.start()
    try:
        # Wait for the relay to be listening (it drains the empty backlog first).
        wait_until(lambda: relay.listener._connection is not None, what="the relay to LISTEN")
        message = send(alice, bob, 1)[0]
        wait_until(
            lambda: OutboxEvent.objects.filter(aggregate_id=str(message.pk), published_at__isnull=False).exists(),
            timeout=10,
            what="the event to be published on NOTIFY, with the poll 120 s away",
        )
    finally:
        relay.stop()
        runner.join(10)
    assert not runner.is_alive()
