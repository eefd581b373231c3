"""Publishing a batch of events to RabbitMQ with publisher confirms.

A publish is safe only once the broker has confirmed it. Waiting for each confirm in turn costs
a round trip per event (kombu's `confirm_publish`), so the batch is published in one go on a
channel in confirm mode and the acks, nacks and returns are collected until every delivery tag
is settled. Every event is published `mandatory`: one that no queue is bound for comes back as
a `basic.return` and is reported failed, never confirmed.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import amqp
from django.conf import settings

from outbox.broker import (
    Topology,
    broker_connection,
    declare_topology,
    describe_broker,
    load_topology,
    serve_heartbeats,
)
from outbox.envelope import OutgoingEvent, amqp_properties, encode_event
from outbox.worker import BrokerUnavailable
from relay.amqp_frames import FrameWriter

logger = logging.getLogger(__name__)


# What py-amqp raises when a property, header or short string (over 255 bytes) cannot be encoded.
UNENCODABLE = (TypeError, ValueError, struct.error, amqp.exceptions.FrameSyntaxError)


# What a publisher declares when it connects: the whole topology, only the exchange its user
# may declare, or nothing (None) for a user that may only publish.
Declare = Callable[[object, Topology], None]


__all__ = ["UNENCODABLE", "BasePublisher", "BrokerUnavailable", "ConfirmingPublisher", "PublishOutcome"]


@dataclass
class PublishOutcome:
    """Which events of a batch the broker confirmed and why the others failed."""

    confirmed: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)


class BasePublisher:
    """What every publisher shares: where it publishes, what it refuses, its one connection."""

    def __init__(
        self,
        *,
        url: str | None = None,
        topology: Topology | None = None,
        source: str | None = None,
        declare: Declare | None = declare_topology,
    ) -> None:
        self._url = url or settings.BROKER_URL
        self._declare = declare
        self._topology = topology or load_topology()
        self._source = source or settings.OUTBOX_EVENT_SOURCE
        self._schema_base_url = settings.EVENT_SCHEMA_BASE_URL
        self._max_bytes = settings.OUTBOX_MAX_EVENT_BYTES
        self._connection = None
        self._channel = None

    @property
    def broker(self) -> str:
        return describe_broker(self._url)

    @property
    def is_connected(self) -> bool:
        return self._channel is not None

    def connect(self) -> None:
        """Open the connection and a channel ready to publish, declaring what it declares first."""
        if self._channel is not None:
            return
        connection = broker_connection(self._url)
        try:
            connection.connect()
            channel = connection.channel()
            if self._declare is not None:
                self._declare(channel, self._topology)
            self._prepare(channel)
        except (*connection.connection_errors, *connection.channel_errors, OSError) as exc:
            _close_quietly(connection)
            raise BrokerUnavailable(f"cannot connect to {self.broker}: {_describe(exc)}") from exc
        self._connection, self._channel = connection, channel

    def _prepare(self, channel) -> None:
        """Make a freshly opened channel ready for this publisher's kind of publishing."""

    def close(self) -> None:
        """Close the connection; the next batch reconnects."""
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            _close_quietly(connection)

    def _size_refusal(self, body: bytes) -> str | None:
        if len(body) > self._max_bytes:
            return f"event is {len(body)} bytes, over the {self._max_bytes}-byte limit"
        return None


class ConfirmingPublisher(BasePublisher):
    """Publishes event batches to the topology's exchange and waits for the broker's confirms."""

    def __init__(
        self,
        *,
        url: str | None = None,
        topology: Topology | None = None,
        confirm_timeout: float | None = None,
        source: str | None = None,
        declare: Declare | None = declare_topology,
    ) -> None:
        super().__init__(url=url, topology=topology, source=source, declare=declare)
        self.confirm_timeout = confirm_timeout or settings.RELAY_CONFIRM_TIMEOUT_SECONDS
        self._next_tag = 1
        # Per batch: delivery tag -> event id still awaiting the broker, and the verdicts.
        self._unsettled: dict[int, int] = {}
        self._nacked: set[int] = set()
        self._returned: dict[str, str] = {}

    def _prepare(self, channel) -> None:
        # Confirm mode, and the callbacks that collect the broker's verdicts on each publish.
        channel.confirm_select()
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        channel.events["basic_return"].add(self._on_return)
        self._next_tag = 1

    def heartbeat(self) -> None:
        """Keep an idle connection alive (`outbox.broker.serve_heartbeats`); call it while waiting."""
        if self._connection is None:
            return
        try:
            serve_heartbeats(self._connection)
        except (*self._connection.connection_errors, OSError) as exc:
            self.close()
            raise BrokerUnavailable(f"lost the connection to {self.broker}: {_describe(exc)}") from exc

    def publish_batch(
        self, events: Sequence[OutgoingEvent], *, to_queue: str | None = None, to_exchange: str | None = None
    ) -> PublishOutcome:
        """Publish `events` in order and return once the broker has settled every one of them.

        `to_queue` sends them to that one queue instead (through the default exchange, whose
        routing key is a queue's name): a replay for one consumer. `to_exchange` sends them to
        that exchange with their type as routing key: a replay for one partitioned consumer,
        through its hash exchange, so that each lands on its aggregate's partition. Raises `BrokerUnavailable`
        when the connection fails or the confirms do not arrive in time: then none of the batch
        may be marked published.
        """
        self.connect()
        self._unsettled.clear()
        self._nacked.clear()
        self._returned.clear()
        tags: dict[int, OutgoingEvent] = {}
        exchange = to_exchange or (self._topology.events.name if to_queue is None else "")
        outcome = PublishOutcome()
        writer = self._batch_writer()
        try:
            for event in events:
                body = encode_event(event, source=self._source, schema_base_url=self._schema_base_url)
                if refusal := self._size_refusal(body):
                    outcome.failed[event.id] = refusal
                    continue
                try:
                    writer.publish(
                        exchange=exchange,
                        routing_key=to_queue or event.event_type,
                        mandatory=True,
                        properties=amqp_properties(event),
                        body=body,
                    )
                except UNENCODABLE as exc:
                    # Refused before anything was written: nothing of this event reached the wire.
                    outcome.failed[event.id] = f"event headers or type cannot be encoded for AMQP: {type(exc).__name__}"
                    continue
                tags[self._next_tag] = event
                self._unsettled[self._next_tag] = event.id
                self._next_tag += 1
            writer.flush()
            self._wait_for_confirms()
        except (*self._connection.connection_errors, *self._connection.channel_errors, OSError) as exc:
            self.close()
            raise BrokerUnavailable(f"publishing to {self.broker} failed: {_describe(exc)}") from exc

        if not self._nacked and not self._returned:
            outcome.confirmed.extend(event.id for event in tags.values())
            return outcome
        for tag, event in tags.items():
            if tag in self._nacked:
                outcome.failed[event.id] = "the broker refused the event (basic.nack)"
            elif str(event.event_id) in self._returned:
                outcome.failed[event.id] = self._returned[str(event.event_id)]
            else:
                outcome.confirmed.append(event.id)
        return outcome

    def _batch_writer(self) -> FrameWriter:
        # Packed and written a few dozen events at a time (relay.amqp_frames says why).
        return FrameWriter(self._channel)

    def _wait_for_confirms(self) -> None:
        deadline = time.monotonic() + self.confirm_timeout
        while self._unsettled:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                # Which of the batch the broker took is now unknown: start a new channel.
                self.close()
                raise BrokerUnavailable(
                    f"{len(self._unsettled)} confirms from {self.broker} did not arrive within "
                    f"{self.confirm_timeout:.0f}s"
                )
            try:
                self._connection.drain_events(timeout=remaining)
            except TimeoutError:
                continue

    def _settle(self, delivery_tag: int, multiple: bool) -> list[int]:
        if not multiple:
            return [delivery_tag] if self._unsettled.pop(delivery_tag, None) is not None else []
        settled = [tag for tag in self._unsettled if tag <= delivery_tag]
        for tag in settled:
            del self._unsettled[tag]
        return settled

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._nacked.update(self._settle(delivery_tag, multiple))

    def _on_return(self, exc, exchange: str, routing_key: str, message) -> None:
        # RabbitMQ sends basic.return before the ack of the same message, so by the time the
        # batch is settled every unroutable event has been seen here.
        message_id = message.properties.get("message_id", "")
        self._returned[message_id] = (
            f"unroutable: no queue is bound to exchange {exchange!r} for routing key {routing_key!r} "
            f"({getattr(exc, 'reply_text', exc)})"
        )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _close_quietly(connection) -> None:
    try:
        connection.release()
    except Exception:
        logger.debug("relay.broker_close_failed", exc_info=True)
