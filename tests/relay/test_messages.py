"""The relay's hand-packed AMQP properties are byte for byte py-amqp's own encoding."""

from __future__ import annotations

import struct
import uuid
from datetime import UTC, datetime

import amqp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from outbox.envelope import OutgoingEvent, amqp_properties
from relay.messages import EventMessage, encode_properties

# Header values py-amqp can put in a table.
header_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=6,
)


def event(**overrides) -> OutgoingEvent:
    fields = {
        "id": 7,
        "event_id": uuid.uuid4(),
        "aggregate_type": "message",
        "aggregate_id": "m-1",
        "event_type": "message.created",
        "schema_version": 1,
        "payload_json": "{}",
        "headers": {},
        "occurred_at": datetime(2026, 11, 24, 6, 0, tzinfo=UTC),
    }
    fields.update(overrides)
    return OutgoingEvent(**fields)


@given(
    event_type=st.text(max_size=60),
    headers=st.dictionaries(st.text(max_size=20), header_values, max_size=4),
    seconds=st.integers(min_value=0, max_value=4_000_000_000),
)
def test_packed_properties_equal_py_amqps_encoding(event_type, headers, seconds):
    properties = amqp_properties(
        event(event_type=event_type, headers=headers, occurred_at=datetime.fromtimestamp(seconds, UTC))
    )

    assert (
        EventMessage(b"{}", properties)._serialize_properties()
        == amqp.Message(b"{}", **properties)._serialize_properties()
    )


def test_an_unusual_set_of_properties_takes_py_amqps_path():
    properties = {"message_id": "m", "delivery_mode": 2, "priority": 5}

    assert encode_properties(properties) is None
    assert (
        EventMessage(b"x", properties)._serialize_properties()
        == amqp.Message(b"x", **properties)._serialize_properties()
    )


@pytest.mark.parametrize(
    ("headers", "error"),
    [({"bad": object()}, amqp.exceptions.FrameSyntaxError), ({"k" * 300: 1}, struct.error)],
)
def test_unencodable_headers_are_refused_when_the_message_is_made(headers, error):
    properties = amqp_properties(event(headers=headers))

    with pytest.raises(error):
        amqp.Message(b"x", **properties)._serialize_properties()
    with pytest.raises(error):
        EventMessage(b"x", properties)
