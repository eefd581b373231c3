"""The base of every event consumer: decode, apply exactly once, ack after commit.

A subclass names itself (its inbox key and its queue in the topology) and maps event types to
handlers. `outbox.worker.Worker` runs the loop; one unit of work takes what the broker delivered
and settles it as one batch (a single delivery is a batch of one):
- each body is checked: size, CloudEvents envelope, data against the registered schema. Whatever
  fails, or makes the decoder raise, is that delivery's fault: it goes to the dead-letter queue
  with the reason, and the loop goes on;
- the rest are recorded in the inbox and applied in one transaction; a duplicate finds its inbox
  row and changes nothing. A handler error is retried a few times, then dead-lettered; an error
  the database raises on the event's values (a `DataError`) is dead-lettered at once;
- the batch is acked only after that transaction committed: a crash before the ack means a
  redelivery, which the inbox absorbs.
Only a database or broker outage takes the worker's outage path (reconnect with backoff).
Log lines name the event by its id and the error by its type: never a body, never an error's
text, which for a database error quotes the values (psycopg's `CONTEXT: JSON data ...`).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import select
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DataError, InterfaceError, OperationalError, transaction
from kombu import Consumer

from outbox import tracing
from outbox.broker import (
    Topology,
    broker_connection,
    broker_role,
    declare_consumer_queues,
    declare_topology,
    describe_broker,
    is_virtual_transport,
    load_topology,
    serve_heartbeats,
)
from outbox.dead_letters import DeadLetterPublisher
from outbox.envelope import ReceivedEvent, decode_event
from outbox.errors import InvalidEventPayload, MalformedEnvelope, UnknownEventType
from outbox.failpoints import failpoint
from outbox.inbox import record_many_in_inbox
from outbox.log_safety import message_id, quoted, raised_at
from outbox.metrics import ConsumerMetrics
from outbox.partition_subscriptions import PartitionSubscriptions
from outbox.partition_topology import check_partitions, declare_partitions, partitions_of
from outbox.schemas import accept_event
from outbox.worker import BrokerUnavailable, DatabaseUnavailable, DependencyUnavailable, Worker, database_unavailable

__all__ = ["ConsumerStats", "DatabaseUnavailable", "DeadLetter", "EventHandler", "InboxConsumer", "Outcome"]

logger = logging.getLogger(__name__)

DRAIN_TIMEOUT_SECONDS = 1.0
RETRY_BASE_DELAY_SECONDS = 0.1
# Within a burst of deliveries, how long to wait for the next before settling the batch: short
# enough to add nothing noticeable to latency, long enough to bridge the gaps of what the broker
# is sending.
BATCH_GATHER_SECONDS = 0.0005

EventHandler = Callable[[ReceivedEvent], None]


class Outcome(enum.Enum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    DEAD_LETTERED = "dead_lettered"


class DeadLetter(Exception):
    """An event that can never be applied; it goes to the dead-letter queue with this reason."""


@dataclass
class ConsumerStats:
    """Deliveries settled by this consumer and when the first and the last batch were settled."""

    settled: int = 0
    first_at: float = 0.0
    last_at: float = 0.0


class InboxConsumer(Worker):
    """Consumes one queue of the topology; `run()` until `stop()`, `settle()` one batch of deliveries."""

    #: The inbox key and the topology's queue name for this consumer.
    name: str = ""
    log_prefix = "consumer"
    #: Event type -> the schema versions the handlers read; older ones are upcast to them, newer
    #: ones dead-lettered. A type not named here is taken in every registered version.
    accepted_versions: dict[str, tuple[int, ...]] = {}
    #: Other queues of the topology this consumer declares with its own user: those of the events
    #: it appends, so that they have somewhere to go before any service consumes them.
    declares_queues_of: tuple[str, ...] = ()

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
        self.max_backoff = max_backoff or settings.CONSUMER_MAX_BACKOFF_SECONDS
        super().__init__(kind=f"consumer.{self.name}", logger=logger, max_backoff=self.max_backoff, using=using)
        role = broker_role("CONSUMER_BROKER_URL")
        self.url = url or role.url
        # With a user of its own, it may declare only its queues (outbox.broker says why).
        self._declares_whole_topology = not role.own_user
        self.topology = topology or load_topology()
        self.queue = self.topology.queue_for(self.name)
        self.prefetch = prefetch or settings.CONSUMER_PREFETCH
        # kombu's virtual transports (the embedded broker) read no socket, have no consistent-hash
        # exchange, and settle only the delivery tag they are given.
        self._virtual_transport = is_virtual_transport(self.url)
        # One queue where there is no consistent-hash exchange.
        self.partition_count = 1 if self._virtual_transport else self.topology.partitions.get(self.name, 1)
        self._subscriptions: PartitionSubscriptions | None = None
        self._connection = None
        self._received: list = []
        # For benchmarks: stop once the queue has been idle for a drain timeout after work.
        self.exit_when_idle = False
        self.stats = ConsumerStats()
        self.max_deliveries = settings.CONSUMER_MAX_DELIVERIES
        self.retry_max_delay = settings.CONSUMER_RETRY_MAX_DELAY_SECONDS
        # Nothing the relay publishes is larger; a larger body is refused before it is parsed.
        self.max_body_bytes = settings.OUTBOX_MAX_EVENT_BYTES
        self.metrics = ConsumerMetrics(self.name)
        probe = broker_connection(self.url)
        self._broker_errors = (*probe.connection_errors, *probe.channel_errors, OSError)
        self._dead_letters = (
            DeadLetterPublisher(
                url=self.url,
                exchange=self.topology.dead_letter_exchange,
                routing_key=self.topology.dead_letter_queue_for(self.name).routing_key,
            )
            if self.topology.dead_letter_exchange is not None
            else None
        )

    @property
    def log_context(self) -> str:
        return f"consumer={self.name}"

    def describe(self) -> str:
        return f"queue={self.queue.name} broker={describe_broker(self.url)} prefetch={self.prefetch}"

    def beat(self) -> None:
        """Write the heartbeat if one is due; a database that does not answer is met by the next delivery."""
        # Not an outage of its own: reconnecting would hand the prefetched deliveries back to
        # the broker, which may return them reordered. The next delivery waits the outage out.
        with contextlib.suppress(DatabaseUnavailable):
            super().beat()

    def handlers(self) -> dict[str, EventHandler]:
        """Event type -> the function that applies it, inside the inbox transaction."""
        raise NotImplementedError

    # --- one unit of work ---------------------------------------------------------------

    def work_once(self) -> None:
        """Wait up to a drain timeout for deliveries and settle what arrived as one batch."""
        try:
            batch = self.receive_batch()
            if not batch:
                return
            self.stats.first_at = self.stats.first_at or time.time()
            self.settle(batch)
        except self._broker_errors as exc:
            raise BrokerUnavailable(f"{type(exc).__name__}: {exc}".strip()) from exc
        self.stats.settled += len(batch)
        self.stats.last_at = time.time()

    def receive_batch(self) -> list:
        """The deliveries that arrived within a drain timeout, and whatever followed them on the wire."""
        self._connect()
        if self._subscriptions is not None:
            self._subscriptions.rebalance_if_due()
            self._drop_deliveries_of_closed_channels()
        if not self._received:
            try:
                self._connection.drain_events(timeout=DRAIN_TIMEOUT_SECONDS)
            except TimeoutError:
                self._connection.heartbeat_check()
                if self.exit_when_idle and self.stats.settled:
                    self.stop()
                return []
        return self._take_batch()

    @property
    def batch_limit(self) -> int:
        """Deliveries settled in one transaction: half the prefetch window.

        The other half stays in flight, so the broker keeps sending while a batch commits
        (docs/decisions/consumer-pipelined-batches.md).
        """
        return max(1, self.prefetch // 2)

    def _take_batch(self) -> list:
        # Gathers what has come in, up to the batch limit:
        # - bytes waiting on the socket are read at once, with the socket blocking as py-amqp keeps
        #   it between reads: a read with a timeout costs system calls on each of a delivery's
        #   three frames (docs/performance.md). A delivery cut short by the network waits for its
        #   rest; a peer gone silent in the middle of one is found by TCP keepalive (py-amqp's
        #   settings: in about two and a half minutes);
        # - a lone delivery with nothing behind it is settled at once: at a low rate, waiting for
        #   company only adds to its latency;
        # - within a burst, a short wait bridges the gaps of what the broker is sending.
        limit = self.batch_limit
        while len(self._received) < limit:
            waiting = self._bytes_waiting()
            if waiting:
                self._connection.drain_events(timeout=None)
                continue
            if waiting is not None and len(self._received) == 1:
                break
            try:
                self._connection.drain_events(timeout=BATCH_GATHER_SECONDS)
            except TimeoutError:
                break
        batch = self._received[:limit]
        del self._received[:limit]
        return batch

    def _bytes_waiting(self) -> bool | None:
        """Whether bytes from the broker wait on the socket; None on a transport without one."""
        if self._virtual_transport:
            return None
        readable, _, _ = select.select([self._connection.connection.sock], [], [], 0)
        return bool(readable)

    def _drop_deliveries_of_closed_channels(self) -> None:
        # A released partition's channel is closed and its unacked deliveries are back in the
        # queue: the ones still held here are another consumer's now.
        self._received[:] = [m for m in self._received if getattr(m.channel, "is_open", True)]

    def settle(self, messages: list) -> None:
        """Settle deliveries, in order: poison dead-lettered, the rest applied in one transaction, then acked.

        The one path for every delivery: a single one is a batch of one. When applying the batch
        fails, each delivery is settled on its own, so one bad event fails only itself.
        """
        checked: list[tuple[object, ReceivedEvent]] = []
        for message in messages:
            try:
                checked.append((message, self.check_delivery(message.body)))
            except DeadLetter as exc:
                self._dead_letter(message, str(exc))
        if not checked:
            return
        try:
            new_ids = self._apply_through_database_outages([event for _, event in checked])
        except DependencyUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - an event's failure is that event's, never the loop's
            if len(checked) > 1:
                logger.warning(
                    "consumer.batch_failed consumer=%s size=%d error=%s retrying_one_by_one=true",
                    self.name,
                    len(checked),
                    type(exc).__name__,
                )
                for message, _ in checked:
                    self.settle([message])
                return
            self._handler_failed(*checked[0], exc)
            return
        if new_ids:
            failpoint("consumer.after_commit")
        for _, event in checked:
            if event.event_id not in new_ids:
                logger.info("consumer.duplicate_absorbed consumer=%s event=%s", self.name, event.event_id)
        # One ack for the whole batch; the poison in it is already settled.
        if not self._virtual_transport:  # a virtual transport acks only the tag it is given
            # Delivery tags count per channel: the last delivery of each channel acks its batch.
            for message in {id(m.channel): m for m, _ in checked}.values():
                message.ack(multiple=True)
        else:
            for message, _ in checked:
                message.ack()

    def check_delivery(self, body: bytes) -> ReceivedEvent:
        """The event in `body`, its envelope and data checked; raise `DeadLetter` if it is poison."""
        if len(body) > self.max_body_bytes:
            raise DeadLetter(f"body is {len(body)} bytes, over the {self.max_body_bytes}-byte limit")
        try:
            event = decode_event(body)
        except MalformedEnvelope as exc:
            raise DeadLetter(f"malformed envelope: {exc}") from exc
        except Exception as exc:  # whatever a forged body provokes in the decoder is its own fault
            raise DeadLetter(f"malformed envelope: the decoder failed ({type(exc).__name__})") from exc
        if event.event_type not in self.handlers():
            raise DeadLetter(f"unknown event type {quoted(event.event_type)}")
        try:
            return accept_event(event, self.accepted_versions.get(event.event_type))
        except (UnknownEventType, InvalidEventPayload) as exc:
            raise DeadLetter(str(exc)) from exc
        except Exception as exc:  # e.g. data nested past the validator's recursion limit
            raise DeadLetter(f"{event.event_type} data cannot be checked ({type(exc).__name__})") from exc

    def apply_batch(self, events: list[ReceivedEvent]) -> None:
        """Apply new events in delivery order, inside the inbox transaction.

        Override to apply a batch with fewer queries; the default calls each event's handler.
        """
        handlers = self.handlers()
        for event in events:
            handlers[event.event_type](event)

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
                if fresh and tracing.ACTIVE:
                    tracing.apply_in_spans(fresh, self.apply_batch, consumer=self.name)
                elif fresh:
                    self.apply_batch(fresh)
                    failpoint("consumer.before_commit")
        except (OperationalError, InterfaceError) as exc:
            raise database_unavailable(exc, using=self.using) from exc
        return new_ids

    def handle_delivery(self, body: bytes) -> Outcome:
        """Check and apply one body exactly once, without a broker; raise `DeadLetter` if it never can be."""
        event = self.check_delivery(body)
        return Outcome.APPLIED if self.apply_events([event]) else Outcome.DUPLICATE

    # --- failures -------------------------------------------------------------------------

    def _apply_through_database_outages(self, events: list[ReceivedEvent]) -> set[uuid.UUID]:
        while True:
            try:
                return self.apply_events(events)
            except DatabaseUnavailable as exc:
                # Not the deliveries' fault. Keep them and retry here, in order, once the
                # database is back: handing them back to the broker (closing the channel) would
                # return every prefetched delivery, and RabbitMQ may return them reordered.
                self._wait_out_database_outage(exc)

    def _wait_out_database_outage(self, exc: DatabaseUnavailable) -> None:
        delay = self._outages.began(exc)
        deadline = time.monotonic() + delay
        while (remaining := deadline - time.monotonic()) > 0:
            if self.wait(min(remaining, DRAIN_TIMEOUT_SECONDS)):
                # Stopping mid-outage: unacked deliveries go back to the broker with the channel.
                raise exc
            if self._connection is not None:
                try:
                    serve_heartbeats(self._connection)
                except self._broker_errors as broker_exc:
                    # The broker went too: the deliveries in hand are back in their queues, and
                    # no fault of theirs, so not a handler failure that could dead-letter them.
                    raise BrokerUnavailable(f"{type(broker_exc).__name__}: {broker_exc}".strip()) from broker_exc

    def _handler_failed(self, message, event: ReceivedEvent, exc: Exception) -> None:
        # Quorum queues count deliveries; a handler failing for a reason we did not foresee is
        # retried a few times with a growing, bounded delay, then parked so the queue flows. The
        # database refusing the event's values (a DataError) gives the same answer every time.
        if isinstance(exc, DeadLetter):
            # A handler's own verdict on the event (it contradicts our rows): final, with its reason.
            logger.warning(
                "consumer.event_refused consumer=%s event=%s error=%s", self.name, event.event_id, type(exc).__name__
            )
            self._dead_letter(message, str(exc))
            return
        deliveries = _delivery_count(message) + 1
        error, where = type(exc).__name__, raised_at(exc)
        if isinstance(exc, DataError) or deliveries >= self.max_deliveries:
            logger.error(
                "consumer.handler_failed consumer=%s event=%s delivery=%d giving_up=true error=%s where=%s",
                self.name,
                event.event_id,
                deliveries,
                error,
                where,
            )
            if isinstance(exc, DataError):
                reason = f"the database refused the event's values: {error}"
            else:
                reason = f"handler failed on {deliveries} deliveries: {error}"
            self._dead_letter(message, reason)
            return
        delay = min(RETRY_BASE_DELAY_SECONDS * 2 ** (deliveries - 1), self.retry_max_delay)
        logger.warning(
            "consumer.handler_failed consumer=%s event=%s delivery=%d retry_in=%.2fs error=%s where=%s",
            self.name,
            event.event_id,
            deliveries,
            delay,
            error,
            where,
        )
        self.wait(delay)
        message.requeue()

    def _dead_letter(self, message, reason: str) -> None:
        self.metrics.dead_lettered()
        logger.warning(
            "consumer.dead_lettered consumer=%s message_id=%s reason=%s", self.name, message_id(message), reason
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

    # --- connections ----------------------------------------------------------------------

    def _connect(self) -> None:
        if self._connection is not None:
            return
        self._connection = broker_connection(self.url)
        self._connection.connect()
        if self.partition_count > 1:
            # Before any declare, which would create the missing partitions of a smaller count.
            check_partitions(self._connection, self._partitions())
        channel = self._connection.channel()
        if self._declares_whole_topology:
            declare_topology(channel, self.topology)
        else:
            for name in (self.name, *self.declares_queues_of):
                declare_consumer_queues(channel, self.topology, name)
        if self.partition_count > 1:
            self._subscribe_to_partitions(channel)
            return
        # Declared just above; kombu's own declare would declare the events exchange too.
        consumer = Consumer(
            channel, queues=[self.queue], on_message=self._received.append, accept=None, auto_declare=False
        )
        consumer.qos(prefetch_count=self.prefetch)
        consumer.consume()

    def check_topology(self) -> None:
        """Raise `TopologyMismatch` when the broker holds another number of partitions than ours.

        For a start that refuses a mismatched broker at once. A broker out of reach passes: the
        run waits for it and checks again when it connects.
        """
        if self.partition_count <= 1:
            return
        try:
            with broker_connection(self.url) as connection:
                connection.connect()
                check_partitions(connection, self._partitions())
        except self._broker_errors as exc:
            logger.info(
                "consumer.topology_check_skipped consumer=%s reason=broker_unavailable error=%s",
                self.name,
                type(exc).__name__,
            )

    def _partitions(self):
        return partitions_of(
            self.queue, self.topology.events, self.topology.binding_keys_for(self.name), self.partition_count
        )

    def _subscribe_to_partitions(self, channel) -> None:
        partitions = self._partitions()
        declare_partitions(channel, partitions, self.topology.events)
        self._subscriptions = PartitionSubscriptions(
            self._connection,
            partitions,
            lease_group=self.queue.name,
            on_message=self._received.append,
            prefetch=self.prefetch,
            rebalance_seconds=settings.CONSUMER_REBALANCE_SECONDS,
        )

    def disconnect(self, cause: BaseException | None = None) -> None:
        """Close the broker connections; unacked deliveries go back to the queue with them."""
        self._received.clear()
        subscriptions, self._subscriptions = self._subscriptions, None
        if subscriptions is not None:
            # Channels first, then the leases: no other process starts on a partition early.
            subscriptions.close()
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.release()
            except Exception:  # a connection that fails to close is gone anyway
                logger.debug("consumer.close_failed consumer=%s", self.name, exc_info=True)
        if self._dead_letters is not None:
            self._dead_letters.close()


def _delivery_count(message) -> int:
    # The broker sets x-delivery-count on redeliveries; a sender may have set it to anything.
    try:
        return max(0, int((message.headers or {}).get("x-delivery-count", 0)))
    except (TypeError, ValueError):
        return 0
