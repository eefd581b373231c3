"""`notification.created` and `notification.read`, appended by the consumer with the notifications.

The notifications consumer applies a batch of message events through `services.apply_message_events`
and calls `apply_message_events_announcing_notifications` instead, which appends, in the same
transaction as the Notification and inbox rows, one event per notification the batch created and
one per notification that existed unread and became read. A redelivery creates and flips nothing,
so it appends nothing. A notification created already read is announced by its `notification.created`
(`is_read` true) alone; a rebuild (`rebuild_notifications`) announces nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from django.db import connection
from django.utils import timezone

from messaging import services
from messaging.events import MESSAGE_READ, notification_created_event, notification_read_event
from messaging.models import Message, Notification
from outbox.services import emit_many

_TABLE = Notification._meta.db_table
# The lock the update takes anyway, taken first: while `rebuild_notifications` holds the table, the
# consumer waits here, then reads the rebuilt rows, not the ones the rebuild replaced.
_LOCK_SQL = f"LOCK TABLE {_TABLE} IN ROW EXCLUSIVE MODE"
# The unread notifications the update will flip: those of messages read in our rows (a read event
# for a message still unread here changes nothing). Locked until the transaction ends: no one
# else may flip them between this read and the update.
_UNREAD_SQL = f"""
    SELECT n.notification_id, n.user_id FROM {_TABLE} n
    JOIN {Message._meta.db_table} m ON m.message_id = n.message_id AND m.is_read AND m.receiver_id = n.user_id
    WHERE n.message_id = ANY(%s::uuid[]) AND NOT n.is_read
    ORDER BY n.notification_id
    FOR UPDATE OF n
"""


def apply_message_events_announcing_notifications(events: Sequence[tuple[str, uuid.UUID, dict]]) -> None:
    """`services.apply_message_events`, plus the notification events of what it changed.

    Call inside the consumer's transaction, after its inbox records: the events commit with the
    notifications or not at all.
    """
    read_message_ids = [data["message_id"] for event_type, _, data in events if event_type == MESSAGE_READ]
    unread: list[tuple] = []
    if read_message_ids:
        with connection.cursor() as cursor:
            cursor.execute(_LOCK_SQL)
            cursor.execute(_UNREAD_SQL, [read_message_ids])
            unread = cursor.fetchall()
    created = services.apply_message_events(events)
    append_notification_events(created, unread)


def append_notification_events(created: list[dict], became_read: list[tuple]) -> None:
    """Append `notification.created` for each created row, then `notification.read` for each flip."""
    read_at = timezone.now()
    drafts = [notification_created_event(row) for row in created]
    drafts += [notification_read_event(notification_id, user_id, read_at) for notification_id, user_id in became_read]
    if drafts:
        emit_many(drafts, returning=False)
