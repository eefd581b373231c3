"""The base of every event consumer: decode, apply exactly once, ack after commit.

A subclass names itself (its inbox key and its queue in the topology) and maps event types to
handlers. For each delivery the base class
- checks the CloudEvents envelope and the data against the registered schema; a malformed or
  unknown event is rejected to the dead-letter queue with a log line, and the loop goes on;
- opens one transaction, records (consumer, event id) in the inbox and runs the handler; a
  duplicate finds its inbox row and changes nothing;
- acks only after that transaction committed: a crash before the ack means a redelivery, which
  the inbox absorbs.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections, transaction
from kombu import Consumer

from outbox.broker import (
    Topology,
    broker_connection,
    declare_topology,
    describe_broker,
    is_virtual_transport,
    load_topology,
)
from outbox.dead_letters import DeadLetterPublisher
from outbox.envelope import ReceivedEvent, decode_event
from outbox.errors import InvalidEventPayload, MalformedEnvelope, UnknownEventType
from outbox.failpoints import failpoint
from outbox.heartbeats import Heartbeat
from outbox.inbox import record_many_in_inbox
from outbox.metrics import ConsumerMetrics
from outbox.outages import OutageTracker
from outbox.schemas import accept_event

logger = logging.getLogger(__name__)

DRAIN_TIMEOUT_SECONDS = 1.0
RETRY_BASE_DELAY_SECONDS = 0.1
# After the first delivery, how long to wait for more before settling the batch: short enough
# to add nothing noticeable to latency, long enough to gather what is already on the wire.
BATCH_GATHER_SECONDS = 0.0005

EventHandler = Callable[[ReceivedEvent], None]


class Outcome(enum.Enum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    DEAD_LETTERED = "dead_lettered"


class DeadLetter(Exception):
    """An event that can never be applied; it goes to the dead-letter queue with this reason."""


class DatabaseUnavailable(Exception):
    """The database dropped the connection while an event was being applied."""


@dataclass
class ConsumerStats:
    """Deliveries settled by this consumer and when the first and the last batch were settled."""

    settled: int = 0
    first_at: float = 0.0
    last_at: float = 0.0


class InboxConsumer:
    """Consumes one queue of the topology; `run()` until `stop()`, `handle_delivery()` is one step."""

    #: The inbox key and the topology's queue name for this consumer.
    name: str = ""
    #: Event type -> the schema versions the handlers read; older ones are upcast to them, newer
    #: ones dead-lettered. A type not named here is taken in every registered version.
    accepted_versions: dict[str, tuple[int, ...]] = {}

    def __init__(
        self,
        *,
        url: str | None = None,
        topology: Topology | None = None,
        prefetch: int | None = None,
        max_backoff: float | None = None,
        using: str = DEFAULT_DB_ALIAS,
    ) -> None:
        if not self.name:
            raise TypeError(f"{type(self).__name__} must set a name")
        self.url = url or settings.BROKER_URL
        self.topology = topology or load_topology()
        self.queue = self.topology.queue_for(self.name)
        self.prefetch = prefetch or settings.CONSUMER_PREFETCH
        self.max_backoff = max_backoff or settings.CONSUMER_MAX_BACKOFF_SECONDS
        self.using = using
        self._stop = threading.Event()
        self._connection = None
        # For benchmarks: stop once the queue has been idle for a drain timeout after work.
        self.exit_when_idle = False
        self.stats = ConsumerStats()
        self.max_deliveries = settings.CONSUMER_MAX_DELIVERIES
        self.retry_max_delay = settings.CONSUMER_RETRY_MAX_DELAY_SECONDS
        self.heartbeat = Heartbeat(f"consumer.{self.name}")
        self._outages = OutageTracker(
            logger, f"consumer.{self.name}", max_backoff=self.max_backoff, on_failure=self.heartbeat.record_error
        )
        self.metrics = ConsumerMetrics(self.name)
        # kombu's virtual transports settle only the delivery tag they are given, `multiple` or not.
        self._acks_multiple = not is_virtual_transport(self.url)
        self._dead_letters = (
            DeadLetterPublisher(
                url=self.url,
                exchange=self.topology.dead_letter_exchange,
                routing_key=self.topology.dead_letter_queue_for(self.name).routing_key,
            )
            if self.topology.dead_letter_exchange is not None
            else None
        )

    def handlers(self) -> dict[str, EventHandler]:
        """Event type -> the function that applies it, inside the inbox transaction."""
        raise NotImplementedError

    # --- one unit of work ---------------------------------------------------------------

    def apply_batch(self, events: list[ReceivedEvent]) -> None:
        """Apply new events in delivery order, inside the inbox transaction.

        Override to apply a batch with fewer queries; the default calls each event's handler.
        """
        handlers = self.handlers()
        for event in events:
            handlers[event.event_type](event)

    def check_delivery(self, body: bytes) -> ReceivedEvent:
        """The event in `body`, its envelope and data checked; raise `DeadLetter` if it is poison."""
        try:
            event = decode_event(body)
        except MalformedEnvelope as exc:
            raise DeadLetter(f"malformed envelope: {exc}") from exc
        if event.event_type not in self.handlers():
            raise DeadLetter(f"unknown event type {event.event_type!r}")
        try:
            return accept_event(event, self.accepted_versions.get(event.event_type))
        except (UnknownEventType, InvalidEventPayload) as exc:
            raise DeadLetter(str(exc)) from exc

    def apply_events(self, events: list[ReceivedEvent]) -> set[uuid.UUID]:
        """Record `events` in the inbox and apply the new ones, in one transaction; their ids."""
        try:
            with transaction.atomic(using=self.using):
                new_ids = record_many_in_inbox(self.name, events, using=self.using)
                # Counted, and the end-to-end latency taken, when this transaction commits (never on rollback).
                transaction.on_commit(lambda: self.metrics.committed(events, new_ids), using=self.using)
                fresh, seen = [], set()
                for event in events:
                    if event.event_id in new_ids and event.event_id not in seen:
                        seen.add(event.event_id)
                        fresh.append(event)
                if fresh:
                    self.apply_batch(fresh)
                    failpoint("consumer.before_commit")
        except (OperationalError, InterfaceError) as exc:
            connections[self.using].close()
            raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}".strip()) from exc
        return new_ids

    def handle_delivery(self, body: bytes) -> Outcome:
        """Apply one delivered body exactly once; raise `DeadLetter` if it never can be."""
        event = self.check_delivery(body)
        return Outcome.APPLIED if self.apply_events([event]) else Outcome.DUPLICATE

    def on_messages(self, messages: list) -> None:
        """Settle a batch of deliveries: poison out, the rest applied in one transaction, one ack."""
        checked = []
        for message in messages:
            try:
                checked.append((message, self.check_delivery(message.body)))
            except DeadLetter as exc:
                self._dead_letter(message, str(exc))
        if not checked:
            return
        while True:
            try:
                new_ids = self.apply_events([event for _, event in checked])
                break
            except DatabaseUnavailable as exc:
                self._wait_out_database_outage(exc)
            except Exception:  # noqa: BLE001 - one bad event must not fail the others: isolate it
                logger.warning(
                    "consumer.batch_failed consumer=%s size=%d retrying_one_by_one=true", self.name, len(checked)
                )
                for message, _ in checked:
                    self.on_message(message)
                return
        self._outages.recovered()
        if new_ids:
            failpoint("consumer.after_commit")
        for message, event in checked:
            if event.event_id not in new_ids:
                logger.info("consumer.duplicate_absorbed consumer=%s message_id=%s", self.name, _message_id(message))
        # One ack for the whole batch; the poison in it is already settled.
        if self._acks_multiple:
            checked[-1][0].ack(multiple=True)
        else:
            for message, _ in checked:
                message.ack()

    def on_message(self, message) -> None:
        """kombu callback: settle the delivery according to what handling it gave."""
        while True:
            try:
                outcome = self.handle_delivery(message.body)
                break
            except DeadLetter as exc:
                self._dead_letter(message, str(exc))
                return
            except DatabaseUnavailable as exc:
                # Not the message's fault. Keep it and retry it here, in order, once the
                # database is back: handing it back to the broker (closing the channel) would
                # return every prefetched delivery, and RabbitMQ may return them reordered.
                self._wait_out_database_outage(exc)
            except Exception as exc:  # noqa: BLE001 - any handler failure is retried, then parked
                self._retry_or_dead_letter(message, exc)
                return
        self._outages.recovered()
        if outcome is Outcome.APPLIED:
            failpoint("consumer.after_commit")
        else:
            logger.info("consumer.duplicate_absorbed consumer=%s message_id=%s", self.name, _message_id(message))
        message.ack()
        logger.debug("consumer.%s consumer=%s message_id=%s", outcome.value, self.name, _message_id(message))

    def _wait_out_database_outage(self, exc: DatabaseUnavailable) -> None:
        delay = self._outages.began(exc)
        deadline = time.monotonic() + delay
        while (remaining := deadline - time.monotonic()) > 0:
            if self._stop.wait(min(remaining, DRAIN_TIMEOUT_SECONDS)):
                # Stopping mid-outage: unacked deliveries go back to the broker with the channel.
                raise exc
            if self._connection is not None:
                self._connection.heartbeat_check()

    def _retry_or_dead_letter(self, message, exc: Exception) -> None:
        # Quorum queues count deliveries; a handler failing for a reason we did not foresee is
        # retried a few times with a growing, bounded delay, then parked so the queue flows.
        deliveries = int((message.headers or {}).get("x-delivery-count", 0)) + 1
        if deliveries >= self.max_deliveries:
            logger.exception(
                "consumer.handler_failed consumer=%s message_id=%s delivery=%d giving_up=true",
                self.name,
                _message_id(message),
                deliveries,
            )
            self._dead_letter(message, f"handler failed on {deliveries} deliveries: {type(exc).__name__}")
            return
        delay = min(RETRY_BASE_DELAY_SECONDS * 2 ** (deliveries - 1), self.retry_max_delay)
        logger.warning(
            "consumer.handler_failed consumer=%s message_id=%s delivery=%d retry_in=%.2fs error=%s",
            self.name,
            _message_id(message),
            deliveries,
            delay,
            type(exc).__name__,
        )
        self._stop.wait(delay)
        message.requeue()

    def _dead_letter(self, message, reason: str) -> None:
        self.metrics.dead_lettered()
        logger.warning(
            "consumer.dead_lettered consumer=%s message_id=%s reason=%s", self.name, _message_id(message), reason
        )
        if self._dead_letters is not None:
            try:
                self._dead_letters.publish(message, reason=reason, consumer=self.name)
            except Exception as exc:  # noqa: BLE001 - fall back to the broker's own dead-lettering
                logger.warning(
                    "consumer.dead_letter_publish_failed consumer=%s error=%s fallback=reject",
                    self.name,
                    type(exc).__name__,
                )
                self._dead_letters.close()
            else:
                message.ack()
                return
        message.reject(requeue=False)

    # --- loop ---------------------------------------------------------------------------

    def run(self) -> None:
        """Consume until `stop()`, reconnecting with backoff through broker or database outages."""
        logger.info(
            "consumer.started consumer=%s queue=%s broker=%s prefetch=%d",
            self.name,
            self.queue.name,
            describe_broker(self.url),
            self.prefetch,
        )
        while not self._stop.is_set():
            delay = 0.0
            try:
                self._consume_until_stopped()
            except DatabaseUnavailable as exc:
                delay = self._outages.began(exc)
            except Exception as exc:
                if self._connection is not None and isinstance(
                    exc, (*self._connection.connection_errors, *self._connection.channel_errors, OSError)
                ):
                    delay = self._outages.began(exc)
                else:
                    logger.exception("consumer.unexpected_error consumer=%s retrying_with_backoff=true", self.name)
                    delay = self._outages.began(exc)
            finally:
                self._disconnect()
            self._stop.wait(delay)
        if self._dead_letters is not None:
            self._dead_letters.close()
        try:
            self.heartbeat.clear(using=self.using)
        except (OperationalError, InterfaceError):
            logger.warning("consumer.heartbeat_not_cleared consumer=%s reason=database_unavailable", self.name)
        logger.info("consumer.stopped consumer=%s", self.name)

    def stop(self) -> None:
        """Finish the delivery in hand, then return from `run()`; safe from a signal handler."""
        self._stop.set()

    def _consume_until_stopped(self) -> None:
        self._connection = broker_connection(self.url)
        self._connection.connect()
        channel = self._connection.channel()
        declare_topology(channel, self.topology)
        received: list = []
        consumer = Consumer(channel, queues=[self.queue], on_message=received.append, accept=None)
        consumer.qos(prefetch_count=self.prefetch)
        consumer.consume()
        self._outages.recovered()
        while not self._stop.is_set():
            try:
                self._connection.drain_events(timeout=DRAIN_TIMEOUT_SECONDS)
            except TimeoutError:
                self._connection.heartbeat_check()
                self._beat()
                if self.exit_when_idle and self.stats.settled:
                    self.stop()
                continue
            # Take whatever else has already arrived, then settle it all as one batch.
            while len(received) < self.prefetch:
                try:
                    self._connection.drain_events(timeout=BATCH_GATHER_SECONDS)
                except TimeoutError:
                    break
            batch, received[:] = list(received), []
            self.stats.first_at = self.stats.first_at or time.time()
            self.on_messages(batch)
            self.stats.settled += len(batch)
            self.stats.last_at = time.time()
            self._beat()

    def _beat(self) -> None:
        # A missed heartbeat is not worth dropping the deliveries in hand: the next delivery
        # meets the outage and waits it out in order.
        try:
            self.heartbeat.beat(using=self.using)
        except (OperationalError, InterfaceError) as exc:
            connections[self.using].close()
            logger.debug("consumer.heartbeat_failed consumer=%s error=%s", self.name, type(exc).__name__)

    def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.release()
            except Exception:
                logger.debug("consumer.close_failed consumer=%s", self.name, exc_info=True)


def _message_id(message) -> str:
    return (message.properties or {}).get("message_id", "-")
