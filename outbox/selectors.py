"""Reads of the outbox for operators: which events, in which state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from outbox.models import PENDING, OutboxEvent, WorkerHeartbeat


def pending_events() -> QuerySet[OutboxEvent]:
    return OutboxEvent.objects.filter(PENDING)


def dead_events(
    *,
    event_type: str | None = None,
    aggregate_type: str | None = None,
    aggregate_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    ids: Sequence[int] = (),
) -> QuerySet[OutboxEvent]:
    """Dead events matching every filter given, oldest first (by when they died)."""
    events = OutboxEvent.objects.filter(dead_at__isnull=False, published_at__isnull=True)
    if event_type:
        events = events.filter(event_type=event_type)
    if aggregate_type:
        events = events.filter(aggregate_type=aggregate_type)
    if aggregate_id:
        events = events.filter(aggregate_id=aggregate_id)
    if since:
        events = events.filter(dead_at__gte=since)
    if until:
        events = events.filter(dead_at__lt=until)
    if ids:
        events = events.filter(id__in=ids)
    return events.order_by("dead_at", "id")


@dataclass(frozen=True)
class Backlog:
    """What waits to be published: the pending events, the oldest one's age, the dead ones."""

    pending: int
    oldest_pending_age_seconds: float
    dead: int


def backlog(*, now: datetime | None = None) -> Backlog:
    """The backlog now; cheap on any table size: both counts read only their partial indexes."""
    now = now or timezone.now()
    pending = pending_events()
    # Published events leave the pending index in id order, so its head is the oldest (by id,
    # which is commit order within an aggregate; occurred_at is what operators care about).
    oldest = pending.order_by("id").values_list("occurred_at", flat=True).first()
    return Backlog(
        pending=pending.count(),
        oldest_pending_age_seconds=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
        dead=OutboxEvent.objects.filter(dead_at__isnull=False, published_at__isnull=True).count(),
    )


@dataclass(frozen=True)
class Worker:
    """One relay or consumer process as its heartbeat shows it."""

    worker_id: str
    kind: str
    hostname: str
    pid: int
    started_at: datetime
    beat_at: datetime
    silent_seconds: float
    alive: bool
    # Its last outage or unexpected error, if it had one.
    last_error: str = ""
    last_error_at: datetime | None = None
    # Outages and unexpected errors in a row; alive with WORKER_FAILING_AFTER of them is `failing`.
    consecutive_failures: int = 0
    failing: bool = False


def workers(*, now: datetime | None = None) -> list[Worker]:
    """Every worker with a heartbeat row; `alive` unless silent for WORKER_STALL_SECONDS, `failing`
    when alive after WORKER_FAILING_AFTER failures in a row."""
    now = now or timezone.now()
    stall_after = timedelta(seconds=settings.WORKER_STALL_SECONDS)
    failing_after = settings.WORKER_FAILING_AFTER
    return [
        Worker(
            worker_id=beat.worker_id,
            kind=beat.kind,
            hostname=beat.hostname,
            pid=beat.pid,
            started_at=beat.started_at,
            beat_at=beat.beat_at,
            silent_seconds=max(0.0, (now - beat.beat_at).total_seconds()),
            alive=now - beat.beat_at <= stall_after,
            last_error=beat.last_error,
            last_error_at=beat.last_error_at,
            consecutive_failures=beat.consecutive_failures,
            failing=now - beat.beat_at <= stall_after and beat.consecutive_failures >= failing_after,
        )
        for beat in WorkerHeartbeat.objects.order_by("kind", "worker_id")
    ]
