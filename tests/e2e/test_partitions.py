"""The notifications consumer's partitions on the real broker: one aggregate, one partition; mismatch refused."""

import uuid

import pytest
from kombu import Producer

from messaging.topology import NOTIFICATIONS_CONSUMER
from outbox.broker import broker_connection
from outbox.envelope import AGGREGATE_ID_HEADER
from outbox.partition_topology import (
    TopologyMismatch,
    check_partitions,
    declare_partitions,
    partitions_of,
)
from tests.helpers import get_messages, queue_depth, wait_until


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
