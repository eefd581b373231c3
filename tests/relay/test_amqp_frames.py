"""The relay's hand-packed AMQP properties and publish frames are byte for byte py-amqp's own.

They also fail when a py-amqp upgrade changes what `relay.amqp_frames` relies on: the bytes its
`basic_publish` writes, its list of basic properties, and the connection attributes the frame
writer uses (`transport`, `frame_max`, `bytes_sent` as its heartbeat reads it).
"""

from __future__ import annotations

import struct
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime

import amqp
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from outbox.envelope import OutgoingEvent, amqp_properties, encode_event
from relay.amqp_frames import USUAL_PROPERTIES, FrameWriter, content_properties, encode_properties

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


class _OfflineTransport:
    """A socket for a py-amqp connection that keeps what is written and has nothing to read."""

    connected = True

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data) -> None:
        self.written.append(bytes(data))

    @contextmanager
    def having_timeout(self, timeout):
        yield

    def read_frame(self):
        raise TimeoutError


def offline_channel(*, frame_max: int = 131072, channel_id: int = 1) -> amqp.Channel:
    """A real py-amqp channel on a connection whose socket is `_OfflineTransport`."""
    # Port 1: anything that tried to reach a broker would fail at once.
    connection = amqp.Connection(host="127.0.0.1:1", frame_max=frame_max)
    connection.transport = _OfflineTransport()
    connection.frame_writer = connection.frame_writer_cls(connection, connection.transport)
    return amqp.Channel(connection, channel_id)


@example(  # three body frames: py-amqp's path for bodies past frame_max
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
def test_the_frame_writer_writes_what_py_amqps_basic_publish_writes(
    body, frame_max, channel_id, exchange, routing_key, mandatory
):
    # Bodies past frame_max take py-amqp's other path, one write per frame: both are covered.
    properties = amqp_properties(event())
    theirs = offline_channel(frame_max=frame_max, channel_id=channel_id)
    ours = offline_channel(frame_max=frame_max, channel_id=channel_id)

    theirs.basic_publish(
        amqp.Message(body, **properties), exchange=exchange, routing_key=routing_key, mandatory=mandatory
    )
    writer = FrameWriter(ours)
    writer.publish(exchange=exchange, routing_key=routing_key, mandatory=mandatory, properties=properties, body=body)
    writer.flush()

    assert b"".join(ours.connection.transport.written) == b"".join(theirs.connection.transport.written)


def test_a_batch_written_in_pieces_is_byte_for_byte_py_amqps_publishes_in_order():
    events = [event(id=n, headers={"n": n}, payload_json='{"x":"' + "y" * 300 * n + '"}') for n in range(1, 30)]
    theirs, ours = offline_channel(), offline_channel()
    writer = FrameWriter(ours, piece_bytes=4096)

    for item in events:
        properties, body = amqp_properties(item), encode_event(item, source="test")
        theirs.basic_publish(
            amqp.Message(body, **properties), exchange="e", routing_key=item.event_type, mandatory=True
        )
        writer.publish(exchange="e", routing_key=item.event_type, mandatory=True, properties=properties, body=body)
    writer.flush()

    written = ours.connection.transport.written
    assert 1 < len(written) < len(events)  # in pieces, not one write per event
    assert all(len(piece) >= 4096 for piece in written[:-1])
    assert b"".join(written) == b"".join(theirs.connection.transport.written)


def test_an_unencodable_publish_is_refused_before_anything_is_held():
    channel = offline_channel()
    writer = FrameWriter(channel)
    properties = amqp_properties(event())

    with pytest.raises(struct.error):
        writer.publish(exchange="e", routing_key="k" * 256, mandatory=True, properties=properties, body=b"{}")
    writer.flush()

    assert channel.connection.transport.written == []


def test_the_frame_writers_writes_count_as_traffic_for_py_amqps_heartbeat():
    # The relay writes past py-amqp's frame writer; py-amqp must still see that the connection
    # is busy, or it sends heartbeats it does not need (and, idle, must still send them).
    heartbeat_frame = struct.pack(">BHI", 8, 0, 0) + b"\xce"
    channel = offline_channel()
    connection, written = channel.connection, channel.connection.transport.written
    connection.heartbeat = 10
    connection.heartbeat_tick()

    connection.last_heartbeat_sent -= 60
    writer = FrameWriter(channel)
    writer.publish(exchange="e", routing_key="k", mandatory=True, properties=amqp_properties(event()), body=b"{}")
    writer.flush()
    connection.heartbeat_tick()
    assert heartbeat_frame not in written

    connection.last_heartbeat_sent -= 60
    connection.heartbeat_tick()
    assert written[-1] == heartbeat_frame


def test_py_amqps_property_list_still_puts_the_packed_properties_at_their_flag_bits():
    # The packed header's flag word and field order follow py-amqp's list of basic properties.
    flag_bit_and_type = {name: (15 - index, kind) for index, (name, kind) in enumerate(amqp.Message.PROPERTIES)}

    assert {name: (bit, kind) for name, kind, bit in USUAL_PROPERTIES} == {
        name: flag_bit_and_type.get(name) for name, _, _ in USUAL_PROPERTIES
    }
    assert set(amqp_properties(event())) == {name for name, _, _ in USUAL_PROPERTIES}


def test_the_frame_writer_writes_whole_pieces_in_order_and_counts_them_as_sent():
    channel = offline_channel()
    writer = FrameWriter(channel, piece_bytes=100)

    for frames in (b"a" * 60, b"b" * 60, b"c" * 60):
        writer.add(frames)
    assert channel.connection.transport.written == [b"a" * 60 + b"b" * 60]  # the piece was full after the second
    writer.flush()
    writer.flush()  # nothing left: no empty write

    assert channel.connection.transport.written == [b"a" * 60 + b"b" * 60, b"c" * 60]
    assert channel.connection.bytes_sent == 2
