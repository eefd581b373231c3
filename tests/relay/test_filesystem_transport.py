"""The relay and the consumer on kombu's filesystem transport (the bare-machine default broker)."""

from __future__ import annotations

import contextlib
import shutil
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.management import call_command
from kombu import Connection, Consumer, Producer

from messaging.consumers import NotificationsConsumer
from messaging.models import Message, Notification
from messaging.topology import NOTIFICATIONS_CONSUMER, build_topology
from outbox.broker import declare_topology, require_amqp
from outbox.envelope import OutgoingEvent
from relay.amqp_publisher import BrokerUnavailable, ConfirmingPublisher
from relay.filesystem_publisher import LocalPublisher
from relay.publisher import build_publisher
from relay.relay import Relay
from tests.helpers import wait_until

_ids = iter(range(1, 1_000_000))


def event(event_type: str = "message.created", **fields) -> OutgoingEvent:
    return OutgoingEvent(
        id=next(_ids),
        event_id=uuid.uuid4(),
        aggregate_type="message",
        aggregate_id=str(uuid.uuid4()),
        event_type=event_type,
        schema_version=1,
        payload_json=fields.pop("payload_json", '{"message_id": "m"}'),
        headers=fields.pop("headers", {}),
        occurred_at=datetime(2026, 11, 24, 6, 0, tzinfo=UTC),
        **fields,
    )


def take(options: dict, queue, expected: int, settle) -> list:
    """Take `expected` deliveries off `queue` through a connection of its own, as another process
    would, hand them to `settle` as one batch, then close the connection."""
    messages: list = []
    with Connection("filesystem://", transport_options=options) as connection:
        consumer = Consumer(connection.channel(), queues=[queue], on_message=messages.append, accept=None)
        consumer.qos(prefetch_count=expected)
        consumer.consume()

        def arrived() -> bool:
            with contextlib.suppress(TimeoutError):
                connection.drain_events(timeout=0.1)
            return len(messages) >= expected

        wait_until(arrived, timeout=10, interval=0, what=f"{expected} messages on {queue.name}")
        settle(messages)
    return messages


def take_all(options: dict, queue, expected: int) -> list:
    """The messages on `queue`, acked."""
    return take(options, queue, expected, settle=lambda messages: [message.ack() for message in messages])


def relay_new_messages(sender, receiver, count: int) -> None:
    """Write `count` messages and relay their events to the filesystem broker."""
    for i in range(count):
        Message.objects.create(sender=sender, receiver=receiver, content=f"m{i}")
    relay = Relay()
    assert relay.drain().published == count
    relay.publisher.close()


def test_build_publisher_chooses_by_the_brokers_transport(filesystem_broker):
    assert isinstance(build_publisher(), LocalPublisher)
    assert isinstance(build_publisher("amqp://guest:guest@127.0.0.1:5672//"), ConfirmingPublisher)


def test_routed_events_are_confirmed_and_stored_in_order_with_their_properties(filesystem_broker):
    events = [event(), event(), event("message.read")]
    publisher = LocalPublisher()

    outcome = publisher.publish_batch(events)
    publisher.close()

    assert outcome.failed == {}
    assert outcome.confirmed == [e.id for e in events]
    queue = build_topology().queue_for(NOTIFICATIONS_CONSUMER)
    delivered = take_all(filesystem_broker, queue, expected=3)
    assert {m.properties["message_id"] for m in delivered} == {str(e.event_id) for e in events}
    first = next(m for m in delivered if m.properties["message_id"] == str(events[0].event_id))
    assert first.content_type == "application/cloudevents+json"
    assert first.delivery_info["routing_key"] == "message.created"
    assert b'"type":"message.created"' in first.body


def test_events_published_within_one_millisecond_are_delivered_in_publish_order(filesystem_broker):
    # kombu's own filesystem transport names a message file by the millisecond plus a random
    # id, so a batch published within one millisecond came back shuffled.
    events = [event() for _ in range(200)]
    publisher = LocalPublisher()

    assert publisher.publish_batch(events).confirmed == [e.id for e in events]
    publisher.close()

    queue = build_topology().queue_for(NOTIFICATIONS_CONSUMER)
    delivered = take_all(filesystem_broker, queue, expected=200)
    assert [m.properties["message_id"] for m in delivered] == [str(e.event_id) for e in events]


def test_a_transport_that_cannot_store_raises_broker_unavailable_and_confirms_nothing(filesystem_broker):
    publisher = LocalPublisher()
    publisher.connect()
    shutil.rmtree(filesystem_broker["data_folder_out"])

    with pytest.raises(BrokerUnavailable, match="publishing to filesystem://"):
        publisher.publish_batch([event()])
    assert not publisher.is_connected


def test_an_event_no_queue_is_bound_for_is_reported_failed_and_not_stored(filesystem_broker):
    routed, unroutable = event(), event("billing.charged")
    publisher = LocalPublisher()

    outcome = publisher.publish_batch([routed, unroutable])
    publisher.close()

    assert outcome.confirmed == [routed.id]
    assert set(outcome.failed) == {unroutable.id}
    assert outcome.failed[unroutable.id].startswith("unroutable: no queue is bound to exchange 'messaging.events'")
    queue = build_topology().queue_for(NOTIFICATIONS_CONSUMER)
    assert [m.properties["message_id"] for m in take_all(filesystem_broker, queue, expected=1)] == [
        str(routed.event_id)
    ]


def test_an_event_over_the_size_limit_or_with_unencodable_headers_fails_alone(filesystem_broker, settings):
    settings.OUTBOX_MAX_EVENT_BYTES = 600
    small, large = event(), event(payload_json='{"content": "' + "x" * 1000 + '"}')
    odd = event(headers={"x-thing": object()})
    publisher = LocalPublisher()

    outcome = publisher.publish_batch([small, large, odd])
    publisher.close()

    assert outcome.confirmed == [small.id]
    assert "over the 600-byte limit" in outcome.failed[large.id]
    assert "cannot be encoded" in outcome.failed[odd.id]


@pytest.mark.django_db(transaction=True)
def test_relay_and_consumer_carry_messages_to_notifications_on_the_filesystem_transport(filesystem_broker, alice, bob):
    messages = [Message.objects.create(sender=alice, receiver=bob, content=f"m{i}") for i in range(7)]
    relay = Relay(batch_size=3)

    result = relay.drain()
    relay.publisher.close()

    assert result.published == 7
    consumer = NotificationsConsumer(prefetch=2)
    consumer.exit_when_idle = True
    guard = threading.Timer(60, consumer.stop)  # never hang the suite if the consumer stalls
    guard.start()
    try:
        consumer.run()
    finally:
        guard.cancel()
    assert consumer.stats.settled == 7
    assert set(Notification.objects.values_list("message_id", flat=True)) == {m.pk for m in messages}


@pytest.mark.django_db(transaction=True)
def test_a_settled_batch_is_acked_whole_so_nothing_returns_when_the_consumer_disconnects(filesystem_broker, alice, bob):
    # kombu's virtual transports ignore `multiple` on an ack: acking only the batch's last
    # delivery would leave the others unacked, and the transport puts unacked deliveries back
    # on the queue when the channel closes.
    relay_new_messages(alice, bob, 3)
    consumer = NotificationsConsumer()
    deliveries = take(filesystem_broker, consumer.queue, expected=3, settle=consumer.settle)

    assert len(deliveries) == 3
    assert Notification.objects.count() == 3
    assert list(Path(filesystem_broker["data_folder_in"]).glob(f"*.{consumer.queue.name}.msg")) == []


def test_a_poison_delivery_is_republished_to_the_dead_letter_queue_with_its_reason(filesystem_broker):
    consumer = NotificationsConsumer()
    with Connection("filesystem://", transport_options=filesystem_broker) as connection:
        channel = connection.channel()
        declare_topology(channel, consumer.topology)
        Producer(channel, exchange=consumer.topology.events).publish(
            b"not json", routing_key="message.created", message_id="poison-1", content_type="application/json"
        )
    take(filesystem_broker, consumer.queue, expected=1, settle=consumer.settle)
    consumer._dead_letters.close()

    dead = take_all(filesystem_broker, consumer.topology.dead_letter_queue_for(NOTIFICATIONS_CONSUMER), expected=1)
    assert dead[0].body == b"not json"
    assert dead[0].headers["x-dead-letter-reason"].startswith("malformed envelope")
    assert dead[0].properties["message_id"] == "poison-1"
    assert list(Path(filesystem_broker["data_folder_in"]).glob(f"*.{consumer.queue.name}.msg")) == []


@pytest.mark.django_db(transaction=True)
def test_a_replay_to_a_consumers_queue_reaches_that_queue_only_on_the_filesystem_transport(
    filesystem_broker, alice, bob, capsys
):
    relay_new_messages(alice, bob, 2)
    topology = build_topology()
    queue = topology.queue_for(NOTIFICATIONS_CONSUMER)
    original = take_all(filesystem_broker, queue, expected=2)

    call_command("outbox_replay", "--consumer", NOTIFICATIONS_CONSUMER)

    assert "replayed 2 events" in capsys.readouterr().out
    replayed = take_all(filesystem_broker, queue, expected=2)
    assert [m.body for m in replayed] == [m.body for m in original]
    assert [m.delivery_info["routing_key"] for m in replayed] == [queue.name] * 2
    # Nothing else was stored: no second copy, no dead letter.
    assert list(Path(filesystem_broker["data_folder_in"]).glob("*.msg")) == []


def test_a_replay_to_a_queue_no_binding_names_fails_every_event_and_stores_none(filesystem_broker):
    events = [event(), event("message.read")]
    publisher = LocalPublisher()

    outcome = publisher.publish_batch(events, to_queue="nobody-listens")
    publisher.close()

    assert outcome.confirmed == []
    assert set(outcome.failed) == {e.id for e in events}
    assert all(reason.startswith("unroutable: no queue 'nobody-listens'") for reason in outcome.failed.values())
    assert list(Path(filesystem_broker["data_folder_in"]).glob("*.msg")) == []


def test_amqp_only_tools_refuse_a_serverless_broker(filesystem_broker):
    from django.core.exceptions import ImproperlyConfigured

    from tooling.chaos import ChaosPlan, ChaosRun

    with pytest.raises(ImproperlyConfigured, match=r"needs RabbitMQ .* the broker is filesystem://"):
        require_amqp("the soak")
    plan = ChaosPlan(
        messages=1,
        relays=1,
        consumers=1,
        writers=1,
        kill_every=0,
        cut_broker_every=0,
        terminate_db_every=0,
        failpoints="",
        settle_timeout=1,
        seed=1,
    )
    with pytest.raises(ImproperlyConfigured, match="outbox_chaos needs RabbitMQ"):
        ChaosRun(plan)
