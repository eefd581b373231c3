"""Writes to the outbox: append events in the caller's transaction, claim and settle them.

`emit` is the one way to append an event. Claiming and settling are the relay's side; they live
here because they are rules of the event table, not of any broker.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import QuerySet
from django.utils import timezone

from outbox.envelope import OutgoingEvent
from outbox.errors import NotInTransaction
from outbox.models import OutboxEvent
from outbox.schemas import latest_version, validate_event_data

# last_error is for operators; keep it a line, not a stack dump.
MAX_ERROR_LENGTH = 1000


@dataclass(frozen=True)
class EventDraft:
    """An event about to be appended."""

    aggregate_type: str
    aggregate_id: Any
    event_type: str
    payload: Mapping[str, Any]
    headers: Mapping[str, Any] = field(default_factory=dict)
    schema_version: int | None = None
    occurred_at: datetime | None = None


def _to_json_value(value: Any) -> Any:
    # Store exactly what goes on the wire (UUIDs and datetimes as strings) and validate that.
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def require_transaction(using: str) -> None:
    if not transaction.get_connection(using).in_atomic_block:
        raise NotInTransaction(
            "outbox events must be appended inside transaction.atomic() together with the change "
            "they describe; outside one the event would commit on its own"
        )


def emit_many(drafts: Iterable[EventDraft], *, using: str = DEFAULT_DB_ALIAS) -> list[OutboxEvent]:
    """Append several events in one INSERT, inside the caller's open transaction."""
    require_transaction(using)
    now = timezone.now()
    rows = []
    for draft in drafts:
        version = draft.schema_version or latest_version(draft.event_type)
        payload = _to_json_value(dict(draft.payload))
        validate_event_data(draft.event_type, version, payload)
        rows.append(
            OutboxEvent(
                event_id=uuid.uuid4(),
                aggregate_type=draft.aggregate_type,
                aggregate_id=str(draft.aggregate_id),
                event_type=draft.event_type,
                schema_version=version,
                payload=payload,
                headers=_to_json_value(dict(draft.headers)),
                occurred_at=draft.occurred_at or now,
            )
        )
    if not rows:
        return []
    return OutboxEvent.objects.using(using).bulk_create(rows)


def emit(
    *,
    aggregate_type: str,
    aggregate_id: Any,
    event_type: str,
    payload: Mapping[str, Any],
    headers: Mapping[str, Any] | None = None,
    schema_version: int | None = None,
    occurred_at: datetime | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> OutboxEvent:
    """Append one event inside the caller's open transaction; raise `NotInTransaction` outside one.

    The payload is checked against the schema registered for `event_type` (the newest version
    unless `schema_version` is given), so a malformed event never reaches the table.
    """
    draft = EventDraft(
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        event_type=event_type,
        payload=payload,
        headers=headers or {},
        schema_version=schema_version,
        occurred_at=occurred_at,
    )
    return emit_many([draft], using=using)[0]


_TABLE = OutboxEvent._meta.db_table

# Pending events in id order whose retry time has come, skipping any event while an older event
# of the same aggregate is still pending (claimed by another relay, or waiting for its retry):
# that keeps each aggregate's events in order whatever the number of relays. Dead events do not
# hold their aggregate back.
_CLAIM_SQL = f"""
    SELECT e.id, e.event_id, e.aggregate_type, e.aggregate_id, e.event_type, e.schema_version,
           e.payload::text, e.headers::text, e.occurred_at, e.attempts
    FROM {_TABLE} e
    WHERE e.published_at IS NULL AND e.dead_at IS NULL
      AND (e.next_attempt_at IS NULL OR e.next_attempt_at <= statement_timestamp())
      AND NOT EXISTS (
          SELECT 1 FROM {_TABLE} older
          WHERE older.aggregate_type = e.aggregate_type AND older.aggregate_id = e.aggregate_id
            AND older.id < e.id AND older.published_at IS NULL AND older.dead_at IS NULL
      )
    ORDER BY e.id
    LIMIT %s
    FOR UPDATE OF e SKIP LOCKED
"""


def claim_pending_events(batch_size: int, *, using: str = DEFAULT_DB_ALIAS) -> list[OutgoingEvent]:
    """Lock up to `batch_size` unpublished events in id order; other relays skip them.

    The lock lasts as long as the caller's transaction: a relay that dies releases its batch at
    once, and the events stay pending for the next claim.
    """
    require_transaction(using)
    with connections[using].cursor() as cursor:
        cursor.execute(_CLAIM_SQL, [batch_size])
        rows = cursor.fetchall()
    return [
        OutgoingEvent(
            id=row[0],
            event_id=row[1],
            aggregate_type=row[2],
            aggregate_id=row[3],
            event_type=row[4],
            schema_version=row[5],
            payload_json=row[6],
            headers=json.loads(row[7]),
            occurred_at=row[8],
            attempts=row[9],
        )
        for row in rows
    ]


def mark_published(event_ids: Sequence[int], *, using: str = DEFAULT_DB_ALIAS) -> int:
    """Mark claimed events published; call only for events the broker has confirmed."""
    if not event_ids:
        return 0
    require_transaction(using)
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"UPDATE {_TABLE} "
            "SET published_at = statement_timestamp(), last_attempt_at = statement_timestamp(), "
            "attempts = attempts + 1, last_error = '', next_attempt_at = NULL "
            "WHERE id = ANY(%s) AND published_at IS NULL",
            [list(event_ids)],
        )
        return cursor.rowcount


# Exponential backoff with jitter (half to all of the capped delay), and the last attempt parks
# the event as dead. Computed in the database so that every relay applies one rule.
_FAILURE_SQL = f"""
    UPDATE {_TABLE}
    SET attempts = attempts + 1,
        last_attempt_at = statement_timestamp(),
        last_error = %(error)s,
        next_attempt_at = statement_timestamp() + make_interval(
            secs => least(%(base)s * power(2, attempts), %(cap)s) * (0.5 + random() / 2)
        ),
        dead_at = CASE WHEN attempts + 1 >= %(max_attempts)s THEN statement_timestamp() END
    WHERE id = %(id)s AND published_at IS NULL
    RETURNING dead_at IS NOT NULL
"""


def record_publish_failures(errors: Mapping[int, str], *, using: str = DEFAULT_DB_ALIAS) -> list[int]:
    """Count a failed attempt on each claimed event, schedule its retry; return those now dead."""
    if not errors:
        return []
    require_transaction(using)
    dead = []
    with connections[using].cursor() as cursor:
        for event_id, error in errors.items():
            cursor.execute(
                _FAILURE_SQL,
                {
                    "error": error[:MAX_ERROR_LENGTH],
                    "base": settings.OUTBOX_RETRY_BASE_SECONDS,
                    "cap": settings.OUTBOX_RETRY_MAX_SECONDS,
                    "max_attempts": settings.OUTBOX_MAX_ATTEMPTS,
                    "id": event_id,
                },
            )
            row = cursor.fetchone()
            if row and row[0]:
                dead.append(event_id)
    return dead


def retry_dead_events(events: QuerySet[OutboxEvent]) -> int:
    """Send dead events again: back to pending with a fresh attempt budget; the last error stays."""
    with transaction.atomic(using=events.db):
        return events.filter(dead_at__isnull=False, published_at__isnull=True).update(
            dead_at=None, next_attempt_at=None, attempts=0
        )
