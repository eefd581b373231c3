"""Reads of the outbox for operators: which events, in which state."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db.models import QuerySet

from outbox.models import PENDING, OutboxEvent


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
