"""The event envelope on the wire: a CloudEvents 1.0 JSON document in structured mode.

https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/formats/json-format.md
One home for the wire format: the relay encodes with `encode_event`, consumers decode with
`decode_event`, and both use the AMQP properties defined here.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from typing import Any

import orjson
from django.conf import settings

from outbox.errors import MalformedEnvelope

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/cloudevents+json"
DATA_CONTENT_TYPE = "application/json"
# CloudEvents extension attributes (lowercase alphanumerics only, per the spec).
SCHEMA_VERSION_ATTRIBUTE = "schemaversion"
AGGREGATE_TYPE_ATTRIBUTE = "aggregatetype"
# The CloudEvents `sequence` extension: the outbox id, zero-padded so that it orders as a string.
SEQUENCE_ATTRIBUTE = "sequence"
# The CloudEvents distributed-tracing extension: the W3C trace context stored with the event.
TRACE_ATTRIBUTES = ("traceparent", "tracestate")
# AMQP delivery_mode 2: the broker writes the message to disk in a durable queue.
PERSISTENT = 2

_REQUIRED_STRINGS = ("id", "source", "type", "subject", "time", "dataschema")

# A JSON string literal of a str, exactly as json.dumps writes one (ASCII-only, escaped).
_quote = encode_basestring_ascii


@dataclass(frozen=True)
class OutgoingEvent:
    """What the relay needs of one outbox row to put it on the wire."""

    id: int
    event_id: uuid.UUID
    aggregate_type: str
    aggregate_id: str
    event_type: str
    schema_version: int
    payload_json: str
    headers: dict[str, Any]
    occurred_at: datetime
    attempts: int = 0


@dataclass(frozen=True)
class ReceivedEvent:
    """A CloudEvent a consumer took off the wire, its envelope checked, its data not yet."""

    event_id: uuid.UUID
    event_type: str
    source: str
    subject: str
    time: datetime
    schema_version: int
    aggregate_type: str
    data: Any
    sequence: int | None = None
    dataschema: str = ""
    # The distributed-tracing attributes as they came (outbox.tracing reads them; a bad one is ignored).
    trace_context: dict[str, Any] = field(default_factory=dict)


def format_sequence(outbox_id: int) -> str:
    return f"{outbox_id:020d}"


def data_schema_url(event_type: str, schema_version: int, base_url: str | None = None) -> str:
    """The URL where the `data` schema of `event_type` version `schema_version` is published."""
    base = settings.EVENT_SCHEMA_BASE_URL if base_url is None else base_url
    return f"{base}/{event_type}/v{schema_version}.json"


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, as CloudEvents asks."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def encode_event(event: OutgoingEvent, *, source: str, schema_base_url: str | None = None) -> bytes:
    """The structured-mode CloudEvents JSON body of `event`; its `dataschema` under `schema_base_url`.

    Written out by hand because the relay encodes every event: byte for byte what
    `json.dumps(attributes, separators=(",", ":"))` gives (a test holds it to that), at a fraction
    of the cost. Free text goes through json's own string quoting; ids, times and numbers need none.
    """
    # The payload is stored as JSON already: splice it in rather than parse and re-serialize it.
    return (
        f'{{"specversion":"{SPEC_VERSION}","id":"{event.event_id}","source":{_quote(source)},'
        f'"type":{_quote(event.event_type)},"subject":{_quote(event.aggregate_id)},'
        f'"time":"{format_time(event.occurred_at)}","datacontenttype":"{DATA_CONTENT_TYPE}",'
        f'"dataschema":{_quote(data_schema_url(event.event_type, int(event.schema_version), schema_base_url))},'
        f'"{SCHEMA_VERSION_ATTRIBUTE}":{int(event.schema_version)},'
        f'"{AGGREGATE_TYPE_ATTRIBUTE}":{_quote(event.aggregate_type)},'
        f'"{SEQUENCE_ATTRIBUTE}":"{format_sequence(event.id)}",{_trace_attributes(event.headers)}'
        f'"data":{event.payload_json}}}'
    ).encode()


def _trace_attributes(headers: dict[str, Any]) -> str:
    # Most events carry none: tracing is off by default, and old rows have no context.
    if not headers or "traceparent" not in headers:
        return ""
    return "".join(
        f'"{name}":{_quote(headers[name])},' for name in TRACE_ATTRIBUTES if isinstance(headers.get(name), str)
    )


# The header naming an event's aggregate; the partition exchange's `hash-header`.
AGGREGATE_ID_HEADER = "aggregate-id"


def amqp_properties(event: OutgoingEvent) -> dict[str, Any]:
    """AMQP basic properties for `event`: its id for broker-side dedupe tools, persistence."""
    return {
        "message_id": str(event.event_id),
        "content_type": CONTENT_TYPE,
        "content_encoding": "utf-8",
        "delivery_mode": PERSISTENT,
        "type": event.event_type,
        # AMQP timestamps are whole seconds; the CloudEvent's `time` keeps the precision.
        "timestamp": int(event.occurred_at.timestamp()),
        # The consistent-hash exchange hashes on this header, so one aggregate's events share a
        # partition queue and keep their order there.
        "application_headers": {**event.headers, AGGREGATE_ID_HEADER: event.aggregate_id},
    }


def _parse_json(body: bytes | str) -> Any:
    # orjson parses in C; what it refuses (NaN, integers past 64 bits, escaped lone surrogates,
    # nesting past 1,024 levels, as well as what is not JSON at all) goes to the stdlib's parser,
    # whose verdict is the rule: a consumer takes exactly what `json.loads` takes.
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


def decode_event(body: bytes | str) -> ReceivedEvent:
    """Parse and check a CloudEvents body; raise `MalformedEnvelope` saying what is wrong."""
    try:
        document = _parse_json(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: arrays or objects nested past the parser's depth.
        raise MalformedEnvelope(f"body is not JSON ({type(exc).__name__})") from None
    if not isinstance(document, dict):
        raise MalformedEnvelope("body is not a JSON object")
    if document.get("specversion") != SPEC_VERSION:
        raise MalformedEnvelope(f"specversion must be {SPEC_VERSION!r}")
    for attribute in _REQUIRED_STRINGS:
        value = document.get(attribute)
        if not isinstance(value, str) or not value:
            raise MalformedEnvelope(f"attribute {attribute!r} is missing or not a non-empty string")
    content_type = document.get("datacontenttype", DATA_CONTENT_TYPE)
    if content_type != DATA_CONTENT_TYPE:
        raise MalformedEnvelope(f"datacontenttype must be {DATA_CONTENT_TYPE!r}")
    if "data" not in document:
        raise MalformedEnvelope("attribute 'data' is missing")
    schema_version = document.get(SCHEMA_VERSION_ATTRIBUTE, 1)
    if not isinstance(schema_version, int) or isinstance(schema_version, bool) or schema_version < 1:
        raise MalformedEnvelope(f"attribute {SCHEMA_VERSION_ATTRIBUTE!r} must be a positive integer")
    try:
        event_id = uuid.UUID(document["id"])
    except ValueError:
        raise MalformedEnvelope("attribute 'id' is not a UUID") from None
    try:
        time = datetime.fromisoformat(document["time"])
    except ValueError:
        raise MalformedEnvelope("attribute 'time' is not an RFC 3339 timestamp") from None
    if time.tzinfo is None:
        raise MalformedEnvelope("attribute 'time' has no UTC offset")
    sequence = document.get(SEQUENCE_ATTRIBUTE)
    # ASCII first: str.isdigit() accepts digits int() refuses, such as "²".
    if sequence is not None and (not isinstance(sequence, str) or not (sequence.isascii() and sequence.isdigit())):
        raise MalformedEnvelope(f"attribute {SEQUENCE_ATTRIBUTE!r} must be a string of digits")
    return ReceivedEvent(
        event_id=event_id,
        event_type=document["type"],
        source=document["source"],
        subject=document["subject"],
        time=time,
        schema_version=schema_version,
        aggregate_type=str(document.get(AGGREGATE_TYPE_ATTRIBUTE, "")),
        data=document["data"],
        sequence=int(sequence) if sequence is not None else None,
        dataschema=document["dataschema"],
        trace_context={name: document[name] for name in TRACE_ATTRIBUTES if name in document},
    )
