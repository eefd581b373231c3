"""A consumer's queue split into N partition queues behind a consistent-hash exchange.

`<queue>.partitions` (type `x-consistent-hash`, from the `rabbitmq_consistent_hash_exchange`
plugin) is bound from the events exchange with the consumer's own binding keys and hashes on the
`aggregate-id` header the relay sets on every publish, so every event of one aggregate lands on
one of `<queue>.p0` … `<queue>.p<N-1>`. Each partition queue takes the consumer queue's arguments
(quorum, single active consumer, dead-letter exchange, delivery limit). Foreign consumers bind to
the events exchange themselves and never see the hash exchange.

Changing N would move aggregates to other partitions while older events still wait in the old
ones, so a consumer refuses a broker whose partitions differ from its setting (`TopologyMismatch`);
docs/operations.md gives the procedure.
"""

from __future__ import annotations

from dataclasses import dataclass

from amqp.exceptions import NotFound
from kombu import Exchange, Queue

from outbox.envelope import AGGREGATE_ID_HEADER
from outbox.worker import WorkerRefused

# Every partition queue binds with the same weight: the ring gives each an equal share.
PARTITION_WEIGHT = "1"


class TopologyMismatch(WorkerRefused):
    """The broker's partitions are not the ones this consumer is configured for.

    Checked at every connect, so a consumer that reconnects to a broker set up for another count
    since it started stops there too, before it consumes anything.
    """


@dataclass(frozen=True)
class Partitions:
    """The hash exchange and the partition queues of one consumer queue."""

    exchange: Exchange
    queues: tuple[Queue, ...]
    binding_keys: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.queues)


def partition_name(queue_name: str, partition: int) -> str:
    """The name of partition `partition` of `queue_name`."""
    return f"{queue_name}.p{partition}"


def partitions_of(queue: Queue, events: Exchange, binding_keys: list[str], count: int) -> Partitions:
    """The partitions of consumer queue `queue`, fed from `events` through `binding_keys`."""
    if count < 1:
        raise ValueError("a consumer needs at least one partition")
    exchange = Exchange(
        f"{queue.name}.partitions",
        type="x-consistent-hash",
        durable=True,
        arguments={"hash-header": AGGREGATE_ID_HEADER},
    )
    queues = tuple(
        Queue(
            partition_name(queue.name, partition),
            exchange=exchange,
            routing_key=PARTITION_WEIGHT,
            durable=True,
            queue_arguments=dict(queue.queue_arguments or {}),
        )
        for partition in range(count)
    )
    return Partitions(exchange=exchange, queues=queues, binding_keys=tuple(binding_keys))


def declare_partitions(channel, partitions: Partitions, events: Exchange) -> None:
    """Declare the hash exchange, declare and bind every partition queue, then bind it from `events`.

    The last partition first and `events` last: a consumer checking the count meanwhile
    (`check_partitions`) never finds `p0` without the last one, and no event is hashed over a
    ring that still lacks some partitions, which would place one aggregate's events on two.
    """
    exchange = partitions.exchange(channel)
    exchange.declare()
    for queue in reversed(partitions.queues):
        bound = queue(channel)
        bound.queue_declare()
        bound.queue_bind()
    for key in partitions.binding_keys:
        exchange.bind_to(events.name, routing_key=key)


def check_partitions(connection, partitions: Partitions) -> None:
    """Raise `TopologyMismatch` when the broker's partition queues are not this consumer's count.

    None of them existing is a first start. `<queue>.p<N>` existing means the broker was set up
    for more partitions; `<queue>.p0` existing without `<queue>.p<N-1>` means fewer: either way
    the hash ring would send some aggregates' events elsewhere than their earlier ones.
    """
    first, last = partitions.queues[0].name, partitions.queues[-1].name
    beyond = partition_name(first.removesuffix(".p0"), partitions.count)
    if _exists(connection, beyond) or (_exists(connection, first) and not _exists(connection, last)):
        raise TopologyMismatch(
            f"the broker's partition queues of {first.removesuffix('.p0')!r} are not "
            f"{partitions.count} (CONSUMER_PARTITIONS); stop every consumer, let the partitions "
            "drain, delete them and start again (docs/operations.md, 'Changing the number of "
            "partitions')"
        )


def _exists(connection, queue_name: str) -> bool:
    # A passive declare of a missing queue closes its channel: one channel per probe.
    channel = connection.channel()
    try:
        Queue(queue_name)(channel).queue_declare(passive=True)
    except NotFound:
        return False
    finally:
        if channel.is_open:
            channel.close()
    return True
