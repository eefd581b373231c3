"""The parcel service's one event type, registered with the outbox like any other."""

from outbox.schemas import EventSchema, register_event_schema
from outbox.services import EventDraft

PARCEL_SENT = "parcel.sent"

PARCEL_SENT_V1 = EventSchema(
    event_type=PARCEL_SENT,
    version=1,
    schema={
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "parcel.sent v1",
        "type": "object",
        "required": ["parcel_id", "destination", "weight_grams"],
        "properties": {
            "parcel_id": {"type": "string"},
            "destination": {"type": "string", "minLength": 1},
            "weight_grams": {"type": "integer", "minimum": 1},
        },
        "additionalProperties": False,
    },
)


def register_parcel_event_schemas() -> None:
    register_event_schema(PARCEL_SENT_V1)


def parcel_sent_event(parcel) -> EventDraft:
    return EventDraft(
        aggregate_type="parcel",
        aggregate_id=parcel.parcel_id,
        event_type=PARCEL_SENT,
        payload={
            "parcel_id": str(parcel.parcel_id),
            "destination": parcel.destination,
            "weight_grams": parcel.weight_grams,
        },
    )
