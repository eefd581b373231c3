"""Replay: publish already-published events again, so that a consumer can rebuild its state.

It lives with the relay because it is the relay's job done again on request: the outbox only
stores and describes events.

Events go out exactly as the relay sent them (the same `OutgoingEvent` rows, the same publisher
from `relay.publisher`, so the same CloudEvents id and bytes), in id order, read in keyset pages,
with publisher confirms and `mandatory` on RabbitMQ (on the filesystem transport, stored when the
publish returns, and the target looked up first). A replay never changes the event log.

Consumers deduplicate on the event id: a replayed event whose inbox row exists is absorbed as a
duplicate. To make a consumer of this database apply the events again, replay to that consumer
only and forget its inbox entries for them (`forget_inbox`); each page's entries are forgotten
just before the page is published.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

from outbox import tracing
from outbox.broker import Topology, broker_role, is_virtual_transport, load_topology
from outbox.envelope import OutgoingEvent
from outbox.errors import OutboxError
from outbox.inbox import forget_inbox_entries
from outbox.models import OutboxEvent
from outbox.schemas import registered_schemas
from outbox.services import OUTGOING_EVENT_COLUMNS, outgoing_event
from relay import tracing as relay_tracing
from relay.amqp_publisher import BrokerUnavailable
from relay.publisher import Publisher, replay_publisher

Progress = Callable[[int], None]

_TABLE = OutboxEvent._meta.db_table


class InvalidReplay(OutboxError, ValueError):
    """The replay asked for is contradictory or names something that does not exist."""


class ReplayStopped(OutboxError):
    """The replay stopped part way; `replayed` events were confirmed, resume after `resume_after_id`."""

    def __init__(self, reason: str, *, replayed: int, total: int, resume_after_id: int) -> None:
        self.reason = reason
        self.replayed = replayed
        self.total = total
        self.resume_after_id = resume_after_id
        resume = (
            f"every event up to id {resume_after_id} was confirmed by the broker; resume with --after-id "
            f"{resume_after_id}"
            if resume_after_id
            else "run it again once that is fixed"
        )
        super().__init__(f"replay stopped after {replayed} of {total} events: {reason}; {resume}")


@dataclass(frozen=True)
class ReplaySelection:
    """Which published events to replay; every filter given must match."""

    since: datetime | None = None
    until: datetime | None = None
    event_types: tuple[str, ...] = ()
    aggregate_type: str | None = None
    aggregate_id: str | None = None
    # These events only (None: no such filter; empty: none at all).
    ids: tuple[int, ...] | None = None
    # Resume a replay that stopped: only events with a larger id.
    after_id: int = 0

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise InvalidReplay(f"since ({self.since.isoformat()}) must be before until ({self.until.isoformat()})")
        known = {schema.event_type for schema in registered_schemas()}
        unknown = sorted(set(self.event_types) - known)
        if unknown:
            raise InvalidReplay(f"unknown event type {', '.join(unknown)}; known types: {', '.join(sorted(known))}")

    def where(self) -> tuple[str, list[Any]]:
        """The SQL condition and its parameters: published events matching every filter."""
        conditions, params = ["published_at IS NOT NULL", "id > %s"], [self.after_id]
        for sql, value in (
            ("occurred_at >= %s", self.since),
            ("occurred_at < %s", self.until),
            ("aggregate_type = %s", self.aggregate_type),
            ("aggregate_id = %s", self.aggregate_id),
            ("event_type = ANY(%s)", list(self.event_types) or None),
            ("id = ANY(%s)", None if self.ids is None else list(self.ids)),
        ):
            if value is not None:
                conditions.append(sql)
                params.append(value)
        return " AND ".join(conditions), params


@dataclass(frozen=True)
class ReplayPlan:
    """What a replay will send, and where: counted once, before anything is published."""

    selection: ReplaySelection
    exchange: str
    consumer: str | None
    queue: str | None
    # A partitioned consumer's hash exchange: the events go through it, each to its aggregate's
    # partition, so that a replayed event keeps its place in its aggregate's order.
    partition_exchange: str | None = None
    # Forget the consumer's inbox entries of each page before publishing it.
    forget_inbox: bool = False
    # Event type -> how many events of it will be sent; and those the consumer's queue is not
    # bound for (sent to the queue directly, they would only be dead-lettered as unknown).
    counts: dict[str, int] = field(default_factory=dict)
    not_routed: dict[str, int] = field(default_factory=dict)
    # The newest matching event when the plan was made: events appended later are not replayed.
    last_id: int = 0

    @property
    def total(self) -> int:
        """How many events the replay will send."""
        return sum(self.counts.values())

    def describe_target(self) -> str:
        """Where the events go, in words an operator reads before anything is sent."""
        if self.consumer is None:
            return (
                f"the events exchange {self.exchange!r}: every queue bound for their types gets them, "
                "i.e. every consumer of every team"
            )
        if self.partition_exchange is not None:
            return (
                f"consumer {self.consumer!r} only: through its hash exchange {self.partition_exchange!r}, "
                "each event to its aggregate's partition"
            )
        return f"consumer {self.consumer!r} only: straight to its queue {self.queue!r} through the default exchange"


@dataclass(frozen=True)
class ReplayResult:
    """How many events the broker confirmed, and how many inbox entries were forgotten for them."""

    replayed: int
    forgotten_inbox_entries: int


def plan_replay(
    selection: ReplaySelection,
    *,
    consumer: str | None = None,
    forget_inbox: bool = False,
    topology: Topology | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> ReplayPlan:
    """Count the published events `selection` matches, per type, and fix where they go.

    `forget_inbox` (only with a consumer) forgets that consumer's inbox entries of each page just
    before it is published, so that the consumer applies the events again.
    """
    if forget_inbox and consumer is None:
        raise InvalidReplay("forgetting inbox entries needs a consumer: name it, and the events go to its queue only")
    topology = topology or load_topology()
    queue = partition_exchange = None
    if consumer is not None:
        try:
            queue = topology.queue_for(consumer).name
        except LookupError:
            known = ", ".join(sorted(topology.queues)) or "none"
            raise InvalidReplay(f"the topology has no consumer {consumer!r}; its consumers: {known}") from None
        partitions = topology.partitions_for(consumer)
        # The embedded broker has no hash exchange: its consumers read their one queue.
        if partitions is not None and not is_virtual_transport(broker_role("REPLAY_BROKER_URL").url):
            queue, partition_exchange = None, partitions.exchange.name
    where, params = selection.where()
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT event_type, count(*), max(id) FROM {_TABLE} WHERE {where} GROUP BY event_type ORDER BY 1", params
        )
        rows = cursor.fetchall()
    counts, not_routed, last_id = {}, {}, 0
    for event_type, count, newest in rows:
        if consumer is not None and not topology.routes_to(consumer, event_type):
            not_routed[event_type] = count
        else:
            counts[event_type] = count
            last_id = max(last_id, newest)
    return ReplayPlan(
        selection=selection,
        exchange=topology.events.name,
        consumer=consumer,
        queue=queue,
        partition_exchange=partition_exchange,
        forget_inbox=forget_inbox,
        counts=counts,
        not_routed=not_routed,
        last_id=last_id,
    )


def replay_events(
    plan: ReplayPlan,
    *,
    batch_size: int | None = None,
    publisher: Publisher | None = None,
    on_progress: Progress | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> ReplayResult:
    """Publish the planned events again, in id order, a confirmed page at a time.

    Raises `ReplayStopped`, saying how far it got, when the broker goes away or returns or
    refuses an event.
    """
    batch_size = batch_size or settings.RELAY_BATCH_SIZE
    if batch_size < 1:
        raise InvalidReplay("the batch size must be at least 1")
    own_publisher = publisher is None
    publisher = publisher or replay_publisher()
    replayed = forgotten = 0
    confirmed_up_to = plan.selection.after_id
    try:
        for page in _pages(plan, batch_size, using):
            if plan.forget_inbox:
                forgotten += forget_inbox_entries(plan.consumer, [event.event_id for event in page], using=using)
            sends = relay_tracing.SendSpans(page, replay=True) if tracing.ACTIVE else None
            try:
                outcome = publisher.publish_batch(
                    sends.events if sends else page, to_queue=plan.queue, to_exchange=plan.partition_exchange
                )
            except BrokerUnavailable as exc:
                raise ReplayStopped(
                    str(exc), replayed=replayed, total=plan.total, resume_after_id=confirmed_up_to
                ) from exc
            if sends is not None:
                sends.settled(outcome.confirmed, outcome.failed)
            replayed += len(outcome.confirmed)
            if outcome.failed:
                first_failed = min(outcome.failed)
                kind = next(event.event_type for event in page if event.id == first_failed)
                raise ReplayStopped(
                    f"{len(outcome.failed)} event(s) not accepted; the first, event {first_failed} ({kind}): "
                    f"{outcome.failed[first_failed]}",
                    replayed=replayed,
                    total=plan.total,
                    resume_after_id=max((e.id for e in page if e.id < first_failed), default=confirmed_up_to),
                )
            confirmed_up_to = page[-1].id
            if on_progress is not None:
                on_progress(len(page))
    finally:
        if own_publisher:
            publisher.close()
    return ReplayResult(replayed=replayed, forgotten_inbox_entries=forgotten)


def _pages(plan: ReplayPlan, batch_size: int, using: str) -> Iterator[list[OutgoingEvent]]:
    """The planned events in id order, `batch_size` at a time: keyset pages, never OFFSET."""
    if not plan.counts:
        return
    where, params = plan.selection.where()
    sql = (
        f"SELECT {OUTGOING_EVENT_COLUMNS} FROM {_TABLE} "
        f"WHERE {where} AND id > %s AND id <= %s AND event_type = ANY(%s) ORDER BY id LIMIT %s"
    )
    after = plan.selection.after_id
    types = list(plan.counts)
    while True:
        with connections[using].cursor() as cursor:
            cursor.execute(sql, [*params, after, plan.last_id, types, batch_size])
            page = [outgoing_event(row) for row in cursor.fetchall()]
        if not page:
            return
        yield page
        after = page[-1].id
