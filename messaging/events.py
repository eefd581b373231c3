"""The events the messaging domain publishes: their names, JSON Schemas and how to build them.

This is the contract other teams' consumers read. Change a schema only by registering a new
version next to the old one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils import timezone

from outbox import tracing
from outbox.schemas import EventSchema, register_event_schema
from outbox.services import EventDraft

if TYPE_CHECKING:
    from messaging.models import Message

MESSAGE_AGGREGATE = "message"
MESSAGE_CREATED = "message.created"
MESSAGE_READ = "message.read"
NOTIFICATION_AGGREGATE = "notification"
NOTIFICATION_CREATED = "notification.created"
NOTIFICATION_READ = "notification.read"

_USER_ID = {"type": ["integer", "string"]}
_UUID = {"type": "string", "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"}
_TIME = {"type": "string", "format": "date-time", "minLength": 1}

MESSAGE_CREATED_V1 = EventSchema(
    event_type=MESSAGE_CREATED,
    version=1,
    schema={
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "message.created v1",
        "type": "object",
        "required": ["message_id", "sender_id", "sender_username", "receiver_id", "content", "sent_at", "is_read"],
        "properties": {
            "message_id": _UUID,
            "sender_id": _USER_ID,
            "sender_username": {"type": "string", "minLength": 1},
            "receiver_id": _USER_ID,
            "content": {"type": "string"},
            "sent_at": _TIME,
            "is_read": {"type": "boolean"},
        },
        "additionalProperties": False,
    },
    # The database guard on messages checks it too (messaging.models).
    aggregate_id_key="message_id",
)

MESSAGE_READ_V1 = EventSchema(
    event_type=MESSAGE_READ,
    version=1,
    schema={
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "message.read v1",
        "type": "object",
        "required": ["message_id", "receiver_id", "read_at"],
        "properties": {"message_id": _UUID, "receiver_id": _USER_ID, "read_at": _TIME},
        "additionalProperties": False,
    },
)


NOTIFICATION_CREATED_FIELDS = (
    "notification_id",
    "user_id",
    "message_id",
    "notification_type",
    "title",
    "content",
    "is_read",
    "created_at",
)

# For the services that tell users about their notifications (push, e-mail, websockets): what
# they show, never more of the message than the notification's own preview.
NOTIFICATION_CREATED_V1 = EventSchema(
    event_type=NOTIFICATION_CREATED,
    version=1,
    schema={
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "notification.created v1",
        "type": "object",
        "required": list(NOTIFICATION_CREATED_FIELDS),
        "properties": {
            "notification_id": _UUID,
            "user_id": _USER_ID,
            "message_id": {"oneOf": [_UUID, {"type": "null"}]},
            "notification_type": {"type": "string", "enum": ["message", "system"]},
            "title": {"type": "string"},
            "content": {"type": "string"},
            "is_read": {"type": "boolean"},
            "created_at": _TIME,
        },
        "additionalProperties": False,
    },
)

NOTIFICATION_READ_V1 = EventSchema(
    event_type=NOTIFICATION_READ,
    version=1,
    schema={
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "notification.read v1",
        "type": "object",
        "required": ["notification_id", "user_id", "read_at"],
        "properties": {"notification_id": _UUID, "user_id": _USER_ID, "read_at": _TIME},
        "additionalProperties": False,
    },
)


def register_message_event_schemas() -> None:
    """Make the messaging events known to the outbox (called from AppConfig.ready)."""
    register_event_schema(MESSAGE_CREATED_V1)
    register_event_schema(MESSAGE_READ_V1)
    register_event_schema(NOTIFICATION_CREATED_V1)
    register_event_schema(NOTIFICATION_READ_V1)


def message_created_event(message: Message, sender_username: str | None = None) -> EventDraft:
    """The `message.created` event of a freshly written message."""
    return EventDraft(
        aggregate_type=MESSAGE_AGGREGATE,
        aggregate_id=message.message_id,
        event_type=MESSAGE_CREATED,
        payload={
            "message_id": message.message_id,
            "sender_id": message.sender_id,
            "sender_username": sender_username or message.sender.get_username(),
            "receiver_id": message.receiver_id,
            "content": message.content,
            "sent_at": message.timestamp,
            "is_read": message.is_read,
        },
    )


def message_read_event(message_id, receiver_id) -> EventDraft:
    """The `message.read` event of a message its receiver has just read."""
    return EventDraft(
        aggregate_type=MESSAGE_AGGREGATE,
        aggregate_id=message_id,
        event_type=MESSAGE_READ,
        payload={"message_id": message_id, "receiver_id": receiver_id, "read_at": timezone.now()},
    )


def notification_created_event(row: dict) -> EventDraft:
    """The `notification.created` event of a notification row just inserted (its column values)."""
    return EventDraft(
        aggregate_type=NOTIFICATION_AGGREGATE,
        aggregate_id=row["notification_id"],
        event_type=NOTIFICATION_CREATED,
        payload={field: row[field] for field in NOTIFICATION_CREATED_FIELDS},
        # In the trace of the message event it was built from, when the consumer applies that one.
        headers=tracing.headers_caused_by(row["source_event_id"]) if row.get("source_event_id") else {},
    )


def notification_read_event(notification_id, user_id, read_at) -> EventDraft:
    """The `notification.read` event of a notification that has just become read."""
    return EventDraft(
        aggregate_type=NOTIFICATION_AGGREGATE,
        aggregate_id=notification_id,
        event_type=NOTIFICATION_READ,
        payload={"notification_id": notification_id, "user_id": user_id, "read_at": read_at},
    )
