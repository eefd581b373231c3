"""The messaging service's broker topology, declared alike by the relay and the consumers.

- `messaging.events`: durable topic exchange; routing key = event type (`message.created`).
- `messaging.notifications`: the notifications consumer's queue, bound to `message.*`.
- `messaging.dead-letter` → `messaging.notifications.dead-letter`: what that consumer refuses.
- `messaging.notification-events`: bound to `notification.*`, for the services that tell users
  (push, e-mail, websockets); bounded, since it may have no consumer yet.

Queues are quorum queues: replicated and fsynced before the broker confirms a publish, and they
count deliveries (`x-delivery-count`), so a message that keeps failing can be bounded. The
notifications queue has a single active consumer: several consumers give fail-over, not
reordering.
"""

from __future__ import annotations

from kombu import Exchange, Queue

from outbox.broker import Topology

NOTIFICATIONS_CONSUMER = "notifications"
NOTIFICATION_EVENTS_CONSUMER = "notification-events"
# Every publish is mandatory: a notification event needs a queue bound for it even before any
# delivery service consumes it. Past this many, the oldest are dropped (quorum queues' drop-head).
NOTIFICATION_EVENTS_MAX_LENGTH = 100_000


def build_topology(namespace: str = "") -> Topology:
    """The topology with every name prefixed by `namespace` (empty in production)."""
    events = Exchange(f"{namespace}messaging.events", type="topic", durable=True)
    dead_letter = Exchange(f"{namespace}messaging.dead-letter", type="direct", durable=True)
    notifications_name = f"{namespace}messaging.notifications"
    dead_letter_name = f"{notifications_name}.dead-letter"
    notifications = Queue(
        notifications_name,
        exchange=events,
        routing_key="message.*",
        durable=True,
        queue_arguments={
            "x-queue-type": "quorum",
            # One consumer at a time takes deliveries, the others wait as hot standbys: each
            # message's events are applied in the order the relay published them.
            "x-single-active-consumer": True,
            "x-dead-letter-exchange": dead_letter.name,
            "x-dead-letter-routing-key": dead_letter_name,
        },
    )
    notifications_dead_letter = Queue(
        dead_letter_name,
        exchange=dead_letter,
        routing_key=dead_letter_name,
        durable=True,
        queue_arguments={"x-queue-type": "quorum"},
    )
    notification_events = Queue(
        f"{namespace}messaging.notification-events",
        exchange=events,
        routing_key="notification.*",
        durable=True,
        queue_arguments={
            "x-queue-type": "quorum",
            "x-single-active-consumer": True,
            "x-max-length": NOTIFICATION_EVENTS_MAX_LENGTH,
        },
    )
    return Topology(
        events=events,
        queues={NOTIFICATIONS_CONSUMER: notifications, NOTIFICATION_EVENTS_CONSUMER: notification_events},
        dead_letter_exchange=dead_letter,
        dead_letter_queues={NOTIFICATIONS_CONSUMER: notifications_dead_letter},
    )
