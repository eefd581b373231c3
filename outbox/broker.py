"""Broker plumbing shared by the relay and every consumer: connections and the topology.

The concrete topology (which exchange, which queues) belongs to the app that owns the events and
is named by `settings.BROKER_TOPOLOGY`; this module only knows how to build and declare one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from kombu import Connection, Exchange, Queue
from kombu.transport import virtual

from outbox.partition_topology import Partitions, declare_partitions, partitions_of


@dataclass(frozen=True)
class Topology:
    """The exchanges and queues of one event stream.

    `events` is the exchange the relay publishes to; `queues` maps a consumer name to its queue;
    `dead_letter_queues` are where those queues send what they refuse. Declaring everything
    from the publishing side too means an event is never published before its queues exist.
    `partitions` maps a consumer to its number of partition queues (outbox.partition_topology);
    a partitioned consumer's own queue is then a template, neither declared nor bound, since
    nobody would read it.
    """

    events: Exchange
    queues: dict[str, Queue] = field(default_factory=dict)
    dead_letter_exchange: Exchange | None = None
    dead_letter_queues: dict[str, Queue] = field(default_factory=dict)
    partitions: dict[str, int] = field(default_factory=dict)

    def queue_for(self, consumer: str) -> Queue:
        try:
            return self.queues[consumer]
        except KeyError:
            raise LookupError(f"the topology has no queue for consumer {consumer!r}") from None

    def dead_letter_queue_for(self, consumer: str) -> Queue:
        try:
            return self.dead_letter_queues[consumer]
        except KeyError:
            raise LookupError(f"the topology has no dead-letter queue for consumer {consumer!r}") from None

    def binding_keys_for(self, consumer: str) -> list[str]:
        """The binding keys that route the events exchange's events to `consumer`'s queue."""
        queue = self.queue_for(consumer)
        bindings = [(queue.exchange, queue.routing_key), *((b.exchange, b.routing_key) for b in queue.bindings)]
        return [key for exchange, key in bindings if exchange is not None and exchange.name == self.events.name]

    def routes_to(self, consumer: str, event_type: str) -> bool:
        """Whether an event of `event_type` published to the events exchange reaches `consumer`."""
        return any(topic_matches(key, event_type) for key in self.binding_keys_for(consumer))

    def all_queues(self) -> list[Queue]:
        return [*self.queues.values(), *self.dead_letter_queues.values()]

    def partitions_for(self, consumer: str) -> Partitions | None:
        """`consumer`'s partitions, or None when it consumes its one queue."""
        count = self.partitions.get(consumer, 1)
        if count <= 1:
            return None
        return partitions_of(self.queue_for(consumer), self.events, self.binding_keys_for(consumer), count)

    def declared_queues(self, *, partitioned: bool = True) -> list[Queue]:
        """The queues a declare creates: a partitioned consumer's partitions stand for its queue."""
        if not partitioned:
            return self.all_queues()
        partitioned_names = {self.queue_for(name).name for name in self.queues if self.partitions_for(name)}
        return [queue for queue in self.all_queues() if queue.name not in partitioned_names]


def topic_matches(binding_key: str, routing_key: str) -> bool:
    """Whether a topic exchange routes `routing_key` through `binding_key` (`*` one word, `#` any)."""
    return _words_match(binding_key.split("."), routing_key.split("."))


def _words_match(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_words_match(rest, words[skip:]) for skip in range(len(words) + 1))
    return bool(words) and head in ("*", words[0]) and _words_match(rest, words[1:])


def load_topology(namespace: str | None = None) -> Topology:
    """The topology named by `settings.BROKER_TOPOLOGY`, its names prefixed by the namespace."""
    build = import_string(settings.BROKER_TOPOLOGY)
    return build(settings.BROKER_NAMESPACE if namespace is None else namespace)


def declare_topology(channel, topology: Topology) -> None:
    """Declare every exchange, queue and binding of `topology` on `channel` (idempotent)."""
    if topology.dead_letter_exchange is not None:
        topology.dead_letter_exchange(channel).declare()
    topology.events(channel).declare()
    partitioned = _has_hash_exchange(channel)
    for queue in topology.declared_queues(partitioned=partitioned):
        queue(channel).declare()
    for consumer in topology.queues if partitioned else ():
        partitions = topology.partitions_for(consumer)
        if partitions is not None:
            declare_partitions(channel, partitions, topology.events)


def _has_hash_exchange(channel) -> bool:
    # kombu's virtual transports (the embedded broker) know no consistent-hash exchange: one
    # queue per consumer there.
    return not isinstance(channel, virtual.Channel)


def declare_events_exchange(channel, topology: Topology) -> None:
    """Declare only the events exchange: what a publisher with a user of its own may declare."""
    topology.events(channel).declare()


def declare_consumer_queues(channel, topology: Topology, consumer: str) -> None:
    """Declare `consumer`'s queue, its dead-letter exchange and queue, and their bindings.

    What a consumer with a user of its own may declare. The events exchange is bound to, not
    declared: until its publisher has declared it, the binding fails with NOT_FOUND. RabbitMQ
    lets only a user that may read a queue give it a dead-letter exchange, which is why the
    consumer, not the publisher, declares its queues.
    """
    if topology.dead_letter_exchange is not None:
        topology.dead_letter_exchange(channel).declare()
    partitions = topology.partitions_for(consumer) if _has_hash_exchange(channel) else None
    own = None if partitions is not None else topology.queue_for(consumer)
    for queue in (own, topology.dead_letter_queues.get(consumer)):
        if queue is not None:
            bound = queue(channel)
            # queue_declare + queue_bind, not declare(): that would declare the exchange too.
            bound.queue_declare()
            bound.queue_bind()
            for binding in bound.bindings:
                binding.bind(bound)
    if partitions is not None:
        declare_partitions(channel, partitions, topology.events)


def delete_topology(channel, topology: Topology) -> None:
    """Delete every queue and exchange of `topology`; for tests and throwaway namespaces."""
    for queue in topology.all_queues():
        queue(channel).delete()
    for consumer in topology.queues:
        partitions = topology.partitions_for(consumer)
        if partitions is not None and _has_hash_exchange(channel):
            for queue in partitions.queues:
                queue(channel).delete()
            partitions.exchange(channel).delete()
    topology.events(channel).delete()
    if topology.dead_letter_exchange is not None:
        topology.dead_letter_exchange(channel).delete()


# The settings naming each role's own broker URL (empty: the shared BROKER_URL).
ROLE_URL_SETTINGS = ("RELAY_BROKER_URL", "CONSUMER_BROKER_URL", "REPLAY_BROKER_URL")


@dataclass(frozen=True)
class BrokerRole:
    """Where a role (the relay, a consumer, a replay) connects, and whether with a user of its own."""

    url: str
    own_user: bool


def broker_role(setting: str) -> BrokerRole:
    """The role's URL from `setting` (e.g. `RELAY_BROKER_URL`), or the shared `BROKER_URL` when empty.

    Read at call time, so a test that points `BROKER_URL` elsewhere moves every role without a
    URL of its own.
    """
    own = getattr(settings, setting)
    return BrokerRole(url=own or settings.BROKER_URL, own_user=bool(own))


def broker_connection(url: str | None = None, **options) -> Connection:
    """A kombu connection to `settings.BROKER_URL` (not yet connected).

    The configured broker gets `settings.BROKER_TRANSPORT_OPTIONS` (where a serverless
    transport keeps its queues) under any options the caller gives.
    """
    options.setdefault("heartbeat", settings.BROKER_HEARTBEAT_SECONDS)
    options.setdefault("connect_timeout", 5)
    if url is None or url == settings.BROKER_URL:
        options["transport_options"] = {**settings.BROKER_TRANSPORT_OPTIONS, **options.get("transport_options", {})}
    return Connection(url or settings.BROKER_URL, **options)


# Frames read in one go while a worker waits: the broker's heartbeats, at most a few.
MAX_WAITING_FRAMES = 100


def serve_heartbeats(connection: Connection) -> None:
    """Keep a connection alive while its worker waits on something else: read, then send heartbeats.

    Frames nobody reads count as heartbeats missed: py-amqp then closes a connection to a broker
    that is well ("Too many heartbeats missed"). Deliveries read here reach their consumer's
    callback as usual. Raises the transport's connection errors.
    """
    for _ in range(MAX_WAITING_FRAMES):
        try:
            connection.drain_events(timeout=0)
        except TimeoutError:
            break
    connection.heartbeat_check()


def is_virtual_transport(url: str | None = None) -> bool:
    """True when the broker is one of kombu's virtual transports (no AMQP server behind it).

    Those store a message when the publish returns and know no publisher confirms,
    `mandatory` returns, quorum queues or broker-side dead-lettering.
    """
    return isinstance(broker_connection(url).transport, virtual.Transport)


def require_amqp(what: str, url: str | None = None) -> None:
    """Refuse to run `what` unless the broker is AMQP (RabbitMQ), with a clear error."""
    if is_virtual_transport(url):
        raise ImproperlyConfigured(
            f"{what} needs RabbitMQ (an amqp:// BROKER_URL); the broker is {describe_broker(url)}"
        )


def describe_broker(url: str | None = None) -> str:
    """The broker URL with its password masked, for log lines; a virtual transport's folder too."""
    connection = broker_connection(url)
    folder = connection.transport_options.get("data_folder_in")
    if folder:
        # Not as_uri(): for a URL without a host it warns and makes up "localhost".
        return f"{connection.transport.driver_type}:// (folder {folder})"
    return connection.as_uri(include_password=False)
