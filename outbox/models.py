"""The outbox's tables: the append-only event log and the consumers' inbox.

The database guards the rules that must never break (append-only events, a wake-up for a
sleeping relay on every insert); Python code in `outbox.services` gives the clear error before it
gets that far.
"""

from __future__ import annotations

import pgtrigger
from django.contrib.postgres.indexes import BrinIndex
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from outbox import pg_triggers
from outbox.ids import time_ordered_uuid
from outbox.wake_gate import notify_trigger_sql

# Channel of the NOTIFY sent when events are inserted while a relay sleeps; relays LISTEN on it.
# PostgreSQL delivers it only when the inserting transaction commits, which is exactly when the
# relay may claim.
NOTIFY_CHANNEL = "outbox_event_inserted"

# Columns that make up an event's content: once written, never changed.
EVENT_CONTENT_FIELDS = (
    "id",
    "event_id",
    "aggregate_type",
    "aggregate_id",
    "event_type",
    "schema_version",
    "payload",
    "headers",
    "occurred_at",
)

# Name of the delete guard; only the retention path (outbox.retention) ignores it.
DELETE_GUARD_URI = "outbox.OutboxEvent:outbox_events_append_only_delete"


# Pending: neither published nor parked dead. Partial indexes stay as small as the backlog.
PENDING = models.Q(published_at__isnull=True, dead_at__isnull=True)


class OutboxEvent(models.Model):
    """One domain event, written in the same transaction as the change it describes."""

    # The bigint primary key is the publish order.
    id = models.BigAutoField(primary_key=True)
    # What consumers deduplicate on; the CloudEvents `id`.
    event_id = models.UUIDField(default=time_ordered_uuid, unique=True, editable=False)
    aggregate_type = models.CharField(max_length=100)
    aggregate_id = models.CharField(max_length=100)
    event_type = models.CharField(max_length=100)
    schema_version = models.PositiveSmallIntegerField(default=1)
    payload = models.JSONField(encoder=DjangoJSONEncoder)
    headers = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    occurred_at = models.DateTimeField(default=timezone.now)
    published_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    # After a failed publish: not claimed again before this moment (backoff with jitter).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Parked after too many failed attempts; `outbox_retry` sends it again.
    dead_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # The relay's claim reads only unpublished rows in id order; the partial index stays
            # as small as the backlog however many published rows the table holds.
            models.Index(fields=["id"], name="outbox_pending_idx", condition=PENDING),
            models.Index(fields=["dead_at"], name="outbox_dead_idx", condition=models.Q(dead_at__isnull=False)),
            # The database guard on messages probes it at every commit.
            models.Index(fields=["aggregate_type", "aggregate_id", "id"], name="outbox_aggregate_idx"),
            # The ops dashboard counts what was published in the last minutes (outbox.status);
            # without an index that is a scan of every published row. A BRIN index fits: rows
            # are published, and so written, in about the order the table grows, and it costs
            # the write path next to nothing. Partial: an insert (unpublished) never touches it,
            # and the relay's `published_at IS NULL` statements cannot use it, which misleading
            # statistics made the planner do (tests/outbox/test_claim.py).
            BrinIndex(
                fields=["published_at"],
                name="outbox_published_at_brin",
                condition=models.Q(published_at__isnull=False),
            ),
            # No other index: each one is paid on every message written (see the benchmark).
        ]
        triggers = [
            pg_triggers.Trigger(
                name="outbox_events_append_only_content",
                operation=pgtrigger.Update,
                when=pgtrigger.Before,
                condition=pgtrigger.AnyChange(*EVENT_CONTENT_FIELDS),
                func=(
                    "RAISE EXCEPTION 'outbox events are append-only: event % cannot change its "
                    "content', OLD.event_id USING ERRCODE = 'integrity_constraint_violation'; "
                    "RETURN NULL;"
                ),
            ),
            pg_triggers.Trigger(
                name="outbox_events_append_only_delete",
                operation=pgtrigger.Delete,
                when=pgtrigger.Before,
                func=(
                    "RAISE EXCEPTION 'outbox events are append-only: event % can only be removed "
                    "by the outbox retention path', OLD.event_id "
                    "USING ERRCODE = 'integrity_constraint_violation'; RETURN NULL;"
                ),
            ),
            # Even the retention path never removes an event that was not published yet.
            pg_triggers.Trigger(
                name="outbox_events_keep_pending",
                operation=pgtrigger.Delete,
                when=pgtrigger.Before,
                condition=pgtrigger.Q(old__published_at__isnull=True),
                func=(
                    "RAISE EXCEPTION 'outbox event % is not published yet and cannot be deleted', "
                    "OLD.event_id USING ERRCODE = 'integrity_constraint_violation'; RETURN NULL;"
                ),
            ),
            # One NOTIFY per statement, and only while a relay sleeps (`outbox.wake_gate`):
            # PostgreSQL folds duplicates within a transaction anyway, and a relay only needs to
            # know that something committed.
            pg_triggers.Trigger(
                name="outbox_events_notify_relay",
                operation=pgtrigger.Insert,
                when=pgtrigger.After,
                level=pgtrigger.Statement,
                func=notify_trigger_sql(NOTIFY_CHANNEL),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.aggregate_type}:{self.aggregate_id} #{self.id}"

    @property
    def state(self) -> str:
        if self.published_at is not None:
            return "published"
        return "dead" if self.dead_at is not None else "pending"


class InboxEntry(models.Model):
    """An event a consumer has applied; the unique key makes applying it twice impossible."""

    id = models.BigAutoField(primary_key=True)
    consumer = models.CharField(max_length=100)
    event_id = models.UUIDField()
    event_type = models.CharField(max_length=100)
    # The event's aggregate and its position in the outbox: lets anyone check per-aggregate order.
    subject = models.CharField(max_length=100, blank=True, default="")
    sequence = models.BigIntegerField(null=True, blank=True)
    processed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "inbox entries"
        constraints = [
            models.UniqueConstraint(fields=["consumer", "event_id"], name="inbox_consumer_event_uniq"),
        ]
        indexes = [models.Index(fields=["processed_at"], name="inbox_processed_at_idx")]

    def __str__(self) -> str:
        return f"{self.consumer} processed {self.event_type} {self.event_id}"


class WorkerHeartbeat(models.Model):
    """The last sign of life of one relay or consumer process."""

    worker_id = models.CharField(max_length=200, primary_key=True)
    kind = models.CharField(max_length=50)
    hostname = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    beat_at = models.DateTimeField()
    # The worker's last outage or unexpected error, one line (outbox.heartbeats.describe_error).
    last_error = models.CharField(max_length=300, blank=True, default="")
    last_error_at = models.DateTimeField(null=True, blank=True)
    # Outages and unexpected errors in a row, without a healthy period between them.
    consecutive_failures = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["kind", "worker_id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.worker_id}"
