"""Which publisher moves events to the configured broker: the one place that chooses.

RabbitMQ gets `ConfirmingPublisher` (publisher confirms, `mandatory` returns); a serverless
kombu transport gets `LocalPublisher` (stored when the publish returns, bindings looked up
first). Both keep the same contract, `Publisher`, so the relay and a replay (`outbox_replay`,
the admin's replay action) run the same code on either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from outbox.broker import is_virtual_transport
from outbox.envelope import OutgoingEvent
from relay.amqp_publisher import ConfirmingPublisher, PublishOutcome
from relay.filesystem_publisher import LocalPublisher


class Publisher(Protocol):
    """What the relay and a replay need of a publisher."""

    @property
    def broker(self) -> str: ...

    def connect(self) -> None: ...

    def close(self) -> None: ...

    def heartbeat(self) -> None: ...

    def publish_batch(self, events: Sequence[OutgoingEvent], *, to_queue: str | None = None) -> PublishOutcome:
        """Publish `events` in order; with `to_queue`, to that one queue through the default
        exchange (a replay for one consumer), where an unknown queue fails every event."""
        ...


def build_publisher(url: str | None = None) -> Publisher:
    """The publisher for the broker at `url` (default `settings.BROKER_URL`)."""
    if is_virtual_transport(url):
        return LocalPublisher(url=url)
    return ConfirmingPublisher(url=url)
