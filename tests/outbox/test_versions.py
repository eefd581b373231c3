"""Schema versions on the consumer's side: accepted as is, upcast from older, refused when newer."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from outbox import schemas
from outbox.envelope import ReceivedEvent, data_schema_url
from outbox.errors import InvalidEventPayload, UnknownEventType, UnsupportedEventVersion
from outbox.schemas import EventSchema, accept_event

TYPE = "parcel.sent"


def parcel_v2_from_v1(data: dict) -> dict:
    return {"parcel_id": data["parcel_id"], "weight_grams": data["weight_kg"] * 1000}


V1 = EventSchema(
    event_type=TYPE,
    version=1,
    schema={
        "type": "object",
        "required": ["parcel_id", "weight_kg"],
        "properties": {"parcel_id": {"type": "string"}, "weight_kg": {"type": "integer"}},
        "additionalProperties": False,
    },
)
V2 = EventSchema(
    event_type=TYPE,
    version=2,
    schema={
        "type": "object",
        "required": ["parcel_id", "weight_grams"],
        "properties": {"parcel_id": {"type": "string"}, "weight_grams": {"type": "integer"}},
        "additionalProperties": False,
    },
    upcast_from_previous=parcel_v2_from_v1,
)
V3_WITHOUT_UPCAST = EventSchema(
    event_type=TYPE, version=3, schema={"type": "object", "required": ["parcel_id"]}, upcast_from_previous=None
)


@pytest.fixture
def parcel_schemas(monkeypatch):
    """Versions 1 to 3 of a test-only event type, registered until the test ends."""
    monkeypatch.setattr(schemas, "_registry", dict(schemas._registry))
    monkeypatch.setattr(schemas, "_latest", dict(schemas._latest))
    for schema in (V1, V2, V3_WITHOUT_UPCAST):
        schemas.register_event_schema(schema)


def received(version: int, data: dict, **overrides) -> ReceivedEvent:
    fields = {
        "event_id": uuid.uuid4(),
        "event_type": TYPE,
        "source": "/test",
        "subject": "p-1",
        "time": datetime(2026, 1, 1, tzinfo=UTC),
        "schema_version": version,
        "aggregate_type": "parcel",
        "data": data,
        "dataschema": data_schema_url(TYPE, version),
    }
    fields.update(overrides)
    return ReceivedEvent(**fields)


def test_an_accepted_version_is_applied_as_it_came(parcel_schemas):
    event = received(2, {"parcel_id": "p-1", "weight_grams": 1500})

    assert accept_event(event, (2,)) is event


def test_an_older_version_is_upcast_by_the_function_registered_with_the_next_one(parcel_schemas):
    accepted = accept_event(received(1, {"parcel_id": "p-1", "weight_kg": 2}), (2,))

    assert accepted.schema_version == 2
    assert accepted.data == {"parcel_id": "p-1", "weight_grams": 2000}


def test_a_newer_version_than_the_consumer_accepts_is_refused_with_the_versions_it_reads(parcel_schemas):
    with pytest.raises(UnsupportedEventVersion, match=r"parcel.sent v3 is newer than .* \(v1, v2\)"):
        accept_event(received(3, {"parcel_id": "p-1"}), (1, 2))


def test_an_older_version_without_an_upcast_path_is_refused(parcel_schemas):
    with pytest.raises(UnsupportedEventVersion, match="v2 has no upcast to v3"):
        accept_event(received(2, {"parcel_id": "p-1", "weight_grams": 1}), (3,))


def test_an_older_version_is_checked_against_its_own_schema_before_it_is_upcast(parcel_schemas):
    with pytest.raises(InvalidEventPayload, match=r"parcel\.sent v1"):
        accept_event(received(1, {"parcel_id": "p-1", "weight_grams": 2}), (2,))


def test_an_event_naming_a_schema_that_is_not_ours_is_refused(parcel_schemas):
    event = received(1, {"parcel_id": "p-1", "weight_kg": 2}, dataschema="https://evil.example/parcel.sent/v1.json")

    with pytest.raises(UnknownEventType, match=r"dataschema is not this service.s schema of parcel\.sent v1"):
        accept_event(event, None)


def test_without_declared_versions_every_registered_version_is_taken_as_it_is(parcel_schemas):
    event = received(1, {"parcel_id": "p-1", "weight_kg": 2})

    assert accept_event(event, None) is event
