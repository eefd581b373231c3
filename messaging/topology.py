"""The messaging service's broker topology, declared alike by the relay and the consumers.

- `messaging.events`: durable topic exchange; routing key = event type (`message.created`).
- `messaging.notifications`: the notifications consumer's queue, bound to `message.*`.
- `messaging.dead-letter` → `messaging.notifications.dead-letter`: what that consumer refuses.
- `messaging.notification-events`: bound to `notification.*`, for the services that tell users
  (push, e-mail, websockets); bounded, since it may have no consumer yet.

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

import re
from dataclasses import dataclass

from django.conf import settings
from kombu import Exchange, Queue

from outbox.broker import Topology

NOTIFICATIONS_CONSUMER = "notifications"
# RabbitMQ's name for the default exchange in permission checks (its real name is empty).
DEFAULT_EXCHANGE = "amq.default"
# A permission regex that matches no exchange or queue.
NOTHING = "^$"
# Above the consumer's own retries (CONSUMER_MAX_DELIVERIES), so that its dead letter, which
# carries the reason, comes first; the broker's bound catches what kills the consumer outright.
DELIVERY_LIMIT = 20
NOTIFICATION_EVENTS_CONSUMER = "notification-events"
# Every publish is mandatory: a notification event needs a queue bound for it even before any
# delivery service consumes it. Past this many, the oldest are dropped (quorum queues' drop-head).
NOTIFICATION_EVENTS_MAX_LENGTH = 100_000


def build_topology(namespace: str = "", partitions: int | None = None) -> Topology:
    """The topology with every name prefixed by `namespace` (empty in production).

    With `partitions` (default: CONSUMER_PARTITIONS) above 1, the notifications consumer reads
    `messaging.notifications.p0` … `.p<N-1>` behind `messaging.notifications.partitions`
    (outbox.partition_topology) and `messaging.notifications` itself is not declared.
    """
    if partitions is None:
        partitions = settings.CONSUMER_PARTITIONS
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
        partitions={NOTIFICATIONS_CONSUMER: partitions},
    )


@dataclass(frozen=True)
class BrokerPermissions:
    """One user's RabbitMQ permissions on a vhost: regexes over exchange and queue names."""

    configure: str
    write: str
    read: str


def broker_permissions(namespace: str = "") -> dict[str, BrokerPermissions]:
    """Least privilege per role of this service; `namespace` is a regex for BROKER_NAMESPACE.

    - relay: declares and publishes to the events exchange, reads nothing;
    - consumer: declares its queues, the notification events' queue and the dead-letter exchange,
      binds them (write on the queue, read on the exchange), consumes its queue, publishes only
      dead letters; with partitions, also declares, binds and reads its hash exchange
      (`<queue>.partitions`) and partition queues (`<queue>.p<n>`);
    - replay: publishes to the events exchange, to the consumer's hash exchange, or to one queue
      through the default exchange;
    - monitor: connects and counts queues (passive declares need no permission), nothing else.
    """
    topology = build_topology("")
    events = topology.events.name
    dead_letter = topology.dead_letter_exchange.name
    queue = topology.queue_for(NOTIFICATIONS_CONSUMER).name
    dead_letter_queue = topology.dead_letter_queue_for(NOTIFICATIONS_CONSUMER).name
    notification_events = topology.queue_for(NOTIFICATION_EVENTS_CONSUMER).name
    hash_exchange = f"{queue}.partitions"
    # Whatever CONSUMER_PARTITIONS is: changing it needs no new permissions.
    partition_queues = f"{re.escape(queue)}\\.p[0-9]+"
    consumer_owns = _names(
        namespace, dead_letter, queue, dead_letter_queue, notification_events, hash_exchange, raw=[partition_queues]
    )
    return {
        "relay": BrokerPermissions(configure=_names(namespace, events), write=_names(namespace, events), read=NOTHING),
        "consumer": BrokerPermissions(
            configure=consumer_owns,
            write=consumer_owns,
            read=_names(namespace, events, dead_letter, queue, hash_exchange, raw=[partition_queues]),
        ),
        "replay": BrokerPermissions(
            configure=NOTHING,
            write=f"^(?:{namespace}(?:{re.escape(events)}|{re.escape(hash_exchange)})|{re.escape(DEFAULT_EXCHANGE)})$",
            read=NOTHING,
        ),
        "monitor": BrokerPermissions(configure=NOTHING, write=NOTHING, read=NOTHING),
    }


def team_permissions(prefix: str, namespace: str = "") -> BrokerPermissions:
    """Another team's consumer: its own `prefix.` exchanges and queues, bound to our events exchange.

    It may read (bind from) the events exchange, never write to it. Raises ValueError for a
    prefix whose names would cover ours.
    """
    topology = build_topology("")
    own = f"^{namespace}{re.escape(prefix)}\\."
    ours = [topology.events.name, topology.dead_letter_exchange.name, *(q.name for q in topology.all_queues())]
    if any(re.match(own, name) for name in ours):
        raise ValueError(f"the prefix {prefix!r} covers this service's own exchanges and queues")
    read = f"^{namespace}(?:{re.escape(prefix)}\\..*|{re.escape(topology.events.name)})$"
    return BrokerPermissions(configure=own, write=own, read=read)


def _names(namespace: str, *names: str, raw: tuple[str, ...] | list[str] = ()) -> str:
    # `raw`: patterns already escaped, such as the partition queues' numbered names.
    return f"^{namespace}(?:{'|'.join([*(re.escape(name) for name in names), *raw])})$"
