"""The notifications consumer: builds each user's Notification rows from message events.

Each batch also appends `notification.created` / `notification.read` for what it changed, in the
same transaction (`messaging/notification_events.py`).
"""

from __future__ import annotations

from messaging import notification_events, services
from messaging.events import MESSAGE_CREATED, MESSAGE_READ
from messaging.topology import NOTIFICATION_EVENTS_CONSUMER, NOTIFICATIONS_CONSUMER
from outbox.consuming import EventHandler, InboxConsumer
from outbox.envelope import ReceivedEvent


class NotificationsConsumer(InboxConsumer):
    """`message.created` creates the receiver's notification; `message.read` marks it read.

    A delivery alone and a batch go through the same service, which checks each event against
    the message row it names; one that contradicts it is dead-lettered with the reason.
    """

    name = NOTIFICATIONS_CONSUMER
    accepted_versions = {MESSAGE_CREATED: (1,), MESSAGE_READ: (1,)}
    # It appends the notification events, so it gives them their queue (the relay's publishes are mandatory).
    declares_queues_of = (NOTIFICATION_EVENTS_CONSUMER,)

    def handlers(self) -> dict[str, EventHandler]:
        return {MESSAGE_CREATED: self.apply_event, MESSAGE_READ: self.apply_event}

    def apply_batch(self, events: list[ReceivedEvent]) -> None:
        notification_events.apply_message_events_announcing_notifications(
            [(event.event_type, event.event_id, event.data) for event in events]
        )

    @staticmethod
    def apply_event(event: ReceivedEvent) -> None:
        services.apply_message_events([(event.event_type, event.event_id, event.data)])
