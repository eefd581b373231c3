"""The notifications consumer: builds each user's Notification rows from message events.

Each batch also appends `notification.created` / `notification.read` for what it changed, in the
same transaction (`messaging/notification_events.py`).
"""

from __future__ import annotations

from messaging import notification_events, services
from messaging.events import MESSAGE_CREATED, MESSAGE_READ
from messaging.topology import NOTIFICATIONS_CONSUMER
from outbox.consuming import EventHandler, InboxConsumer
from outbox.envelope import ReceivedEvent


class NotificationsConsumer(InboxConsumer):
    """`message.created` creates the receiver's notification; `message.read` marks it read."""

    name = NOTIFICATIONS_CONSUMER
    accepted_versions = {MESSAGE_CREATED: (1,), MESSAGE_READ: (1,)}

    def handlers(self) -> dict[str, EventHandler]:
        return {MESSAGE_CREATED: self.apply_message_created, MESSAGE_READ: self.apply_message_read}

    def apply_batch(self, events: list[ReceivedEvent]) -> None:
        notification_events.apply_message_events_announcing_notifications(
            [(event.event_type, event.event_id, event.data) for event in events]
        )

    @staticmethod
    def apply_message_created(event: ReceivedEvent) -> None:
        services.create_message_notifications([(event.event_id, event.data)])

    @staticmethod
    def apply_message_read(event: ReceivedEvent) -> None:
        services.mark_message_notifications_read(message_ids=[event.data["message_id"]])
