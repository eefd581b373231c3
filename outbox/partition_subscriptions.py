"""One consumer process's subscriptions to the partitions it leases: one AMQP channel each.

A partition's channel opens when its lease is taken and closes when it is released, before the
lease's lock is (see outbox/partition_leases.py): closing the channel hands its unacknowledged
deliveries back to the queue, so the next owner receives them in order.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

from kombu import Consumer

from outbox.partition_leases import PartitionLeases
from outbox.partition_topology import Partitions

logger = logging.getLogger(__name__)


class PartitionSubscriptions:
    """Channels on `connection`, one per leased partition of `partitions`, feeding `on_message`."""

    def __init__(
        self,
        connection,
        partitions: Partitions,
        *,
        lease_group: str,
        on_message: Callable,
        prefetch: int,
        rebalance_seconds: float,
    ) -> None:
        self.connection = connection
        self.partitions = partitions
        self.on_message = on_message
        self.prefetch = prefetch
        self.rebalance_seconds = rebalance_seconds
        self.channels: dict[int, object] = {}
        self._next_rebalance = 0.0
        self.leases = PartitionLeases(
            lease_group, partitions.count, on_acquire=self._subscribe, on_release=self._unsubscribe
        )

    def rebalance_if_due(self) -> set[int]:
        """Rebalance the leases when `rebalance_seconds` have passed; return the partitions held."""
        now = time.monotonic()
        if now >= self._next_rebalance:
            self._next_rebalance = now + self.rebalance_seconds
            self.leases.rebalance()
        return set(self.channels)

    def close(self) -> None:
        """Close every partition's channel, then give up the leases."""
        self.leases.close()
        for partition in list(self.channels):
            self._unsubscribe(partition)

    def _subscribe(self, partition: int) -> None:
        channel = self.connection.channel()
        consumer = Consumer(
            channel,
            queues=[self.partitions.queues[partition]],
            on_message=self.on_message,
            accept=None,
            auto_declare=False,
        )
        consumer.qos(prefetch_count=self.prefetch)
        consumer.consume()
        self.channels[partition] = channel
        logger.info("consumer.partition_taken partition=%d", partition)

    def _unsubscribe(self, partition: int) -> None:
        channel = self.channels.pop(partition, None)
        if channel is None:
            return
        # A channel that fails to close is gone with its connection; its deliveries requeue.
        with contextlib.suppress(Exception):
            channel.close()
        logger.info("consumer.partition_released partition=%d", partition)
