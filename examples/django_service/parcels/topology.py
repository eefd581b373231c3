"""The parcel service's broker topology: its own exchange, one consumer queue and its dead letters."""

from kombu import Exchange, Queue

from outbox.broker import Topology

LABELS_CONSUMER = "labels"


def build_topology(namespace: str = "") -> Topology:
    events = Exchange(f"{namespace}parcels.events", type="topic", durable=True)
    dead_letter = Exchange(f"{namespace}parcels.dead-letter", type="direct", durable=True)
    labels_name = f"{namespace}parcels.labels"
    labels = Queue(
        labels_name,
        exchange=events,
        routing_key="parcel.*",
        durable=True,
        queue_arguments={
            "x-queue-type": "quorum",
            "x-single-active-consumer": True,
            "x-dead-letter-exchange": dead_letter.name,
            "x-dead-letter-routing-key": f"{labels_name}.dead-letter",
        },
    )
    labels_dead_letter = Queue(
        f"{labels_name}.dead-letter",
        exchange=dead_letter,
        routing_key=f"{labels_name}.dead-letter",
        durable=True,
        queue_arguments={"x-queue-type": "quorum"},
    )
    return Topology(
        events=events,
        queues={LABELS_CONSUMER: labels},
        dead_letter_exchange=dead_letter,
        dead_letter_queues={LABELS_CONSUMER: labels_dead_letter},
    )
