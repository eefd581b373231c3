"""The outbox's own retention path: the only code allowed past the append-only delete guard.

It deletes published events in small batches, each in its own short transaction, so it never
holds long locks; the database still refuses to delete an event that is not published.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pgtrigger
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone

from outbox.models import DELETE_GUARD_URI, OutboxEvent

_DELETE_BATCH_SQL = f"""
    DELETE FROM {OutboxEvent._meta.db_table}
    WHERE id IN (
        SELECT id FROM {OutboxEvent._meta.db_table}
        WHERE published_at IS NOT NULL AND published_at < %s
        ORDER BY id
        LIMIT %s
        FOR UPDATE SKIP LOCKED
    )
"""


def delete_published_events(
    older_than: timedelta,
    *,
    batch_size: int = 1000,
    on_progress: Callable[[int], None] | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> int:
    """Delete events published more than `older_than` ago, `batch_size` rows per transaction."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    cutoff = timezone.now() - older_than
    deleted = 0
    while True:
        with (
            transaction.atomic(using=using),
            pgtrigger.ignore(DELETE_GUARD_URI, databases=[using]),
            connections[using].cursor() as cursor,
        ):
            cursor.execute(_DELETE_BATCH_SQL, [cutoff, batch_size])
            batch = cursor.rowcount
        deleted += batch
        if on_progress is not None:
            on_progress(deleted)
        if batch < batch_size:
            return deleted
