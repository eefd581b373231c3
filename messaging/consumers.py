"""The notifications consumer: builds each user's Notification rows from message events."""

from __future__ import annotations

from messaging import services
from messaging.events import MESSAGE_CREATED, MESSAGE_READ
from messaging.topology import NOTIFICATIONS_CONSUMER
from outbox.consuming import EventHandler, InboxConsumer
from outbox.envelope import ReceivedEvent


class NotificationsConsumer(InboxConsumer):
    """`message.created` creates the receiver's notification; `message.read` marks it read.

    A delivery alone and a batch go through the same service, which checks each event against
    the message row it names; one that contradicts it is dead-lettered with the reason.
    """

    name = NOTIFICATIONS_CONSUMER

    def handlers(self) -> dict[str, EventHandler]:
        return {MESSAGE_CREATED: self.apply_event, MESSAGE_READ: self.apply_event}

    def apply_batch(self, events: list[ReceivedEvent]) -> None:
        services.apply_message_events([(event.event_type, event.event_id, event.data) for event in events])

    @staticmethod
    def apply_event(event: ReceivedEvent) -> None:
        services.apply_message_events([(event.event_type, event.event_id, event.data)])
