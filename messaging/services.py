"""Writes of the messaging domain; signals, admin actions, the consumer and the API call these.

Rules are checked here and broken ones raised as Django's ValidationError (keyed by field) or
PermissionDenied, which the API turns into 400 and 403 responses.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import uuid
from collections.abc import Sequence

import orjson
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils.text import Truncator
from rest_framework.authtoken.models import Token

from messaging.events import (
    MESSAGE_CREATED,
    MESSAGE_READ,
    NOTIFICATION_CREATED_FIELDS,
    message_created_event,
    message_read_event,
)
from messaging.metrics import NOTIFICATIONS_CREATED, NOTIFICATIONS_READ
from messaging.models import Message, Notification, SendLimitWindow
from outbox import tracing
from outbox.consuming import DeadLetter
from outbox.services import emit_many

logger = logging.getLogger(__name__)


# --- Messages -------------------------------------------------------------------------------


BLANK_CONTENT = "Message content may not be empty or only whitespace."
INACTIVE_RECEIVER = "No active user with this username."
# Messages go between two users (docs/decisions/self-messages.md); the database refuses them too.
SELF_RECEIVER = "You cannot send a message to yourself."
ONLY_RECEIVER_READS = "Only the receiver of a message can mark it read."
# Formatted as Django's MaxLengthValidator formats it, so the API's field error reads the same.
CONTENT_TOO_LONG = "Message content may be at most %(limit_value)d characters long, not %(show_value)d."


def message_content_errors(content: str) -> list[str]:
    """What is wrong with `content` as the text of a message; empty when nothing is."""
    if not content.strip():
        return [BLANK_CONTENT]
    if len(content) > settings.MESSAGE_MAX_LENGTH:
        return [CONTENT_TOO_LONG % {"limit_value": settings.MESSAGE_MAX_LENGTH, "show_value": len(content)}]
    return []


@transaction.atomic
def send_message(*, sender: AbstractBaseUser, receiver: AbstractBaseUser, content: str) -> Message:
    """Write a message; its `message.created` event commits with it (see Message.save).

    Raises ValidationError for empty, whitespace-only or too long content and for an inactive
    receiver or the sender as receiver, before anything is written.
    """
    errors = {}
    if content_errors := message_content_errors(content):
        errors["content"] = content_errors
    if not receiver.is_active:
        errors["receiver"] = [INACTIVE_RECEIVER]
    elif receiver.pk == sender.pk:
        errors["receiver"] = [SELF_RECEIVER]
    if errors:
        raise ValidationError(errors)
    # With tracing on, the transaction that writes the message and its event is a span of the request.
    with tracing.span("messaging.write_message"):
        message = Message.objects.create(sender=sender, receiver=receiver, content=content)
    logger.info("message.sent message_id=%s sender_id=%s receiver_id=%s", message.pk, sender.pk, receiver.pk)
    return message


def mark_message_read(*, message: Message, reader: AbstractBaseUser) -> Message:
    """`reader` reads `message`: the first time flips it read and appends `message.read`; later, nothing.

    Goes through `mark_read()`, which appends the event in the same transaction. Raises
    PermissionDenied unless `reader` is the message's receiver.
    """
    if message.receiver_id != reader.pk:
        raise PermissionDenied(ONLY_RECEIVER_READS)
    mark_messages_read(Message.objects.filter(pk=message.pk))
    message.is_read = True
    return message


def mark_messages_read(messages: QuerySet[Message]) -> int:
    """Mark the unread ones of `messages` read, each with its `message.read` event; return how many."""
    count = messages.mark_read()
    if count:
        logger.info("message.read count=%d", count)
    return count


def append_message_created(message: Message) -> None:
    """Append `message.created` for a message just inserted, in the open transaction."""
    emit_many([message_created_event(message)], returning=False)


def append_message_read(message: Message) -> None:
    """Append `message.read` for a message whose is_read just flipped to true."""
    emit_many([message_read_event(message.message_id, message.receiver_id)], returning=False)


# --- The send limit -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SendCount:
    """A user's sends in the current window of the send limit, this one included."""

    sends: int
    seconds_left: float


# One statement, so concurrent requests in any web process cannot read the same count: the
# conflicting INSERT waits for the other's row lock and adds to its committed count. The window
# comes from the database's clock, the one clock every web process shares.
_COUNT_SEND_SQL = f"""
WITH window_now AS (
    SELECT to_timestamp(floor(extract(epoch FROM clock_timestamp()) / %(period)s) * %(period)s) AS start
)
INSERT INTO {SendLimitWindow._meta.db_table} AS counted (user_id, period_seconds, window_start, sends)
SELECT %(user)s, %(period)s, window_now.start, 1 FROM window_now
ON CONFLICT (user_id, period_seconds, window_start) DO UPDATE SET sends = counted.sends + 1
RETURNING counted.sends, counted.window_start,
    extract(epoch FROM counted.window_start + make_interval(secs => %(period)s) - clock_timestamp())
"""
_FORGET_OLD_WINDOWS_SQL = f"DELETE FROM {SendLimitWindow._meta.db_table} WHERE user_id = %s AND window_start < %s"


def count_message_send(user: AbstractBaseUser, period_seconds: int) -> SendCount:
    """Count one more send of `user` in the current fixed window of `period_seconds`.

    docs/decisions/send-limit-counter.md says why a fixed window in PostgreSQL. Runs in
    autocommit (outside any atomic block), so the count commits before the request goes on.
    """
    with connection.cursor() as cursor:
        cursor.execute(_COUNT_SEND_SQL, {"user": user.pk, "period": period_seconds})
        sends, window_start, seconds_left = cursor.fetchone()
        if sends == 1:
            # The first send of a window: the user's earlier windows are over. One row per user
            # stays, whatever the traffic.
            cursor.execute(_FORGET_OLD_WINDOWS_SQL, [user.pk, window_start])
    return SendCount(sends=sends, seconds_left=max(float(seconds_left), 0.0))


# --- Notifications --------------------------------------------------------------------------


def notification_preview(content: str) -> str:
    """The start of a message, cut with an ellipsis past the configured length."""
    limit = settings.NOTIFICATION_PREVIEW_LENGTH
    # Truncator is slow (a regex per call) and a short message needs no cut: its length in
    # characters is an upper bound of the length Truncator counts.
    return content if len(content) <= limit else Truncator(content).chars(limit)


class EventContradictsOurRows(DeadLetter):
    """A message event whose people differ from the message row it names: forged, dead-lettered."""


# The events name a message; what a notification shows (who it is for, the sender's name, the
# text, read or not) comes from our own rows, so an event forged on the broker can at most repeat
# what a real one says (docs/decisions/notification-fields-from-our-rows.md). A whole batch is one
# statement on one JSON document: each event is checked against its message, the notifications of
# those that pass are inserted, and one row per event says what happened. ON CONFLICT without a
# target covers both guards: one notification per event, one `message` notification per message.
# A text longer than the preview comes back instead, to be cut in Python (Truncator) and inserted
# by a second statement: only batches holding long texts pay for it.
# Each event finds its message and sender by primary key, one lookup per event (LATERAL ... LIMIT 1
# keeps the planner from turning the lookup into a join): a plain join lets statistics choose a
# scan of the whole messages table (statistics taken when it was nearly empty do), which costs
# milliseconds for a single event.
_CREATE_NOTIFICATIONS_SQL = """
    WITH checked AS (
        SELECT d.event_id, d.message_id, d.position, m.message_id IS NOT NULL AS found,
               m.sender_id::text = d.sender_id AS same_sender, m.receiver_id::text = d.receiver_id AS same_receiver,
               m.receiver_id, m.is_read, m.content, u.{username} AS sender_name
        FROM jsonb_to_recordset(%(batch)s::jsonb)
             AS d(event_id uuid, message_id uuid, sender_id text, receiver_id text, position integer)
        LEFT JOIN LATERAL (
            SELECT m.message_id, m.sender_id, m.receiver_id, m.is_read, m.content
            FROM {messages} m WHERE m.message_id = d.message_id LIMIT 1
        ) m ON true
        LEFT JOIN LATERAL (SELECT u.{username} FROM {users} u WHERE u.{user_pk} = m.sender_id LIMIT 1) u ON true
    ), inserted AS (
        INSERT INTO {notifications}
            (notification_id, user_id, message_id, notification_type, title, content, is_read, created_at,
             source_event_id)
        SELECT gen_random_uuid(), c.receiver_id, c.message_id, %(type)s, %(title)s || c.sender_name, c.content,
               c.is_read, statement_timestamp(), c.event_id
        FROM checked c
        WHERE c.same_sender AND c.same_receiver AND char_length(c.content) <= %(limit)s
        ORDER BY c.position
        ON CONFLICT DO NOTHING
        RETURNING {created_columns}
    )
    SELECT c.event_id, c.message_id, c.found, c.same_sender, c.same_receiver, i.source_event_id IS NOT NULL,
           CASE WHEN char_length(c.content) > %(limit)s THEN c.content END, c.sender_name,
           {created_of_i}
    FROM checked c LEFT JOIN inserted i ON i.source_event_id = c.event_id
    ORDER BY c.position
"""
# What the inserts return of each notification they create: what its `notification.created`
# event carries, and the event it was built from.
_CREATED_COLUMNS = (*NOTIFICATION_CREATED_FIELDS, "source_event_id")
_CREATE_LONG_NOTIFICATIONS_SQL = f"""
    INSERT INTO {Notification._meta.db_table}
        (notification_id, user_id, message_id, notification_type, title, content, is_read, created_at,
         source_event_id)
    SELECT gen_random_uuid(), m.receiver_id, m.message_id, %s, d.title, d.content, m.is_read,
           statement_timestamp(), d.event_id
    FROM jsonb_to_recordset(%s::jsonb) AS d(event_id uuid, message_id uuid, title text, content text, position integer)
    JOIN LATERAL (
        SELECT m.message_id, m.receiver_id, m.is_read FROM {Message._meta.db_table} m
        WHERE m.message_id = d.message_id LIMIT 1
    ) m ON true
    ORDER BY d.position
    ON CONFLICT DO NOTHING
    RETURNING {", ".join(_CREATED_COLUMNS)}
"""
NEW_MESSAGE_TITLE = "New message from "


@functools.cache
def _create_notifications_sql() -> str:
    # The user model is known once the apps are loaded, not when this module is imported.
    users = get_user_model()._meta
    return _CREATE_NOTIFICATIONS_SQL.format(
        messages=Message._meta.db_table,
        notifications=Notification._meta.db_table,
        users=users.db_table,
        user_pk=users.pk.column,
        username=users.get_field(users.model.USERNAME_FIELD).column,
        created_columns=", ".join(_CREATED_COLUMNS),
        created_of_i=", ".join(f"i.{column}" for column in _CREATED_COLUMNS),
    )


# `message.read` events checked against the messages they name, and the notifications of those
# that pass marked read, in one statement: one row per event with what the check found.
_MARK_READ_SQL = f"""
    WITH checked AS (
        SELECT d.event_id, d.message_id, m.message_id IS NOT NULL AS found,
               m.receiver_id::text = d.receiver_id AS same_receiver, coalesce(m.is_read, false) AS is_read
        FROM jsonb_to_recordset(%s::jsonb) AS d(event_id uuid, message_id uuid, receiver_id text)
        LEFT JOIN LATERAL (
            SELECT m.message_id, m.receiver_id, m.is_read FROM {Message._meta.db_table} m
            WHERE m.message_id = d.message_id LIMIT 1
        ) m ON true
    ), marked AS (
        UPDATE {Notification._meta.db_table} n SET is_read = true
        FROM checked c
        WHERE n.message_id = c.message_id AND c.same_receiver AND c.is_read AND NOT n.is_read
        RETURNING n.notification_id
    )
    SELECT c.event_id, c.message_id, c.found, c.same_receiver, c.is_read, (SELECT count(*) FROM marked)
    FROM checked c
"""


def _json(batch: list[dict]) -> str:
    # A batch's parameter document, encoded in C: the consumer sends one with every batch.
    return orjson.dumps(batch).decode()


def create_message_notifications(events: list[tuple[uuid.UUID, dict]]) -> list[dict]:
    """Build the receivers' notifications for `message.created` events; the rows built, in event order.

    Call inside the consumer's transaction, after its inbox records. Everything shown comes from
    the Message row the event names; the event's sender and receiver must match that row, or
    `EventContradictsOurRows` is raised (and the transaction must roll back). A message deleted
    meanwhile, or one already announced, gets no (second) notification: logged, not raised.
    Each row built is a dict of `NOTIFICATION_CREATED_FIELDS` and its `source_event_id`.
    """
    batch = [
        {
            "event_id": str(event_id),
            "message_id": data["message_id"],
            "sender_id": str(data["sender_id"]),
            "receiver_id": str(data["receiver_id"]),
            "position": position,
        }
        for position, (event_id, data) in enumerate(events)
    ]
    parameters = {
        "batch": _json(batch),
        "type": Notification.NotificationType.MESSAGE.value,
        "title": NEW_MESSAGE_TITLE,
        "limit": settings.NOTIFICATION_PREVIEW_LENGTH,
    }
    with connection.cursor() as cursor:
        cursor.execute(_create_notifications_sql(), parameters)
        outcomes = cursor.fetchall()
    created: dict[int, dict] = {}
    skipped, long = [], []
    for position, outcome in enumerate(outcomes):
        event_id, message_id, found, same_sender, same_receiver, inserted, long_content, sender_name = outcome[:8]
        if found and not (same_sender and same_receiver):
            raise _refused(MESSAGE_CREATED, event_id, message_id, "receiver_id" if same_sender else "sender_id")
        if inserted:
            created[position] = dict(zip(_CREATED_COLUMNS, outcome[8:], strict=True))
        elif found and long_content is not None:
            preview = notification_preview(long_content)
            long.append((position, event_id, message_id, NEW_MESSAGE_TITLE + sender_name, preview))
        else:
            skipped.append((event_id, message_id, "notification_exists" if found else "message_missing"))
    if long:
        inserted_long = _create_long_notifications(long)
        for position, event_id, message_id, *_ in long:
            if event_id in inserted_long:
                created[position] = inserted_long[event_id]
            else:
                skipped.append((event_id, message_id, "notification_exists"))
    for event_id, message_id, reason in skipped:
        logger.info("notification.skipped reason=%s event_id=%s message_id=%s", reason, event_id, message_id)
    if created:
        transaction.on_commit(lambda: NOTIFICATIONS_CREATED.inc(len(created)))
    return [created[position] for position in sorted(created)]


def _create_long_notifications(long: list[tuple]) -> dict[uuid.UUID, dict]:
    """Insert the notifications whose preview Python cut; the rows built, by the event they came from."""
    batch = [
        {
            "position": position,
            "event_id": str(event_id),
            "message_id": str(message_id),
            "title": title,
            "content": text,
        }
        for position, event_id, message_id, title, text in long
    ]
    with connection.cursor() as cursor:
        cursor.execute(_CREATE_LONG_NOTIFICATIONS_SQL, [Notification.NotificationType.MESSAGE.value, _json(batch)])
        rows = [dict(zip(_CREATED_COLUMNS, row, strict=True)) for row in cursor.fetchall()]
    return {row["source_event_id"]: row for row in rows}


def _refused(event_type: str, event_id, message_id, field: str) -> EventContradictsOurRows:
    """Log an event that contradicts our rows; the error that dead-letters it."""
    logger.warning(
        "notification.event_refused event_type=%s reason=%s_mismatch event_id=%s message_id=%s",
        event_type,
        field,
        event_id,
        message_id,
    )
    return EventContradictsOurRows(f"{event_type} {event_id}: {field} differs from message {message_id}'s own")


def apply_message_events(events: Sequence[tuple[str, uuid.UUID, dict]]) -> list[dict]:
    """Apply `(event type, event id, data)` message events to the notifications, in log order; the rows built.

    The notifications consumer applies each delivery and each batch of deliveries with it, and
    `rebuild_notifications` each page of the event log. Creations first, then reads: a read that
    comes before its creation in the same batch still ends read, and a whole batch costs a
    handful of queries. Raises `EventContradictsOurRows` for an event whose people differ from
    the message it names.
    """
    created = [(event_id, data) for event_type, event_id, data in events if event_type == MESSAGE_CREATED]
    read = [(event_id, data) for event_type, event_id, data in events if event_type == MESSAGE_READ]
    built = create_message_notifications(created) if created else []
    if read:
        apply_message_reads(read)
    return built


def apply_message_reads(events: list[tuple[uuid.UUID, dict]]) -> int:
    """Mark read the notifications of messages that `message.read` events name; how many.

    Only a message its receiver really read in our rows has its notification marked: a read
    naming another receiver raises `EventContradictsOurRows`; one for a message still unread
    here, or deleted, changes nothing and is logged.
    """
    batch = [
        {"event_id": str(event_id), "message_id": data["message_id"], "receiver_id": str(data["receiver_id"])}
        for event_id, data in events
    ]
    with connection.cursor() as cursor:
        cursor.execute(_MARK_READ_SQL, [_json(batch)])
        checked = cursor.fetchall()
    for event_id, message_id, found, same_receiver, is_read, _ in checked:
        if found and not same_receiver:
            raise _refused(MESSAGE_READ, event_id, message_id, "receiver_id")
        if not (found and is_read):
            reason = "message_unread" if found else "message_missing"
            logger.info("notification.read_skipped reason=%s event_id=%s message_id=%s", reason, event_id, message_id)
    count = checked[0][-1] if checked else 0
    if count:
        _count_read(count)
    return count


def mark_notifications_read(notifications: QuerySet[Notification]) -> int:
    """Mark the unread ones of `notifications` read; log and count them."""
    count = notifications.filter(is_read=False).update(is_read=True)
    if count:
        _count_read(count)
    return count


def mark_notification_read(notification: Notification) -> Notification:
    """Mark one notification read; reading it again changes nothing."""
    mark_notifications_read(Notification.objects.filter(pk=notification.pk))
    notification.is_read = True
    return notification


def mark_all_notifications_read(*, user: AbstractBaseUser) -> int:
    """Mark every unread notification of `user` read; return how many there were."""
    return mark_notifications_read(Notification.objects.filter(user=user))


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


# --- API tokens -----------------------------------------------------------------------------


def issue_api_token(user: AbstractBaseUser, *, rotate: bool = False) -> str:
    """The API token of `user`, created the first time; `rotate` replaces it, ending the old one.

    Raises ValidationError for an inactive user. The key is returned, never logged.
    """
    if not user.is_active:
        raise ValidationError("API tokens are only issued to active users.")
    with transaction.atomic():
        if rotate:
            Token.objects.filter(user=user).delete()
        # One token per user: the table's unique user column settles concurrent first calls.
        token, created = Token.objects.get_or_create(user=user)
    logger.info("api_token.issued user_id=%s new=%s rotated=%s", user.pk, created, rotate)
    return token.key
