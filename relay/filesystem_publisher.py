"""Publishing a batch of events on a serverless kombu transport (the bare-machine default).

A virtual transport stores a message when the publish call returns, so there are no confirms to
wait for: an event is confirmed once `Producer.publish` returned. Nor are there `mandatory`
returns: kombu drops a message no binding routes (or sends it to a catch-all queue). So each
event's routing key is looked up in the exchange's binding table first, and one no queue is
bound for is reported failed, as RabbitMQ's `basic.return` makes `ConfirmingPublisher` report it.
The same goes for a replay to one queue through the default exchange: kombu writes to any queue
name it is given, so the queue is looked up first and a missing one reported failed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from kombu import Exchange, Producer
from kombu.utils.json import dumps

from outbox.broker import Topology
from outbox.envelope import OutgoingEvent, amqp_properties, encode_event
from relay.amqp_publisher import BasePublisher, BrokerUnavailable, PublishOutcome

logger = logging.getLogger(__name__)

_DEFAULT_EXCHANGE = Exchange("")


class LocalPublisher(BasePublisher):
    """Publishes event batches through kombu's Producer on a virtual transport; same contract as
    `ConfirmingPublisher`."""

    def __init__(self, *, url: str | None = None, topology: Topology | None = None, source: str | None = None) -> None:
        super().__init__(url=url, topology=topology, source=source)
        self._producer: Producer | None = None

    def _prepare(self, channel) -> None:
        # No confirm mode on a virtual transport: a publish is stored when it returns.
        self._producer = Producer(channel, exchange=self._topology.events, auto_declare=False)

    def close(self) -> None:
        """Close the connection; the next batch reconnects."""
        self._producer = None
        super().close()

    def heartbeat(self) -> None:
        """Nothing to keep alive: there is no server connection."""

    def publish_batch(
        self, events: Sequence[OutgoingEvent], *, to_queue: str | None = None, to_exchange: str | None = None
    ) -> PublishOutcome:
        """Publish `events` in order; each one is stored (confirmed) when its publish returns.

        `to_queue` sends them to that one queue instead (through the default exchange): a replay
        for one consumer; a queue no binding names fails every event. Raises `BrokerUnavailable`
        when the transport fails mid-batch: the events published before it are stored, but none
        of the batch is marked published (consumers dedupe). `to_exchange` is refused: the
        embedded broker has no partitions to route to.
        """
        if to_exchange is not None:
            raise ValueError("the embedded broker has no hash exchange: its consumers have one queue")
        self.connect()
        outcome = PublishOutcome()
        routable: dict[str, bool] = {}
        try:
            # A replay to one queue is refused whole when that queue is not there.
            queue_refusal = None if to_queue is None else self._queue_refusal(to_queue)
            for event in events:
                failure = self._routing_refusal(event, routable) if to_queue is None else queue_refusal
                failure = failure or self._encoding_refusal(event)
                if failure is None:
                    failure = self._publish(event, to_queue)
                if failure is None:
                    outcome.confirmed.append(event.id)
                else:
                    outcome.failed[event.id] = failure
        except (*self._connection.connection_errors, *self._connection.channel_errors, OSError) as exc:
            self.close()
            raise BrokerUnavailable(f"publishing to {self.broker} failed: {type(exc).__name__}: {exc}") from exc
        return outcome

    # The refusals are checked before anything is written: a message file is never left half-written.

    def _routing_refusal(self, event: OutgoingEvent, routable: dict[str, bool]) -> str | None:
        exchange = self._topology.events.name
        if event.event_type not in routable:
            routable[event.event_type] = bool(self._bound_queues(exchange, event.event_type))
        if not routable[event.event_type]:
            return f"unroutable: no queue is bound to exchange {exchange!r} for routing key {event.event_type!r}"
        return None

    def _queue_refusal(self, queue: str) -> str | None:
        # Through the default exchange the transport writes to any queue name it is given, and a
        # file no consumer reads is a silent drop: ask first, as RabbitMQ's `mandatory` would.
        # (The filesystem transport finds a queue when an exchange binds it; see its module.)
        try:
            self._channel.queue_declare(queue=queue, passive=True)
        except self._connection.channel_errors:
            return f"unroutable: no queue {queue!r} for the default exchange to deliver to"
        return None

    @staticmethod
    def _encoding_refusal(event: OutgoingEvent) -> str | None:
        try:
            dumps(event.headers)
        except (TypeError, ValueError) as exc:
            return f"event headers cannot be encoded for the transport: {type(exc).__name__}"
        return None

    def _bound_queues(self, exchange: str, routing_key: str) -> set[str]:
        # The exchange's binding table as the transport routes with it (kept in a shared
        # folder by the filesystem transport, so bindings other processes declared count too).
        channel = self._channel
        return set(channel.typeof(exchange).lookup(channel.get_table(exchange), exchange, routing_key, None))

    def _publish(self, event: OutgoingEvent, to_queue: str | None) -> str | None:
        body = encode_event(event, source=self._source, schema_base_url=self._schema_base_url)
        if refusal := self._size_refusal(body):
            return refusal
        properties = amqp_properties(event)
        self._producer.publish(
            body,
            # The default exchange (its name is empty) routes by queue name. Passed as an
            # Exchange: kombu reads an empty name as "the producer's own exchange".
            exchange=_DEFAULT_EXCHANGE if to_queue is not None else None,
            routing_key=to_queue or event.event_type,
            headers=properties.pop("application_headers"),
            content_type=properties.pop("content_type"),
            content_encoding=properties.pop("content_encoding"),
            delivery_mode=properties.pop("delivery_mode"),
            retry=False,
            **properties,
        )
        return None
