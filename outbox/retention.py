"""The outbox's own retention path: the only code allowed past the append-only delete guard.

It deletes in small batches, each in its own short transaction, so it never holds long locks;
the database still refuses to delete an event that is not published (pending or dead).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import timedelta

import pgtrigger
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone

from outbox.models import DELETE_GUARD_URI, InboxEntry, OutboxEvent, WorkerHeartbeat

Progress = Callable[[int], None]

_DELETE_EVENTS_SQL = """
    DELETE FROM "{table}"
    WHERE id IN (
        SELECT id FROM "{table}"
        WHERE published_at IS NOT NULL AND published_at < %s
        ORDER BY id
        LIMIT %s
        FOR UPDATE SKIP LOCKED
    )
"""

_DELETE_INBOX_SQL = """
    DELETE FROM "{table}"
    WHERE id IN (
        SELECT id FROM "{table}"
        WHERE processed_at < %s
        ORDER BY id
        LIMIT %s
        FOR UPDATE SKIP LOCKED
    )
"""


def _delete_in_batches(sql: str, cutoff, batch_size: int, on_progress: Progress | None, using: str, guard) -> int:
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    deleted = 0
    while True:
        with transaction.atomic(using=using), guard(), connections[using].cursor() as cursor:
            cursor.execute(sql, [cutoff, batch_size])
            batch = cursor.rowcount
        deleted += batch
        if on_progress is not None:
            on_progress(batch)
        if batch < batch_size:
            return deleted


def delete_published_events(
    older_than: timedelta,
    *,
    batch_size: int = 1000,
    on_progress: Progress | None = None,
    table: str = OutboxEvent._meta.db_table,
    using: str = DEFAULT_DB_ALIAS,
) -> int:
    """Delete events published more than `older_than` ago, row by row; `on_progress` gets each batch's count.

    Retention drops whole partitions (`outbox.partitions.drop_expired_partitions`); this is for
    the rows of the DEFAULT partition (`table`), which no partition drop removes.
    """
    return _delete_in_batches(
        _DELETE_EVENTS_SQL.format(table=table),
        timezone.now() - older_than,
        batch_size,
        on_progress,
        using,
        lambda: pgtrigger.ignore(DELETE_GUARD_URI, databases=[using]),
    )


def delete_old_inbox_entries(
    older_than: timedelta,
    *,
    batch_size: int = 1000,
    on_progress: Progress | None = None,
    table: str = InboxEntry._meta.db_table,
    using: str = DEFAULT_DB_ALIAS,
) -> int:
    """Delete inbox rows older than `older_than`, row by row (in `table`: the DEFAULT partition, see above).

    Keep them longer than any delivery can be delayed: a duplicate that arrives after its inbox
    row is gone would be applied again (message.created still cannot build a second
    notification: `Notification.source_event_id` is unique).
    """
    return _delete_in_batches(
        _DELETE_INBOX_SQL.format(table=table),
        timezone.now() - older_than,
        batch_size,
        on_progress,
        using,
        contextlib.nullcontext,
    )


def delete_stale_heartbeats(older_than: timedelta, *, using: str = DEFAULT_DB_ALIAS) -> int:
    """Forget workers silent for longer than `older_than` (killed ones never clear theirs)."""
    deleted, _ = WorkerHeartbeat.objects.using(using).filter(beat_at__lt=timezone.now() - older_than).delete()
    return deleted


def delete_published_events_of(
    aggregate_type: str,
    aggregate_ids: list[str] | None = None,
    *,
    batch_size: int = 5000,
    using: str = DEFAULT_DB_ALIAS,
) -> int:
    """Delete the published events of one aggregate type (or of some of its aggregates), in batches.

    For erasing an aggregate's history or throwaway data such as a benchmark's; pending and dead
    events stay (the database refuses).
    """
    table = OutboxEvent._meta.db_table
    deleted = 0
    chunks = (
        [None]
        if aggregate_ids is None
        else [aggregate_ids[i : i + batch_size] for i in range(0, len(aggregate_ids), batch_size)]
    )
    for chunk in chunks:
        while True:
            with (
                transaction.atomic(using=using),
                pgtrigger.ignore(DELETE_GUARD_URI, databases=[using]),
                connections[using].cursor() as cursor,
            ):
                cursor.execute(
                    f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE aggregate_type = %s "
                    "AND published_at IS NOT NULL AND (%s::text[] IS NULL OR aggregate_id = ANY(%s::text[])) "
                    "LIMIT %s)",
                    [aggregate_type, chunk, chunk, batch_size],
                )
                batch = cursor.rowcount
            deleted += batch
            if batch < batch_size:
                break
    return deleted
