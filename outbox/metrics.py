"""Prometheus metrics of the outbox: events appended, published, failed, dead, and consumed.

Labels are bounded and never carry content or ids: an event type (checked against the schema
registry before it is appended) or a consumer's name. The hot paths count once per batch or per
append with the batch's size. The backlog is not counted here but read at scrape time by
`BacklogCollector`, which only the web process registers (see `outbox/metrics_server.py`).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Mapping

from django.db import DatabaseError
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from outbox import tracing
from outbox.envelope import ReceivedEvent

logger = logging.getLogger(__name__)

# From a millisecond (relay and consumer on one host, idle) to minutes (a backlog, an outage).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

EVENTS_APPENDED = Counter("outbox_events_appended_total", "Events appended to the outbox and committed", ["event_type"])
EVENTS_PUBLISHED = Counter("outbox_events_published_total", "Events confirmed by the broker and marked published")
PUBLISH_FAILURES = Counter(
    "outbox_publish_failures_total", "Failed publish attempts (unroutable, refused, too large, unencodable)"
)
EVENTS_DEAD = Counter("outbox_events_dead_total", "Events parked dead after their last failed attempt")

CONSUMER_PROCESSED = Counter(
    "outbox_consumer_events_processed_total", "Events a consumer applied for the first time", ["consumer"]
)
CONSUMER_DUPLICATES = Counter(
    "outbox_consumer_duplicates_total", "Redelivered events the inbox absorbed, not applied again", ["consumer"]
)
CONSUMER_DEAD_LETTERED = Counter(
    "outbox_consumer_dead_lettered_total", "Deliveries a consumer sent to its dead-letter queue", ["consumer"]
)
END_TO_END_LATENCY = Histogram(
    "outbox_end_to_end_latency_seconds",
    "From an event's occurred_at to the commit of the consumer transaction that applied it",
    ["consumer"],
    buckets=LATENCY_BUCKETS,
)


def count_appended(counts: Mapping[str, int]) -> None:
    """Count committed appends: event type -> how many (call it from `on_commit`)."""
    for event_type, count in counts.items():
        EVENTS_APPENDED.labels(event_type).inc(count)


class ConsumerMetrics:
    """One consumer's counters and latency histogram, bound to its name once."""

    def __init__(self, consumer: str) -> None:
        self._processed = CONSUMER_PROCESSED.labels(consumer)
        self._duplicates = CONSUMER_DUPLICATES.labels(consumer)
        self._dead_lettered = CONSUMER_DEAD_LETTERED.labels(consumer)
        self._latency = END_TO_END_LATENCY.labels(consumer)

    def committed(self, events: Iterable[ReceivedEvent], applied_ids: set[uuid.UUID]) -> None:
        """Count a committed batch: the events in `applied_ids` were new, the rest duplicates."""
        committed_at = time.time()
        applied = duplicates = 0
        observe = self._latency.observe
        for event in events:
            if event.event_id in applied_ids:
                applied += 1
                # One observation per event is the histogram's nature; it costs under a microsecond.
                # Clocks of the writer and the consumer may differ by a little: never negative.
                latency = max(0.0, committed_at - event.time.timestamp())
                # With tracing on, the observation's exemplar links a slow event to its trace.
                trace_id = tracing.trace_id_of(event.trace_context) if tracing.ACTIVE else ""
                observe(latency, {"trace_id": trace_id}) if trace_id else observe(latency)
            else:
                duplicates += 1
        if applied:
            self._processed.inc(applied)
        if duplicates:
            self._duplicates.inc(duplicates)

    def dead_lettered(self) -> None:
        self._dead_lettered.inc()


def record_publish_outcome(*, published: int, failed: int, dead: int) -> None:
    """Count one committed relay batch: confirmed and marked, failed attempts, newly dead."""
    if published:
        EVENTS_PUBLISHED.inc(published)
    if failed:
        PUBLISH_FAILURES.inc(failed)
    if dead:
        EVENTS_DEAD.inc(dead)


class BacklogCollector(Collector):
    """Pending events, the oldest one's age and dead events, read from the database per scrape.

    Gauges of the whole outbox, so exactly one process must export them (the web process): were
    every relay to export them too, a sum across targets would count the backlog several times.
    """

    def describe(self) -> list[GaugeMetricFamily]:
        # Names only, without touching the database (called when the collector is registered).
        return list(self._families())

    def collect(self) -> list[GaugeMetricFamily]:
        from outbox.selectors import backlog  # the models need the app registry, ready by now

        try:
            current = backlog()
        except DatabaseError as exc:
            # Leave the series out rather than report a zero that looks like an empty backlog.
            logger.warning("metrics.backlog_unavailable error=%s", type(exc).__name__)
            return []
        pending, oldest, dead = self._families()
        pending.add_metric([], current.pending)
        oldest.add_metric([], current.oldest_pending_age_seconds)
        dead.add_metric([], current.dead)
        return [pending, oldest, dead]

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily("outbox_pending_events", "Events waiting to be published (dead ones excluded)"),
            GaugeMetricFamily(
                "outbox_oldest_pending_age_seconds", "Age of the oldest pending event by occurred_at; 0 when none"
            ),
            GaugeMetricFamily("outbox_dead_events", "Events parked dead, waiting for an operator (outbox_retry)"),
        )
