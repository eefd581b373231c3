"""Operators' reads: the backlog and the workers' heartbeats."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

import outbox
from messaging.events import MESSAGE_READ
from outbox.models import OutboxEvent, WorkerHeartbeat
from outbox.selectors import Backlog, backlog, workers
from tests.helpers import append_read_events

pytestmark = pytest.mark.django_db


def test_backlog_counts_pending_and_dead_and_ages_the_oldest_pending_event():
    now = timezone.now()
    published, dead = append_read_events(2)
    OutboxEvent.objects.filter(pk=published.pk).update(published_at=now)
    OutboxEvent.objects.filter(pk=dead.pk).update(dead_at=now)
    with transaction.atomic():
        outbox.emit(
            aggregate_type="message",
            aggregate_id=uuid.uuid4(),
            event_type=MESSAGE_READ,
            payload={"message_id": str(uuid.uuid4()), "receiver_id": 1, "read_at": "2026-01-01T00:00:00Z"},
            occurred_at=now - timedelta(seconds=90),
        )
    append_read_events(1)

    summary = backlog(now=now)

    assert (summary.pending, summary.dead) == (2, 1)
    assert summary.oldest_pending_age_seconds == pytest.approx(90)


def test_an_empty_backlog_has_no_age():
    assert backlog() == Backlog(pending=0, oldest_pending_age_seconds=0.0, dead=0)


def test_workers_silent_past_the_stall_limit_are_not_alive(settings):
    settings.WORKER_STALL_SECONDS = 30
    now = timezone.now()
    for worker_id, silent in (("relay-a", 5), ("relay-b", 31)):
        WorkerHeartbeat.objects.create(
            worker_id=worker_id,
            kind="relay",
            hostname="h",
            pid=1,
            started_at=now,
            beat_at=now - timedelta(seconds=silent),
        )

    seen = {worker.worker_id: worker for worker in workers(now=now)}

    assert seen["relay-a"].alive
    assert not seen["relay-b"].alive
    assert seen["relay-b"].silent_seconds == pytest.approx(31)
