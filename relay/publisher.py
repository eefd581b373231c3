"""Which publisher moves events to the configured broker: the one place that chooses.

RabbitMQ gets `ConfirmingPublisher` (publisher confirms, `mandatory` returns); a serverless
kombu transport gets `LocalPublisher` (stored when the publish returns, bindings looked up
first). Both keep the same contract, `Publisher`, so the relay and a replay (`outbox_replay`,
the admin's replay action) run the same code on either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from outbox.broker import broker_role, declare_events_exchange, declare_topology, is_virtual_transport
from outbox.envelope import OutgoingEvent
from relay.amqp_publisher import ConfirmingPublisher, Declare, PublishOutcome
from relay.filesystem_publisher import LocalPublisher


class Publisher(Protocol):
    """What the relay and a replay need of a publisher."""

    @property
    def broker(self) -> str: ...

    def connect(self) -> None: ...

    def close(self) -> None: ...

    def heartbeat(self) -> None: ...

    def publish_batch(
        self, events: Sequence[OutgoingEvent], *, to_queue: str | None = None, to_exchange: str | None = None
    ) -> PublishOutcome:
        """Publish `events` in order; with `to_queue`, to that one queue through the default
        exchange (a replay for one consumer), where an unknown queue fails every event; with
        `to_exchange`, to that exchange instead of the events exchange (a replay for one
        partitioned consumer, through its hash exchange)."""
        ...


def build_publisher(url: str | None = None, *, declare: Declare | None = declare_topology) -> Publisher:
    """The publisher for the broker at `url` (default `settings.BROKER_URL`).

    `declare` is what it declares on RabbitMQ when it connects; a serverless transport has no
    users, and its publisher declares the whole topology.
    """
    if is_virtual_transport(url):
        return LocalPublisher(url=url)
    return ConfirmingPublisher(url=url, declare=declare)


def relay_publisher() -> Publisher:
    """The relay's publisher, on `RELAY_BROKER_URL`: with that user it declares only the events exchange."""
    role = broker_role("RELAY_BROKER_URL")
    return build_publisher(role.url, declare=declare_events_exchange if role.own_user else declare_topology)


def replay_publisher() -> Publisher:
    """A replay's publisher, on `REPLAY_BROKER_URL`: that user only publishes, so it declares nothing."""
    role = broker_role("REPLAY_BROKER_URL")
    return build_publisher(role.url, declare=None if role.own_user else declare_topology)
