"""What operators see of the outbox at one look: the ops dashboard and `outbox_status` show it.

`ops_snapshot()` gathers the backlog, the workers' heartbeats, the dead events, the dead-letter
queues' depths, publish and consume rates over the last minutes, and the recent errors. Every
read stays cheap on a table of millions of published rows: partial indexes for pending and dead
events, a BRIN index for recent publishes, the inbox's index for recent consumption.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from amqp.exceptions import NotFound
from django.conf import settings
from django.db import connection
from django.utils import timezone

from outbox.broker import broker_connection, describe_broker, load_topology
from outbox.heartbeats import describe_error
from outbox.models import InboxEntry, OutboxEvent
from outbox.partitions import PartitionReport, partition_report
from outbox.selectors import Backlog, Worker, backlog, dead_events, pending_events, workers
from outbox.tracing import trace_id_of

RATE_BUCKET_SECONDS = 10
RATE_BUCKETS = 60  # ten minutes of ten-second buckets
RECENT_DEAD_EVENTS = 10
RECENT_ERRORS = 10
RECENT_ERRORS_WINDOW = timedelta(hours=1)
# The dashboard must answer while the broker does not: fail fast rather than hang a page.
BROKER_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class DeadEvent:
    """A dead event as operators see it; `outbox_retry` or the dashboard sends it again."""

    id: int
    event_type: str
    aggregate_type: str
    aggregate_id: str
    attempts: int
    last_error: str
    dead_at: datetime
    # The trace the event was appended in (outbox.tracing), "" when it carries none.
    trace_id: str = ""


@dataclass(frozen=True)
class DeadLetterQueue:
    """How many messages wait in one consumer's dead-letter queue (None when it cannot be read)."""

    consumer: str
    queue: str
    depth: int | None
    error: str = ""


@dataclass(frozen=True)
class BrokerStatus:
    """Whether the broker answered, and its dead-letter queues' depths if it did."""

    url: str
    reachable: bool
    error: str
    dead_letter_queues: list[DeadLetterQueue]


@dataclass(frozen=True)
class RateBucket:
    """Events published and consumed (inbox rows written) from `start` for one bucket's length."""

    start: datetime
    published: int
    consumed: int


@dataclass(frozen=True)
class Rates:
    """Publish and consume counts per bucket, oldest first; the last bucket is the current one."""

    bucket_seconds: int
    buckets: list[RateBucket]

    def per_second(self, field: str, *, seconds: int = 60) -> float:
        """Average `published` or `consumed` per second over the last complete buckets."""
        count = max(1, seconds // self.bucket_seconds)
        complete = self.buckets[:-1][-count:]
        if not complete:
            return 0.0
        return sum(getattr(bucket, field) for bucket in complete) / (len(complete) * self.bucket_seconds)


@dataclass(frozen=True)
class RecentError:
    """One error of the last hour: a worker's outage or a failed publish of an event."""

    at: datetime
    source: str
    error: str
    event_id: int | None = None
    trace_id: str = ""


@dataclass(frozen=True)
class OpsSnapshot:
    """Everything the ops dashboard and `outbox_status` show, read at `taken_at`."""

    taken_at: datetime
    backlog: Backlog
    workers: list[Worker]
    dead_events: list[DeadEvent]
    broker: BrokerStatus
    rates: Rates
    recent_errors: list[RecentError]
    # Partitions kept past retention and why, rows in the DEFAULT partitions, days created ahead.
    partitions: PartitionReport

    def as_dict(self) -> dict[str, Any]:
        """The snapshot as JSON-ready values (times as ISO 8601 strings)."""
        data = _jsonable(dataclasses.asdict(self))
        data["rates"]["published_per_second"] = round(self.rates.per_second("published"), 2)
        data["rates"]["consumed_per_second"] = round(self.rates.per_second("consumed"), 2)
        return data


def ops_snapshot(*, now: datetime | None = None) -> OpsSnapshot:
    """Read the whole operators' view now; a broker that does not answer is reported, not raised."""
    now = now or timezone.now()
    seen_workers = workers(now=now)
    return OpsSnapshot(
        taken_at=now,
        backlog=backlog(now=now),
        workers=seen_workers,
        dead_events=recent_dead_events(),
        broker=broker_status(),
        rates=rates(now=now),
        recent_errors=recent_errors(now=now, seen_workers=seen_workers),
        partitions=partition_report(settings.OUTBOX_RETENTION_DAYS, now=now),
    )


def recent_dead_events(limit: int = RECENT_DEAD_EVENTS) -> list[DeadEvent]:
    """The events parked dead most recently, newest first (through the partial dead index)."""
    fields = [field.name for field in dataclasses.fields(DeadEvent) if field.name != "trace_id"]
    rows = dead_events().order_by("-dead_at", "-id").values(*fields, "headers")[:limit]
    return [_dead_event(row) for row in rows]


def _dead_event(row: dict[str, Any]) -> DeadEvent:
    headers = row.pop("headers")
    return DeadEvent(**row, trace_id=trace_id_of(headers))


def broker_status(*, timeout: float = BROKER_TIMEOUT_SECONDS) -> BrokerStatus:
    """Depth of every dead-letter queue of the topology, read with passive declares."""
    topology = load_topology()
    queues = topology.dead_letter_queues
    url = describe_broker()
    options = {"read_timeout": timeout, "write_timeout": timeout}
    try:
        with broker_connection(connect_timeout=timeout, transport_options=options) as conn:
            # One attempt: kombu's default retries and sleeps, which would hold up the page.
            conn.ensure_connection(max_retries=0)
            depths = [_dead_letter_queue_depth(conn, consumer, queue.name) for consumer, queue in queues.items()]
    except Exception as exc:  # noqa: BLE001 - whatever the broker did, the page still answers
        return BrokerStatus(url=url, reachable=False, error=describe_error(exc), dead_letter_queues=[])
    return BrokerStatus(url=url, reachable=True, error="", dead_letter_queues=depths)


def _dead_letter_queue_depth(conn, consumer: str, name: str) -> DeadLetterQueue:
    channel = conn.channel()
    try:
        # Passive: read the count without creating a queue that no consumer declared yet.
        _, depth, _ = channel.queue_declare(queue=name, passive=True)
    except conn.channel_errors as exc:
        # The broker closes the channel on a missing queue; the connection stays usable.
        error = "not declared yet (no relay or consumer has started)" if _is_missing_queue(exc) else None
        return DeadLetterQueue(consumer=consumer, queue=name, depth=None, error=error or describe_error(exc))
    channel.close()
    return DeadLetterQueue(consumer=consumer, queue=name, depth=depth)


def _is_missing_queue(exc: BaseException) -> bool:
    # RabbitMQ answers NOT_FOUND (py-amqp's NotFound); the filesystem transport raises a plain
    # ChannelError with the same reply code, 404, as a string.
    return isinstance(exc, NotFound) or str(getattr(exc, "reply_code", "")) == "404"


# Counts per bucket of `column` since a moment; the caller names the table and the column.
_BUCKET_COUNTS_SQL = """
    SELECT floor(extract(epoch FROM {column}) / %(size)s)::bigint AS bucket, count(*)
    FROM {table}
    WHERE {column} >= %(since)s
    GROUP BY bucket
"""


def _counts_per_bucket(table: str, column: str, since: datetime, size: int) -> dict[int, int]:
    with connection.cursor() as cursor:
        cursor.execute(_BUCKET_COUNTS_SQL.format(table=table, column=column), {"size": size, "since": since})
        return dict(cursor.fetchall())


def rates(
    *, now: datetime | None = None, bucket_seconds: int = RATE_BUCKET_SECONDS, buckets: int = RATE_BUCKETS
) -> Rates:
    """Events published and consumed per bucket over the last `buckets` buckets, up to now.

    Published counts read the BRIN index on `published_at`; consumed counts read the inbox's
    index on `processed_at` (every consumer's inbox rows together).
    """
    now = now or timezone.now()
    current = int(now.timestamp()) // bucket_seconds
    first = current - buckets + 1
    since = datetime.fromtimestamp(first * bucket_seconds, tz=UTC)
    published = _counts_per_bucket(OutboxEvent._meta.db_table, "published_at", since, bucket_seconds)
    consumed = _counts_per_bucket(InboxEntry._meta.db_table, "processed_at", since, bucket_seconds)
    return Rates(
        bucket_seconds=bucket_seconds,
        buckets=[
            RateBucket(
                start=datetime.fromtimestamp(bucket * bucket_seconds, tz=UTC),
                published=published.get(bucket, 0),
                consumed=consumed.get(bucket, 0),
            )
            for bucket in range(first, current + 1)
        ],
    )


def recent_errors(
    *,
    now: datetime | None = None,
    seen_workers: list[Worker] | None = None,
    limit: int = RECENT_ERRORS,
    window: timedelta = RECENT_ERRORS_WINDOW,
) -> list[RecentError]:
    """The newest errors of the last `window`: workers' outages and events' failed publishes."""
    now = now or timezone.now()
    since = now - window
    found = [
        RecentError(at=worker.last_error_at, source=f"{worker.kind} {worker.worker_id}", error=worker.last_error)
        for worker in (workers(now=now) if seen_workers is None else seen_workers)
        if worker.last_error and worker.last_error_at and worker.last_error_at >= since
    ]
    # A published event has no error (publishing clears it): only pending and dead ones can,
    # each read through its own partial index.
    failing = pending_events().filter(last_attempt_at__gte=since).exclude(last_error="")
    dead = dead_events(since=since).exclude(last_error="")
    fields = ("id", "event_type", "aggregate_type", "aggregate_id", "last_error", "headers")
    for events, state, moment in ((failing, "retrying", "last_attempt_at"), (dead, "dead", "dead_at")):
        for event in events.order_by(f"-{moment}").values(*fields, moment)[:limit]:
            found.append(
                RecentError(
                    at=event[moment],
                    source=(
                        f"event {event['id']} {event['event_type']} "
                        f"{event['aggregate_type']}:{event['aggregate_id']} ({state})"
                    ),
                    error=event["last_error"],
                    event_id=event["id"],
                    trace_id=trace_id_of(event["headers"]),
                )
            )
    found.sort(key=lambda error: error.at, reverse=True)
    return found[:limit]


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value
