import uuid

from django.db import models


class Parcel(models.Model):
    parcel_id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    destination = models.CharField(max_length=200)
    weight_grams = models.PositiveIntegerField()

    def __str__(self) -> str:
        return f"parcel {self.parcel_id}"


class ShippingLabel(models.Model):
    """Built by the labels consumer from `parcel.sent`; one per parcel."""

    parcel_id = models.UUIDField(unique=True)
    text = models.CharField(max_length=300)

    def __str__(self) -> str:
        return f"label of {self.parcel_id}"
