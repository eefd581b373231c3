"""The consumers' inbox: the record that an event was applied, written in the same transaction.

Idempotency is the unique key (consumer, event_id): a second delivery's insert finds the row and
does nothing, and a concurrent one waits on the first transaction and then does nothing.
"""

from __future__ import annotations

import uuid

import orjson
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from outbox.models import InboxEntry
from outbox.round_trips import one_round_trip
from outbox.services import require_transaction

_RECORD_SQL = f"""
    INSERT INTO {InboxEntry._meta.db_table} (consumer, event_id, event_type, subject, sequence, processed_at)
    VALUES (%s, %s, %s, %s, %s, now())
    ON CONFLICT (consumer, event_id) DO NOTHING
    RETURNING id
"""


# The batch travels as one JSON document (encoded by orjson, in C): psycopg adapts Python lists
# element by element, which cost more than the statement. Rows go in delivery order (ORDER BY
# position), so inbox ids follow it.
_RECORD_MANY_SQL = f"""
    INSERT INTO {InboxEntry._meta.db_table} (consumer, event_id, event_type, subject, sequence, processed_at)
    SELECT %s, batch.event_id, batch.event_type, batch.subject, batch.sequence, now()
    FROM jsonb_to_recordset(%s::jsonb)
         AS batch(event_id uuid, event_type text, subject text, sequence bigint, position integer)
    ORDER BY batch.position
    ON CONFLICT (consumer, event_id) DO NOTHING
    RETURNING event_id
"""


def record_many_in_inbox(consumer: str, events, *, using: str = DEFAULT_DB_ALIAS) -> set[uuid.UUID]:
    """Record a batch of `ReceivedEvent`s in one statement; the ids that were not there yet."""
    require_transaction(using)
    batch = [
        {
            "event_id": str(event.event_id),
            "event_type": event.event_type,
            "subject": event.subject,
            "sequence": event.sequence,
            "position": position,
        }
        for position, event in enumerate(events)
    ]
    with connections[using].cursor() as cursor:
        # With the transaction's BEGIN, when it is the first statement, as a consumer's is.
        with one_round_trip(using):
            cursor.execute(_RECORD_MANY_SQL, [consumer, orjson.dumps(batch).decode()])
        return {row[0] for row in cursor.fetchall()}


def record_in_inbox(
    consumer: str,
    event_id: uuid.UUID,
    event_type: str,
    *,
    subject: str = "",
    sequence: int | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> bool:
    """Record that `consumer` applies `event_id` in the open transaction; False if it already had.

    Call it first in the transaction that applies the event: on False, apply nothing.
    """
    require_transaction(using)
    with connections[using].cursor() as cursor:
        cursor.execute(_RECORD_SQL, [consumer, event_id, event_type, subject, sequence])
        return cursor.fetchone() is not None


def forget_inbox_entries(consumer: str, event_ids, *, using: str = DEFAULT_DB_ALIAS) -> int:
    """Forget that `consumer` applied these events, so that it applies them again; how many it had.

    For a replay meant to rebuild a consumer's state. Until the replayed events arrive, a late
    duplicate of one of them would be applied again: only do it for consumers whose effects are
    idempotent on their own, as the notifications are (`Notification.source_event_id` is unique).
    """
    with transaction.atomic(using=using):
        deleted, _ = InboxEntry.objects.using(using).filter(consumer=consumer, event_id__in=list(event_ids)).delete()
    return deleted
