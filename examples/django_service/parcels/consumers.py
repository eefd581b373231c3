"""The labels consumer: the outbox's inbox consumer, applied to parcel events."""

from outbox.consuming import EventHandler, InboxConsumer
from outbox.envelope import ReceivedEvent
from parcels import services
from parcels.events import PARCEL_SENT
from parcels.topology import LABELS_CONSUMER


class LabelsConsumer(InboxConsumer):
    name = LABELS_CONSUMER
    accepted_versions = {PARCEL_SENT: (1,)}

    def handlers(self) -> dict[str, EventHandler]:
        return {PARCEL_SENT: self.apply_parcel_sent}

    @staticmethod
    def apply_parcel_sent(event: ReceivedEvent) -> None:
        services.create_shipping_label(event.data)
