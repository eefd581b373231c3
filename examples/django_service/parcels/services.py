"""Writes of the parcel service: each change and its event in one transaction."""

from django.db import transaction

from outbox.services import emit_many
from parcels.events import parcel_sent_event
from parcels.models import Parcel, ShippingLabel


@transaction.atomic
def send_parcel(*, destination: str, weight_grams: int) -> Parcel:
    """Record a parcel and append `parcel.sent`: both commit, or neither does."""
    parcel = Parcel.objects.create(destination=destination, weight_grams=weight_grams)
    emit_many([parcel_sent_event(parcel)], returning=False)
    return parcel


def create_shipping_label(data: dict) -> None:
    """Build a parcel's label from its `parcel.sent` data (inside the consumer's inbox transaction)."""
    ShippingLabel.objects.get_or_create(
        parcel_id=data["parcel_id"], defaults={"text": f"{data['destination']} ({data['weight_grams']} g)"}
    )
