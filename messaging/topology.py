"""The messaging service's broker topology, declared alike by the relay and the consumers.

- `messaging.events`: durable topic exchange; routing key = event type (`message.created`).
- `messaging.notifications`: the notifications consumer's queue, bound to `message.*`.
- `messaging.dead-letter` → `messaging.notifications.dead-letter`: what that consumer refuses.

Queues are quorum queues: replicated and fsynced before the broker confirms a publish, and they
count deliveries (`x-delivery-count`), so a message that keeps failing can be bounded: the
consumer dead-letters a delivery its handler failed on CONSUMER_MAX_DELIVERIES times, and the
broker dead-letters one returned DELIVERY_LIMIT times (a consumer that dies on it each time).
The notifications queue has a single active consumer: several consumers give fail-over, not
reordering.

RabbitMQ refuses to redeclare a queue with other arguments: an existing queue declared without
the delivery limit needs a policy instead (see docs/consumer-robustness.md).
"""

from __future__ import annotations

from kombu import Exchange, Queue

from outbox.broker import Topology

NOTIFICATIONS_CONSUMER = "notifications"
# Above the consumer's own retries (CONSUMER_MAX_DELIVERIES), so that its dead letter, which
# carries the reason, comes first; the broker's bound catches what kills the consumer outright.
DELIVERY_LIMIT = 20


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
            "x-delivery-limit": DELIVERY_LIMIT,
        },
    )
    notifications_dead_letter = Queue(
        dead_letter_name,
        exchange=dead_letter,
        routing_key=dead_letter_name,
        durable=True,
        queue_arguments={"x-queue-type": "quorum"},
    )
    return Topology(
        events=events,
        queues={NOTIFICATIONS_CONSUMER: notifications},
        dead_letter_exchange=dead_letter,
        dead_letter_queues={NOTIFICATIONS_CONSUMER: notifications_dead_letter},
    )
