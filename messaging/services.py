"""Writes of the messaging domain; signals, admin actions, the consumer and the API call these."""

from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils.text import Truncator

from messaging.events import message_created_event, message_read_event
from messaging.metrics import NOTIFICATIONS_CREATED, NOTIFICATIONS_READ
from messaging.models import Message, Notification
from outbox.services import emit_many

logger = logging.getLogger(__name__)


# --- Messages -------------------------------------------------------------------------------


@transaction.atomic
def send_message(*, sender, receiver, content: str) -> Message:
    """Write a message; its `message.created` event commits with it (see Message.save)."""
    return Message.objects.create(sender=sender, receiver=receiver, content=content)


def append_message_created(message: Message) -> None:
    """Append `message.created` for a message just inserted, in the open transaction."""
    emit_many([message_created_event(message)])


def append_message_read(message: Message) -> None:
    """Append `message.read` for a message whose is_read just flipped to true."""
    emit_many([message_read_event(message.message_id, message.receiver_id)])


# --- Notifications --------------------------------------------------------------------------


def notification_preview(content: str) -> str:
    """The start of a message, cut with an ellipsis past the configured length."""
    return Truncator(content).chars(settings.NOTIFICATION_PREVIEW_LENGTH)


def create_message_notifications(events: list[tuple[uuid.UUID, dict]]) -> list[Notification]:
    """Build the receivers' notifications for `message.created` events, in two queries.

    Call inside the consumer's transaction, after its inbox records. A notification starts read
    when its message already is: a `message.read` handled first then still ends in a read state.
    A message deleted meanwhile gets no notification.
    """
    stored = dict(
        Message.objects.filter(pk__in=[data["message_id"] for _, data in events]).values_list("pk", "is_read")
    )
    notifications = []
    for event_id, data in events:
        message_id = uuid.UUID(data["message_id"])
        if message_id not in stored:
            logger.info("notification.skipped reason=message_missing event_id=%s message_id=%s", event_id, message_id)
            continue
        notifications.append(
            Notification(
                user_id=data["receiver_id"],
                message_id=message_id,
                notification_type=Notification.NotificationType.MESSAGE,
                title=f"New message from {data['sender_username']}",
                content=notification_preview(data["content"]),
                is_read=bool(data["is_read"] or stored[message_id]),
                source_event_id=event_id,
            )
        )
    created = Notification.objects.bulk_create(notifications)
    if created:
        transaction.on_commit(lambda: NOTIFICATIONS_CREATED.inc(len(created)))
    return created


def mark_message_notifications_read(*, message_ids) -> int:
    """Mark every unread notification of these messages read (their `message.read` events)."""
    return mark_notifications_read(Notification.objects.filter(message_id__in=message_ids))


def mark_notifications_read(notifications: QuerySet[Notification]) -> int:
    """Mark the unread ones of `notifications` read; log and count them."""
    count = notifications.filter(is_read=False).update(is_read=True)
    if count:
        _count_read(count)
    return count


def mark_notifications_unread(notifications: QuerySet[Notification]) -> int:
    """Mark the read ones of `notifications` unread."""
    return notifications.filter(is_read=True).update(is_read=False)


def record_notification_read(notification: Notification) -> None:
    """The seed's notification-read handler: a log line and a counter, never its content."""
    logger.info("notification.read notification_id=%s user_id=%s", notification.pk, notification.user_id)
    NOTIFICATIONS_READ.inc()


def _count_read(count: int) -> None:
    logger.info("notification.read count=%d", count)
    NOTIFICATIONS_READ.inc(count)
