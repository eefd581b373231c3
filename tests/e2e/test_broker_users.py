"""One RabbitMQ user per role, least privilege, on the real broker (issue 22).

The users are made with rabbitmqctl on the vhost of BROKER_URL, with the permissions
`messaging.topology.broker_permissions` gives, for names under any test namespace; they are
deleted when the module ends.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import uuid
from urllib.parse import quote, urlsplit

import pytest
from amqp.exceptions import AccessRefused
from django.conf import settings
from django.core.management import call_command
from kombu import Connection, Consumer, Exchange, Producer, Queue

from messaging.models import Message, Notification
from messaging.topology import broker_permissions, build_topology, team_permissions
from outbox.broker import broker_connection, declare_consumer_queues, declare_events_exchange, delete_topology
from outbox.envelope import AGGREGATE_ID_HEADER
from outbox.models import OutboxEvent
from tests.helpers import get_messages, queue_depth, relay_pending_events, wait_until

pytestmark = pytest.mark.e2e

# Every name a test declares starts with its BROKER_NAMESPACE (tests/conftest.py makes them).
TEST_NAMESPACE = r"test-[0-9a-f]{10}\."
TEAM = "billing"


def rabbitmqctl(*arguments: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *arguments], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def role_urls() -> dict[str, str]:
    """Role -> an AMQP URL of a user of its own with that role's permissions; `team` too."""
    assert shutil.which("rabbitmqctl"), "rabbitmqctl makes the users of these tests"
    broker = urlsplit(settings.BROKER_URL)
    vhost = Connection(settings.BROKER_URL).virtual_host
    run = uuid.uuid4().hex[:8]
    permissions = {**broker_permissions(TEST_NAMESPACE), "team": team_permissions(TEAM, TEST_NAMESPACE)}
    urls, made = {}, []
    try:
        for role, granted in permissions.items():
            user, password = f"perms-{run}-{role}", uuid.uuid4().hex
            rabbitmqctl("add_user", user, password)
            made.append(user)
            rabbitmqctl("set_permissions", "-p", vhost, user, granted.configure, granted.write, granted.read)
            netloc = f"{user}:{password}@{broker.hostname}:{broker.port or 5672}"
            urls[role] = f"amqp://{netloc}/{quote(vhost, safe='')}"
        yield urls
    finally:
        for user in made:
            rabbitmqctl("delete_user", user)


def publish_confirmed(url: str, body: bytes, *, exchange: str, routing_key: str) -> None:
    """Publish and wait for the broker's confirm: a refusal raises instead of passing unseen."""
    with Connection(url, transport_options={"confirm_publish": True}) as connection:
        Producer(connection.channel()).publish(
            body, exchange=exchange, routing_key=routing_key, retry=False, declare=[]
        )


def drained(connection) -> bool:
    with contextlib.suppress(TimeoutError):
        connection.drain_events(timeout=0.05)
    return False


def attack(message: Message) -> bytes:
    """Issue 22's forged delivery: a fresh id, a real message, the attacker's name and text."""
    return json.dumps(
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "/messaging-service",
            "type": "message.created",
            "subject": str(message.pk),
            "time": "2026-01-01T00:00:00Z",
            "datacontenttype": "application/json",
            "data": {
                "message_id": str(message.pk),
                "sender_id": message.sender_id,
                "sender_username": "security-team",
                "receiver_id": message.receiver_id,
                "content": "Your account is locked, log in at evil.example",
                "sent_at": "2026-01-01T00:00:00Z",
                "is_read": False,
            },
        }
    ).encode()


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["consumer", "team", "monitor"])
def test_only_the_relay_and_replay_users_may_publish_to_the_events_exchange(
    role, role_urls, topology, alice, bob, broker_channel
):
    message = Message.objects.create(sender=alice, receiver=bob, content="hi")

    with pytest.raises(AccessRefused, match="ACCESS_REFUSED"):
        publish_confirmed(
            role_urls[role], attack(message), exchange=topology.events.name, routing_key="message.created"
        )

    assert queue_depth(broker_channel, topology.queue_for("notifications")) == 0


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["relay", "replay"])
def test_the_relay_and_replay_users_may_publish_to_the_events_exchange(role, role_urls, topology, broker_channel):
    publish_confirmed(role_urls[role], b"{}", exchange=topology.events.name, routing_key="message.created")

    assert wait_until(lambda: queue_depth(broker_channel, topology.queue_for("notifications")) == 1)


@pytest.mark.parametrize("role", ["relay", "replay", "team", "monitor"])
def test_no_user_but_the_consumers_may_read_the_notifications_queue(role, role_urls, topology):
    with Connection(role_urls[role]) as connection:
        channel = connection.channel()
        consumer = Consumer(channel, queues=[topology.queue_for("notifications")], auto_declare=False)
        with pytest.raises(AccessRefused, match="ACCESS_REFUSED"):
            consumer.consume()
            connection.drain_events(timeout=5)


def test_the_relays_user_may_not_declare_the_consumers_queue(role_urls, broker_namespace):
    # Nor could it be given the right: declaring a queue with a dead-letter exchange takes read
    # permission on that queue, which would let the relay consume it. The consumer declares it.
    queue = build_topology(broker_namespace).queue_for("notifications")
    with Connection(role_urls["relay"]) as connection, pytest.raises(AccessRefused, match="ACCESS_REFUSED"):
        queue(connection.channel()).queue_declare()


def test_the_consumers_user_may_publish_only_dead_letters(role_urls, topology, broker_channel):
    dead_letter_queue = topology.dead_letter_queue_for("notifications")

    publish_confirmed(
        role_urls["consumer"],
        b"refused",
        exchange=topology.dead_letter_exchange.name,
        routing_key=dead_letter_queue.routing_key,
    )
    with pytest.raises(AccessRefused, match="ACCESS_REFUSED"):
        publish_confirmed(
            role_urls["consumer"], b"x", exchange="", routing_key=topology.queue_for("notifications").name
        )

    assert wait_until(lambda: queue_depth(broker_channel, dead_letter_queue) == 1)


def test_another_team_binds_a_queue_of_its_own_to_our_events(role_urls, topology, broker_namespace):
    events = Exchange(topology.events.name, type="topic", durable=True)
    queue = Queue(f"{broker_namespace}{TEAM}.messages", exchange=events, routing_key="message.*", auto_delete=True)
    with Connection(role_urls["team"]) as connection:
        channel = connection.channel()
        bound = queue(channel)
        bound.queue_declare()
        bound.queue_bind()
        publish_confirmed(role_urls["relay"], b"{}", exchange=events.name, routing_key="message.created")

        received = []
        Consumer(channel, queues=[bound], on_message=received.append, auto_declare=False).consume()
        wait_until(lambda: drained(connection) or received, what="our event on the team's queue")
        assert received[0].body == b"{}"
        with pytest.raises(AccessRefused, match="ACCESS_REFUSED"):
            Queue(f"{broker_namespace}messaging.spy", exchange=events)(connection.channel()).queue_declare()


@pytest.mark.django_db(transaction=True)
def test_messages_flow_end_to_end_with_one_user_per_role_on_an_undeclared_broker(
    role_urls, alice, bob, spawn_worker, broker_namespace, settings
):
    # Nothing declared beforehand: the relay declares its exchange, the consumer its queues. The
    # consumer starts first and waits out the missing exchange it binds to.
    with broker_connection() as connection:
        delete_topology(connection.channel(), build_topology(broker_namespace))
    roles = {"RELAY_BROKER_URL": role_urls["relay"], "CONSUMER_BROKER_URL": role_urls["consumer"]}
    consumer = spawn_worker("consume_notifications", env={**roles, "CONSUMER_MAX_BACKOFF_SECONDS": "0.5"})
    wait_until(lambda: "NOT_FOUND" in consumer.log_path.read_text(), timeout=30, what="no exchange to bind to")
    spawn_worker("relay", env=roles)
    message = Message.objects.create(sender=alice, receiver=bob, content="through split users")

    notification = wait_until(lambda: Notification.objects.filter(message=message).first(), timeout=60)
    assert notification.title == "New message from alice"
    Message.objects.filter(pk=message.pk).mark_read()
    wait_until(lambda: Notification.objects.get(pk=notification.pk).is_read, timeout=30, what="the read")
    assert "ACCESS_REFUSED" not in consumer.log_path.read_text()

    # The replay's user republishes to the consumer's queue; the inbox absorbs what it applied.
    settings.REPLAY_BROKER_URL = role_urls["replay"]
    call_command("outbox_replay", "--consumer", "notifications", stdout=io.StringIO())
    wait_until(lambda: "consumer.duplicate_absorbed" in consumer.log_path.read_text(), what="the replay absorbed")
    assert Notification.objects.filter(message=message).count() == 1

    # The consumer's user dead-letters what it refuses, with the reason.
    topology = build_topology(broker_namespace)
    with broker_connection() as connection:
        channel = connection.channel()
        Producer(channel).publish(b"poison", exchange=topology.events.name, routing_key="message.created")
        dead_letter_queue = topology.dead_letter_queue_for("notifications")
        wait_until(lambda: queue_depth(channel, dead_letter_queue) == 1, timeout=30, what="the poison dead-lettered")
    assert "dead_letter_publish_failed" not in consumer.log_path.read_text()


@pytest.mark.django_db
def test_the_replay_users_replay_to_the_events_exchange_is_confirmed(role_urls, topology, alice, bob, settings):
    Message.objects.create(sender=alice, receiver=bob, content="again")
    relay_pending_events()
    settings.REPLAY_BROKER_URL = role_urls["replay"]

    call_command("outbox_replay", stdout=io.StringIO())

    with broker_connection() as connection:
        assert len(get_messages(connection.channel(), topology.queue_for("notifications"), expected=2)) == 2
    assert OutboxEvent.objects.count() == 1


def test_the_consumers_user_declares_and_reads_its_partitions_fed_by_the_relays_publishes(
    role_urls, broker_namespace, broker_channel, settings
):
    # The namespace's clean-up deletes the topology of this count: the partitions too.
    settings.CONSUMER_PARTITIONS = 3
    partitioned = build_topology(broker_namespace, partitions=3)
    partitions = partitioned.partitions_for("notifications")
    with Connection(role_urls["relay"]) as connection:
        declare_events_exchange(connection.channel(), partitioned)
    with Connection(role_urls["consumer"]) as connection:
        declare_consumer_queues(connection.channel(), partitioned, "notifications")

    with Connection(role_urls["relay"], transport_options={"confirm_publish": True}) as connection:
        producer = Producer(connection.channel())
        for aggregate in ("a", "b", "c", "d"):
            producer.publish(
                b"{}",
                exchange=partitioned.events.name,
                routing_key="message.created",
                headers={AGGREGATE_ID_HEADER: aggregate},
                retry=False,
                declare=[],
            )
    depths = lambda: [queue_depth(broker_channel, queue) for queue in partitions.queues]  # noqa: E731
    wait_until(lambda: sum(depths()) == 4, what="four events in the partitions")
    with Connection(role_urls["consumer"]) as connection:
        for queue, depth in zip(partitions.queues, depths(), strict=True):
            if depth:
                assert len(get_messages(connection.channel(), queue, expected=depth)) == depth
    with Connection(role_urls["relay"]) as connection:
        consumer = Consumer(connection.channel(), queues=[partitions.queues[0]], auto_declare=False)
        with pytest.raises(AccessRefused, match="ACCESS_REFUSED"):
            consumer.consume()
            connection.drain_events(timeout=5)
