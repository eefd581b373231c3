"""Send parcels, relay their events, consume them into labels; print what happened (a smoke test)."""

import sys

from django.core.management.base import BaseCommand

from outbox.broker import broker_connection, declare_topology, delete_topology, load_topology
from outbox.models import OutboxEvent
from parcels.consumers import LabelsConsumer
from parcels.models import ShippingLabel
from parcels.services import send_parcel
from relay.relay import Relay


class Command(BaseCommand):
    help = "Send parcels through the outbox, relay and consume them, and report the counts."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--parcels", type=int, default=3)
        parser.add_argument("--delete-topology", action="store_true", help="delete the exchanges and queues after")

    def handle(self, *args, parcels: int, **options) -> None:
        with broker_connection() as connection:
            declare_topology(connection.channel(), load_topology())
        for number in range(parcels):
            send_parcel(destination=f"Depot {number}", weight_grams=100 * (number + 1))
        relay = Relay()
        try:
            relay.drain()
        finally:
            relay.publisher.close()
        consumer = LabelsConsumer()
        consumer.exit_when_idle = True
        consumer.run()
        if options["delete_topology"]:
            with broker_connection() as connection:
                delete_topology(connection.channel(), load_topology())
        loaded = sorted({name.split(".")[0] for name in sys.modules} & {"messaging", "tooling", "config"})
        published = OutboxEvent.objects.filter(published_at__isnull=False).count()
        self.stdout.write(
            f"events={OutboxEvent.objects.count()} published={published} labels={ShippingLabel.objects.count()} "
            f"service_modules_loaded={','.join(loaded) or 'none'}"
        )
