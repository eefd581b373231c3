"""The CloudEvents 1.0 structured-mode envelope on the wire."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from outbox.envelope import CONTENT_TYPE, PERSISTENT, OutgoingEvent, amqp_properties, decode_event, encode_event
from outbox.errors import MalformedEnvelope


def outgoing(**overrides) -> OutgoingEvent:
    fields = {
        "id": 42,
        "event_id": uuid.uuid4(),
        "aggregate_type": "message",
        "aggregate_id": str(uuid.uuid4()),
        "event_type": "message.read",
        "schema_version": 1,
        "payload_json": '{"message_id": "m", "receiver_id": 3}',
        "headers": {"correlation_id": "c-1"},
        "occurred_at": datetime(2026, 11, 24, 6, 0, 0, 123456, tzinfo=UTC),
    }
    fields.update(overrides)
    return OutgoingEvent(**fields)


def test_encoded_event_is_a_cloudevents_1_0_structured_document(settings):
    settings.EVENT_SCHEMA_BASE_URL = "http://127.0.0.1:8000/api/events/schemas"
    event = outgoing()

    document = json.loads(encode_event(event, source="/messaging-service"))

    assert document == {
        "specversion": "1.0",
        "id": str(event.event_id),
        "source": "/messaging-service",
        "type": "message.read",
        "subject": event.aggregate_id,
        "time": "2026-11-24T06:00:00.123456Z",
        "datacontenttype": "application/json",
        "dataschema": "http://127.0.0.1:8000/api/events/schemas/message.read/v1.json",
        "schemaversion": 1,
        "aggregatetype": "message",
        "sequence": "00000000000000000042",
        "data": {"message_id": "m", "receiver_id": 3},
    }


@given(
    source=st.text(),
    event_type=st.text(),
    aggregate_id=st.text(),
    aggregate_type=st.text(),
    schema_version=st.integers(min_value=0, max_value=32767),
    outbox_id=st.integers(min_value=1, max_value=2**63 - 1),
)
def test_encoded_event_is_exactly_what_json_dumps_writes(
    source, event_type, aggregate_id, aggregate_type, schema_version, outbox_id
):
    # encode_event writes the document by hand for speed; quotes, backslashes, control and
    # non-ASCII characters in the free-text fields must come out as json.dumps writes them.
    event = outgoing(
        id=outbox_id,
        event_type=event_type,
        aggregate_id=aggregate_id,
        aggregate_type=aggregate_type,
        schema_version=schema_version,
    )
    attributes = {
        "specversion": "1.0",
        "id": str(event.event_id),
        "source": source,
        "type": event_type,
        "subject": aggregate_id,
        "time": "2026-11-24T06:00:00.123456Z",
        "datacontenttype": "application/json",
        "dataschema": f"https://schemas.example/{event_type}/v{schema_version}.json",
        "schemaversion": schema_version,
        "aggregatetype": aggregate_type,
        "sequence": f"{outbox_id:020d}",
    }
    expected = json.dumps(attributes, separators=(",", ":"))[:-1] + ',"data":' + event.payload_json + "}"

    assert encode_event(event, source=source, schema_base_url="https://schemas.example") == expected.encode()


def test_amqp_properties_carry_the_event_id_content_type_and_persistence():
    event = outgoing()

    properties = amqp_properties(event)

    assert properties["message_id"] == str(event.event_id)
    assert properties["content_type"] == CONTENT_TYPE == "application/cloudevents+json"
    assert properties["delivery_mode"] == PERSISTENT == 2
    assert properties["application_headers"] == {"correlation_id": "c-1", "aggregate-id": event.aggregate_id}


def test_decoding_an_encoded_event_gives_back_its_fields():
    event = outgoing()

    received = decode_event(encode_event(event, source="/svc"))

    assert received.event_id == event.event_id
    assert received.event_type == "message.read"
    assert received.subject == event.aggregate_id
    assert received.time == event.occurred_at
    assert received.schema_version == 1
    assert received.sequence == 42
    assert received.data == {"message_id": "m", "receiver_id": 3}


def valid_document() -> dict:
    return json.loads(encode_event(outgoing(), source="/svc"))


def without(key: str) -> dict:
    document = valid_document()
    del document[key]
    return document


def with_value(key: str, value) -> dict:
    document = valid_document()
    document[key] = value
    return document


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff\xfe not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (json.dumps(with_value("specversion", "0.3")).encode(), "specversion"),
        (json.dumps(without("id")).encode(), "'id'"),
        (json.dumps(without("type")).encode(), "'type'"),
        (json.dumps(without("data")).encode(), "'data'"),
        (json.dumps(without("dataschema")).encode(), "'dataschema'"),
        (json.dumps(with_value("id", "not-a-uuid")).encode(), "not a UUID"),
        (json.dumps(with_value("time", "yesterday")).encode(), "RFC 3339"),
        (json.dumps(with_value("schemaversion", "one")).encode(), "schemaversion"),
        (json.dumps(with_value("datacontenttype", "text/xml")).encode(), "datacontenttype"),
    ],
    ids=[
        "not-json",
        "not-object",
        "specversion",
        "no-id",
        "no-type",
        "no-data",
        "no-dataschema",
        "bad-id",
        "bad-time",
        "bad-version",
        "xml",
    ],
)
def test_malformed_bodies_are_refused_with_the_reason(body, reason):
    with pytest.raises(MalformedEnvelope, match=reason):
        decode_event(body)
