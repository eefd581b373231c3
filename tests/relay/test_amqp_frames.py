"""The relay's hand-packed AMQP properties and publish frames are byte for byte py-amqp's own."""

from __future__ import annotations

import struct
import uuid
from datetime import UTC, datetime

import amqp
import pytest
from amqp import spec
from amqp.method_framing import frame_writer
from amqp.serialization import dumps
from hypothesis import example, given
from hypothesis import strategies as st

from outbox.envelope import OutgoingEvent, amqp_properties
from relay.amqp_frames import FrameWriter, content_properties, encode_properties, publish_frames

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

    assert content_properties(properties) == amqp.Message(b"{}", **properties)._serialize_properties()


def test_an_unusual_set_of_properties_takes_py_amqps_path():
    properties = {"message_id": "m", "delivery_mode": 2, "priority": 5}

    assert encode_properties(properties) is None
    assert content_properties(properties) == amqp.Message(b"x", **properties)._serialize_properties()


@pytest.mark.parametrize(
    ("headers", "error"),
    [({"bad": object()}, amqp.exceptions.FrameSyntaxError), ({"k" * 300: 1}, struct.error)],
)
def test_unencodable_headers_are_refused_when_the_properties_are_packed(headers, error):
    properties = amqp_properties(event(headers=headers))

    with pytest.raises(error):
        amqp.Message(b"x", **properties)._serialize_properties()
    with pytest.raises(error):
        content_properties(properties)


class _Captured:
    """What py-amqp's frame writer needs of a connection and a transport, keeping what it writes."""

    def __init__(self, frame_max: int) -> None:
        self.frame_max = frame_max
        self.bytes_sent = 0
        self.written: list[bytes] = []

    def write(self, data) -> None:
        self.written.append(bytes(data))


@example(  # three body frames on py-amqp's path for large messages
    body=bytes(range(256)) * 40, frame_max=4096, channel_id=1, exchange="outbox.events", routing_key="a", mandatory=True
)
@given(
    body=st.binary(max_size=9000),
    frame_max=st.sampled_from([4096, 131072]),
    channel_id=st.integers(min_value=1, max_value=2047),
    exchange=st.sampled_from(["", "outbox.events"]),
    routing_key=st.text(max_size=60),
    mandatory=st.booleans(),
)
def test_publish_frames_equal_what_py_amqp_writes_for_the_same_publish(
    body, frame_max, channel_id, exchange, routing_key, mandatory
):
    # Bodies past frame_max take py-amqp's other path, one frame per piece: both are covered.
    properties = amqp_properties(event())
    captured = _Captured(frame_max)
    write_frame = frame_writer(captured, captured)
    write_frame(
        1,
        channel_id,
        spec.Basic.Publish,
        dumps("Bssbb", (0, exchange, routing_key, mandatory, False)),
        amqp.Message(body, **properties),
    )

    packed = publish_frames(
        channel_id=channel_id,
        frame_max=frame_max,
        exchange=exchange,
        routing_key=routing_key,
        mandatory=mandatory,
        properties=content_properties(properties),
        body=body,
    )

    assert packed == b"".join(captured.written)


def test_the_frame_writer_writes_whole_pieces_in_order_and_counts_them_as_sent():
    captured = _Captured(frame_max=4096)
    captured.transport = captured
    writer = FrameWriter(captured, piece_bytes=100)

    for frames in (b"a" * 60, b"b" * 60, b"c" * 60):
        writer.add(frames)
    assert captured.written == [b"a" * 60 + b"b" * 60]  # the piece was full after the second
    writer.flush()
    writer.flush()  # nothing left: no empty write

    assert captured.written == [b"a" * 60 + b"b" * 60, b"c" * 60]
    assert captured.bytes_sent == 2
