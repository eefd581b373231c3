"""AMQP messages for outbox events, their content header packed directly.

py-amqp encodes a message's properties by walking all fourteen basic properties and dispatching
on each one's type code; in the relay's profile that walk was the largest single cost per event
(about 4 µs of the ~100 µs an event takes). Every event carries the same set of properties
(`outbox.envelope.amqp_properties` says which), so their flag word is a constant and each field
is packed straight into place: about 0.8 µs. The headers table, the one open-ended field, still
goes through py-amqp's own encoder, so it accepts and refuses exactly the same values. A set of
properties other than the usual one takes py-amqp's generic path. A test compares the bytes
with py-amqp's for many events.
"""

from __future__ import annotations

from struct import pack
from typing import Any

import amqp
from amqp.serialization import dumps

# (name, AMQP type) in the order of the basic class's property list, and each one's flag bit.
_USUAL = (
    ("content_type", "s", 15),
    ("content_encoding", "s", 14),
    ("application_headers", "F", 13),
    ("delivery_mode", "o", 12),
    ("message_id", "s", 7),
    ("timestamp", "L", 6),
    ("type", "s", 5),
)
_USUAL_NAMES = frozenset(name for name, _, _ in _USUAL)
_USUAL_FLAGS = pack(">H", sum(1 << bit for _, _, bit in _USUAL))
_EMPTY_TABLE = dumps(b"F", [{}])


def _shortstr(value: str) -> bytes:
    raw = value.encode("utf-8", "surrogatepass")
    # struct.error past 255 bytes, as py-amqp raises for the same value.
    return pack("B", len(raw)) + raw


def encode_properties(properties: dict[str, Any]) -> bytes | None:
    """The content-header property bytes of `properties`, or None when it is not the usual set.

    Raises what py-amqp raises for a value it cannot encode (TypeError, ValueError,
    struct.error, FrameSyntaxError).
    """
    if properties.keys() != _USUAL_NAMES or any(value is None for value in properties.values()):
        return None
    headers = properties["application_headers"]
    return b"".join(
        (
            _USUAL_FLAGS,
            _shortstr(properties["content_type"]),
            _shortstr(properties["content_encoding"]),
            dumps(b"F", [headers]) if headers else _EMPTY_TABLE,
            pack("B", properties["delivery_mode"]),
            _shortstr(properties["message_id"]),
            pack(">Q", properties["timestamp"]),
            _shortstr(properties["type"]),
        )
    )


class EventMessage(amqp.Message):
    """An `amqp.Message` whose properties are encoded once, when it is made.

    Encoding up front also means a header AMQP cannot encode is refused here, before anything
    is written to the connection.
    """

    def __init__(self, body: bytes, properties: dict[str, Any]) -> None:
        super().__init__(body, **properties)
        self._encoded_properties = encode_properties(properties)
        if self._encoded_properties is None:
            self._encoded_properties = super()._serialize_properties()

    def _serialize_properties(self) -> bytes:
        return self._encoded_properties
