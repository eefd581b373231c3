"""Rows placed in chosen time partitions, for the tests of partitioning and retention."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

from django.db import connection

from outbox.models import InboxEntry, OutboxEvent
from outbox.partitions import day_start, uuid_floor
from tooling.benchmarks.partitions import daily_partitions_since

__all__ = ["daily_partitions_since", "event_id_on", "insert_event", "insert_inbox_entry", "partition_of"]


def event_id_on(day: date) -> uuid.UUID:
    """A UUIDv7-shaped event id made at noon (UTC) on `day`, unique."""
    floor = uuid_floor(day_start(day) + timedelta(hours=12)).int
    return uuid.UUID(int=floor | (0x7 << 76) | (uuid.uuid4().int & ((1 << 62) - 1)) | (0b10 << 62))


def insert_event(event_id: uuid.UUID, *, state: str = "pending") -> int:
    """Insert a message.read event with `event_id`, pending, published or dead; return its id."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {OutboxEvent._meta.db_table} (event_id, aggregate_type, aggregate_id, event_type, "
            "schema_version, payload, headers, occurred_at, attempts, last_error, published_at, dead_at) "
            "VALUES (%s, 'message', %s, 'message.read', 1, %s, '{}', now(), 0, '', "
            "CASE WHEN %s = 'published' THEN now() END, CASE WHEN %s = 'dead' THEN now() END) RETURNING id",
            [
                event_id,
                str(uuid.uuid4()),
                f'{{"message_id": "{uuid.uuid4()}", "receiver_id": 1, "read_at": "2026-01-01T00:00:00Z"}}',
                state,
                state,
            ],
        )
        return cursor.fetchone()[0]


def insert_inbox_entry(event_id: uuid.UUID) -> None:
    InboxEntry.objects.create(consumer="tests", event_id=event_id, event_type="message.read")


def partition_of(table: str, event_id: uuid.UUID) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT tableoid::regclass::text FROM {table} WHERE event_id = %s", [event_id])
        return cursor.fetchone()[0]
