"""Rebuild the Notification table from the event log, with the notifications consumer's own rules.

The `message.created` and `message.read` events in the outbox are read in id order, in keyset
pages, and applied through `services.apply_message_events`, exactly as the consumer applies a
batch of deliveries. Every event in the log counts, whatever its publishing state: pending and
dead events reach the consumer later, and applying them then changes nothing (unique
`source_event_id`, reads are idempotent).

One transaction, not build-then-swap. Readers keep seeing the old rows until COMMIT (MVCC), then
the new ones all at once, so no reader ever sees a half-empty table. The table is locked against
writes (SHARE ROW EXCLUSIVE; reads go on) before the log is read, so the live consumer cannot
apply an event to a row that is about to be replaced: it waits, then applies it to the rebuilt
rows, or finds it already there. A swap would need the table's constraints, indexes and grants
built twice and the consumer's writes during the build caught up by hand, for the same result.
The cost: writes to notifications (the consumer, users marking them read) wait for the rebuild,
and the old rows are left to vacuum.

An event whose data does not fit its registered schema (or, for `message.created`, does not name
its message) is skipped, logged by id and reason and counted in the result: the consumer
dead-letters such an event, so no notification was ever built from it.

What the log cannot know is carried over from the rows it replaces (matched by their source
event): the notification's id (API clients hold it) and when it was created (lists are ordered
by it), and a read made on the notification itself, which is no event. A notification the log
has no event for (a system notification, or one whose event was pruned) is left as it is.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.db import connection, transaction

from messaging import services
from messaging.events import MESSAGE_AGGREGATE, MESSAGE_CREATED, MESSAGE_READ
from messaging.models import Message, Notification
from outbox.errors import InvalidEventPayload, UnknownEventType
from outbox.models import OutboxEvent
from outbox.schemas import validate_event_data

logger = logging.getLogger(__name__)

Progress = Callable[[int], None]

_EVENTS = OutboxEvent._meta.db_table
_NOTIFICATIONS = Notification._meta.db_table
_MESSAGES = Message._meta.db_table
_TYPES = [MESSAGE_CREATED, MESSAGE_READ]


class IncompleteEventLog(Exception):
    """Events the rebuild needs were pruned by retention; rebuilding would lose notifications."""


@dataclass(frozen=True)
class RebuildResult:
    # Events applied; the skipped ones are not among them.
    events: int
    notifications: int
    # Rebuilt notifications that kept the id of the row they replaced.
    kept_ids: int
    # Events skipped because their data does not fit their schema, in log order.
    skipped_event_ids: tuple[uuid.UUID, ...] = ()


# Every message is written with its message.created event (the database guards that): one
# without it in the log lost it to retention (`outbox_prune`).
_MESSAGES_WITHOUT_CREATED_SQL = f"""
    SELECT count(*) FROM {_MESSAGES} m
    WHERE NOT EXISTS (
        SELECT 1 FROM {_EVENTS} e
        WHERE e.aggregate_type = %s AND e.aggregate_id = m.message_id::text AND e.event_type = %s
    )
"""

_PAGE_SQL = f"""
    SELECT id, event_id, event_type, schema_version, aggregate_id, payload::text FROM {_EVENTS}
    WHERE event_type = ANY(%s) AND id > %s ORDER BY id LIMIT %s
"""

# The rows the log rebuilds, set aside with what the log cannot know, then deleted.
_SET_ASIDE_SQL = f"""
    CREATE TEMPORARY TABLE rebuilt_notifications_kept ON COMMIT DROP AS
    SELECT n.notification_id, n.source_event_id, n.created_at, n.is_read
    FROM {_NOTIFICATIONS} n JOIN {_EVENTS} e ON e.event_id = n.source_event_id AND e.event_type = %s
"""
_DELETE_SQL = f"""
    DELETE FROM {_NOTIFICATIONS} n USING rebuilt_notifications_kept k WHERE n.source_event_id = k.source_event_id
"""
_RESTORE_KEPT_SQL = f"""
    UPDATE {_NOTIFICATIONS} n
    SET notification_id = k.notification_id, created_at = k.created_at, is_read = n.is_read OR k.is_read
    FROM rebuilt_notifications_kept k WHERE n.source_event_id = k.source_event_id
"""
# A notification that had no row left is dated by its event, not by the rebuild.
_DATE_NEW_SQL = f"""
    UPDATE {_NOTIFICATIONS} n SET created_at = e.occurred_at
    FROM {_EVENTS} e
    WHERE e.event_id = n.source_event_id AND e.event_type = %s
      AND NOT EXISTS (SELECT 1 FROM rebuilt_notifications_kept k WHERE k.source_event_id = n.source_event_id)
"""


def messages_without_created_event() -> int:
    """How many messages have no `message.created` in the log: retention pruned their history."""
    with connection.cursor() as cursor:
        cursor.execute(_MESSAGES_WITHOUT_CREATED_SQL, [MESSAGE_AGGREGATE, MESSAGE_CREATED])
        return cursor.fetchone()[0]


def notification_events_in_log() -> int:
    """How many events the rebuild reads (for a progress bar)."""
    return OutboxEvent.objects.filter(event_type__in=_TYPES).count()


@transaction.atomic
def rebuild_notifications(
    *, force: bool = False, batch_size: int = 1000, on_progress: Progress | None = None
) -> RebuildResult:
    """Replace every notification the event log builds with one built from the log, in one transaction.

    Raises `IncompleteEventLog` when retention pruned `message.created` events, unless `force`:
    then the notifications of those messages stay as they are, unrebuilt. Malformed events are
    skipped and listed in the result.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    with connection.cursor() as cursor:
        # Before anything is read: no consumer write may land on rows about to be replaced.
        cursor.execute(f"LOCK TABLE {_NOTIFICATIONS} IN SHARE ROW EXCLUSIVE MODE")
        missing = messages_without_created_event()
        if missing and not force:
            raise IncompleteEventLog(
                f"{missing} messages have no {MESSAGE_CREATED} event in the outbox: retention (outbox_prune) "
                "deleted part of the log, so their notifications cannot be rebuilt. Force it to rebuild the "
                "rest and leave those notifications as they are"
            )
        cursor.execute(_SET_ASIDE_SQL, [MESSAGE_CREATED])
        cursor.execute(_DELETE_SQL)
        events = 0
        skipped: list[uuid.UUID] = []
        for page in _event_pages(batch_size):
            applicable = _well_formed(page, skipped)
            services.apply_message_events(applicable)
            events += len(applicable)
            if on_progress is not None:
                on_progress(len(page))
        cursor.execute(_RESTORE_KEPT_SQL)
        kept = cursor.rowcount
        cursor.execute(_DATE_NEW_SQL, [MESSAGE_CREATED])
    notifications = Notification.objects.filter(source_event_id__isnull=False).count()
    return RebuildResult(events=events, notifications=notifications, kept_ids=kept, skipped_event_ids=tuple(skipped))


def _event_pages(batch_size: int) -> Iterator[list[tuple]]:
    """The log's message events in id order, `batch_size` at a time: keyset pages, never OFFSET."""
    after = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(_PAGE_SQL, [_TYPES, after, batch_size])
            rows = cursor.fetchall()
        if not rows:
            return
        yield rows
        after = rows[-1][0]


def _well_formed(rows: list[tuple], skipped: list[uuid.UUID]) -> list[tuple[str, uuid.UUID, dict]]:
    """The page's events whose data fits their schema, as `apply_message_events` takes them.

    The others go to `skipped`, each with a log line naming the event and the rule it breaks,
    never its data.
    """
    applicable = []
    for _, event_id, event_type, version, aggregate_id, payload in rows:
        try:
            # PostgreSQL stores JSON nested deeper than Python's decoder recurses.
            data = json.loads(payload)
            validate_event_data(event_type, version, data, aggregate_id=aggregate_id)
        except (RecursionError, UnknownEventType, InvalidEventPayload) as exc:
            logger.warning(
                'notifications.rebuild_skipped_event event_id=%s event_type=%s reason="%s"', event_id, event_type, exc
            )
            skipped.append(event_id)
            continue
        applicable.append((event_type, event_id, data))
    return applicable
