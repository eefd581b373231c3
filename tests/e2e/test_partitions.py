"""The notifications consumer's partitions on the real broker: one aggregate, one partition; mismatch refused."""

import contextlib
import uuid
from urllib.parse import urlsplit

import pytest
from amqp.exceptions import NotFound
from django.conf import settings
from kombu import Producer

from messaging.topology import NOTIFICATIONS_CONSUMER, build_topology
from outbox.broker import broker_connection, declare_consumer_queues, declare_events_exchange, declare_topology
from outbox.envelope import AGGREGATE_ID_HEADER
from outbox.partition_subscriptions import PartitionSubscriptions
from outbox.partition_topology import (
    TopologyMismatch,
    check_partitions,
    declare_partitions,
    partitions_of,
)
from tests.helpers import get_messages, publish_confirmed, queue_depth, wait_until
from tooling.faults.tcp_proxy import TcpProxy


def partitions_for(topology, count):
    return partitions_of(
        topology.queue_for(NOTIFICATIONS_CONSUMER),
        topology.events,
        topology.binding_keys_for(NOTIFICATIONS_CONSUMER),
        count,
    )


@pytest.fixture
def declared(topology):
    """Declare the partitions of `count` on the broker; delete every one declared afterwards."""
    made = []

    def declare(count):
        partitions = partitions_for(topology, count)
        with broker_connection() as conn:
            declare_partitions(conn.channel(), partitions, topology.events)
        made.append(partitions)
        return partitions

    yield declare
    with broker_connection() as conn:
        channel = conn.channel()
        for partitions in made:
            for queue in partitions.queues:
                queue(channel).delete()
            partitions.exchange(channel).delete()


def test_every_event_of_one_aggregate_lands_on_one_partition(topology, declared):
    partitions = declared(4)
    aggregates = [str(uuid.uuid4()) for _ in range(40)]
    with broker_connection(transport_options={"confirm_publish": True}) as conn:
        producer = Producer(conn.channel())
        for round_ in range(3):
            for aggregate in aggregates:
                producer.publish(
                    f"{aggregate}:{round_}".encode(),
                    exchange=topology.events,
                    routing_key="message.created",
                    headers={AGGREGATE_ID_HEADER: aggregate},
                )
        channel = conn.channel()
        total = len(aggregates) * 3
        wait_until(
            lambda: sum(queue_depth(channel, q) for q in partitions.queues) == total,
            timeout=10,
            what="every event in a partition",
        )
        seen: dict[str, set[int]] = {}
        rounds: dict[str, list[int]] = {}
        for index, queue in enumerate(partitions.queues):
            depth = queue_depth(channel, queue)
            for message in get_messages(conn.channel(), queue, expected=depth) if depth else []:
                aggregate, round_ = message.body.decode().split(":")
                seen.setdefault(aggregate, set()).add(index)
                rounds.setdefault(aggregate, []).append(int(round_))
    assert all(len(indexes) == 1 for indexes in seen.values())
    assert all(order == [0, 1, 2] for order in rounds.values())
    assert len(set().union(*seen.values())) > 1, "40 aggregates all hashed to one partition"


def test_other_queues_bound_to_the_events_exchange_still_get_every_event(topology, declared):
    declared(2)
    with broker_connection(transport_options={"confirm_publish": True}) as conn:
        Producer(conn.channel()).publish(
            b"x", exchange=topology.events, routing_key="message.created", headers={AGGREGATE_ID_HEADER: "a"}
        )
        channel = conn.channel()
        wait_until(lambda: queue_depth(channel, topology.queue_for(NOTIFICATIONS_CONSUMER)) == 1, timeout=10)


def test_a_matching_or_fresh_broker_passes_the_check(topology, declared):
    with broker_connection() as conn:
        check_partitions(conn, partitions_for(topology, 4))
    declared(4)
    with broker_connection() as conn:
        check_partitions(conn, partitions_for(topology, 4))


@pytest.mark.parametrize(("existing", "configured"), [(4, 3), (2, 4)])
def test_a_consumer_refuses_a_broker_with_other_partitions(topology, declared, existing, configured):
    declared(existing)
    with broker_connection() as conn, pytest.raises(TopologyMismatch, match="CONSUMER_PARTITIONS"):
        check_partitions(conn, partitions_for(topology, configured))


class Process:
    """One would-be consumer process: its own broker connection, subscriptions and deliveries."""

    def __init__(self, partitions) -> None:
        self.messages: list = []
        self.connection = broker_connection()
        self.connection.connect()
        self.subscriptions = PartitionSubscriptions(
            self.connection,
            partitions,
            lease_group=partitions.exchange.name,
            on_message=self.messages.append,
            prefetch=100,
            rebalance_seconds=0,
        )

    def drain(self) -> None:
        with contextlib.suppress(TimeoutError):
            self.connection.drain_events(timeout=0.05)

    def close(self) -> None:
        self.subscriptions.close()
        self.connection.release()


def publish_for(topology, aggregates) -> None:
    with broker_connection(transport_options={"confirm_publish": True}) as conn:
        producer = Producer(conn.channel())
        for aggregate in aggregates:
            producer.publish(
                aggregate.encode(),
                exchange=topology.events,
                routing_key="message.created",
                headers={AGGREGATE_ID_HEADER: aggregate},
            )


@pytest.mark.django_db(transaction=True)
def test_processes_share_the_partitions_and_a_departed_ones_move_over(topology, declared):
    partitions = declared(4)
    first, second = Process(partitions), Process(partitions)
    try:
        first.subscriptions.rebalance_if_due()
        assert set(first.subscriptions.channels) == {0, 1, 2, 3}
        # The first releases two (channel, then lock) as the second joins; the second takes them.
        wait_until(
            lambda: (
                [p.subscriptions.rebalance_if_due() for p in (second, first, second)][-1]
                and len(first.subscriptions.channels) == len(second.subscriptions.channels) == 2
            ),
            timeout=10,
            what="two partitions each",
        )
        assert not set(first.subscriptions.channels) & set(second.subscriptions.channels)

        aggregates = [str(uuid.uuid4()) for _ in range(40)]
        publish_for(topology, aggregates)

        def delivered() -> bool:
            first.drain()
            second.drain()
            return len(first.messages) + len(second.messages) == len(aggregates)

        wait_until(delivered, timeout=10, what="every event delivered once")
        assert first.messages
        assert second.messages

        # Unacknowledged deliveries of the departed process go back and reach the one left.
        first.close()
        wait_until(lambda: second.subscriptions.rebalance_if_due() == {0, 1, 2, 3}, timeout=10, what="hand-over")
        redelivered = len(first.messages)
        wait_until(
            lambda: (second.drain(), len(second.messages) >= len(aggregates))[1],
            timeout=10,
            what=f"{redelivered} requeued deliveries at the survivor",
        )
        assert sorted(m.body.decode() for m in second.messages) == sorted(aggregates)
    finally:
        for process in (first, second):
            with contextlib.suppress(Exception):
                process.close()


@pytest.mark.django_db(transaction=True)
def test_the_notifications_consumer_applies_events_through_its_partitions(settings, topology, declared, alice, bob):
    from messaging.consumers import NotificationsConsumer
    from messaging.models import Message, Notification
    from tests.helpers import relay_pending_events, run_in_thread

    settings.CONSUMER_PARTITIONS = 4
    settings.CONSUMER_REBALANCE_SECONDS = 0.1
    partitions = declared(4)  # the consumer declares them alike; the fixture deletes them after
    for number in range(12):
        Message.objects.create(sender=alice, receiver=bob, content=f"hello {number}")
    relay_pending_events()
    consumer = NotificationsConsumer(max_backoff=0.2)
    runner = run_in_thread(consumer)
    try:
        wait_until(lambda: Notification.objects.count() == 12, timeout=15, what="12 notifications")
        assert consumer._subscriptions is not None
        assert set(consumer._subscriptions.channels) == {0, 1, 2, 3}
        with broker_connection() as conn:
            channel = conn.channel()
            assert all(queue_depth(channel, q) == 0 for q in partitions.queues)
    finally:
        consumer.stop()
        runner.join(15)
    assert not runner.is_alive()


def _queue_exists(name: str) -> bool:
    with broker_connection() as conn:
        channel = conn.channel()
        try:
            channel.queue_declare(queue=name, passive=True)
        except NotFound:
            return False
        return True


@pytest.mark.parametrize("own_user", [False, True])
def test_partitions_on_declare_the_partitions_instead_of_the_plain_queue(broker_namespace, own_user, settings):
    # The namespace's clean-up deletes the topology of this count: the partitions too.
    settings.CONSUMER_PARTITIONS = 4
    partitioned = build_topology(broker_namespace, partitions=4)
    with broker_connection() as conn:
        channel = conn.channel()
        declare_events_exchange(channel, partitioned)
        if own_user:
            declare_consumer_queues(channel, partitioned, NOTIFICATIONS_CONSUMER)
        else:
            declare_topology(channel, partitioned)
    plain = partitioned.queue_for(NOTIFICATIONS_CONSUMER).name
    assert not _queue_exists(plain)
    assert _queue_exists(partitioned.dead_letter_queue_for(NOTIFICATIONS_CONSUMER).name)
    assert all(_queue_exists(f"{plain}.p{index}") for index in range(4))
    # A dead letter still reaches the dead-letter queue, and events reach the partitions.
    publish_confirmed(partitioned, b"x")
    with broker_connection() as conn:
        channel = conn.channel()
        queues = partitioned.partitions_for(NOTIFICATIONS_CONSUMER).queues
        wait_until(lambda: sum(queue_depth(channel, q) for q in queues) == 1, timeout=10, what="one event")


@pytest.mark.django_db(transaction=True)
def test_the_consumer_command_refuses_to_start_against_other_partitions(topology, declared, spawn_worker):
    declared(4)
    process = spawn_worker("consume_notifications", env={"CONSUMER_PARTITIONS": "3"})

    assert process.wait(timeout=60) != 0
    log = process.log_path.read_text()
    errors = [line for line in log.splitlines() if line.startswith("CommandError:")]
    assert len(errors) == 1, log
    assert "CONSUMER_PARTITIONS" in errors[0]
    assert "Traceback" not in log


@pytest.mark.django_db(transaction=True)
def test_the_consumer_refuses_other_partitions_found_at_a_reconnect_and_exits(topology, declared, spawn_worker):
    partitions = declared(4)
    broker = urlsplit(settings.BROKER_URL)
    proxy = TcpProxy(broker.port or 5672, broker.hostname or "127.0.0.1").start()
    try:
        process = spawn_worker(
            "consume_notifications",
            env={
                "BROKER_URL": proxy.url_for(settings.BROKER_URL),
                "CONSUMER_PARTITIONS": "4",
                "CONSUMER_MAX_BACKOFF_SECONDS": "0.5",
            },
        )
        wait_until(
            lambda: "consumer.partition_taken partition=3" in process.log_path.read_text(), timeout=30, what="all four"
        )
        # Someone sets the broker up for five partitions while the consumer is cut off from it.
        proxy.cut()
        fifth = declared(5).queues[4]
        proxy.restore()
        publish_for(topology, [str(uuid.uuid4()) for _ in range(8)])

        assert process.wait(timeout=30) != 0
    finally:
        proxy.cut()
    log = process.log_path.read_text()
    refusals = [line for line in log.splitlines() if "consumer.refused" in line]
    assert len(refusals) == 1, log
    assert "CONSUMER_PARTITIONS" in refusals[0]
    assert [line for line in log.splitlines() if line.startswith("CommandError:")], log
    assert "Traceback" not in log
    assert "unexpected_error" not in log
    with broker_connection() as conn:
        channel = conn.channel()
        # Nothing consumed after the refusal: all 8 wait in the partitions.
        assert sum(queue_depth(channel, q) for q in (*partitions.queues, fifth)) == 8
