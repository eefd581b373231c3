"""The relay's AMQP publishes, packed here rather than by py-amqp's `basic_publish`.

Packing the frames of a whole batch and writing them a few dozen events at a time makes the
relay's publish several times cheaper than `basic_publish`, which encodes through py-amqp's
generic serializer, polls the socket for `connection.blocked` and makes one socket write per
event (docs/decisions/hand-packed-amqp-frames.md has the measurements). The relay reads what
the broker sends, `connection.blocked` included, while it waits for the batch's confirms.

Every event carries the same set of properties (`outbox.envelope.amqp_properties`), so their
flag word is a constant and each field is packed straight into place; the headers table, the one
open-ended field, goes through py-amqp's own encoder and so accepts and refuses the same values.
Any other set of properties takes py-amqp's generic path. The bytes are py-amqp's own, and what
this module relies on in py-amqp is pinned by tests/relay/test_amqp_frames.py.
"""

from __future__ import annotations

from struct import pack
from typing import Any

import amqp
from amqp.serialization import dumps

# (name, AMQP type, flag bit) of each usual property, in the order of py-amqp's
# `Message.PROPERTIES` (a test holds them to it).
USUAL_PROPERTIES = (
    ("content_type", "s", 15),
    ("content_encoding", "s", 14),
    ("application_headers", "F", 13),
    ("delivery_mode", "o", 12),
    ("message_id", "s", 7),
    ("timestamp", "L", 6),
    ("type", "s", 5),
)
_USUAL_NAMES = frozenset(name for name, _, _ in USUAL_PROPERTIES)
_USUAL_FLAGS = pack(">H", sum(1 << bit for _, _, bit in USUAL_PROPERTIES))
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


def content_properties(properties: dict[str, Any]) -> bytes:
    """The content header's property bytes: packed directly for the usual set, else by py-amqp.

    Raises what py-amqp raises for a value it cannot encode, before anything is written.
    """
    packed = encode_properties(properties)
    return packed if packed is not None else amqp.Message(b"", **properties)._serialize_properties()


# basic.publish (class 60, method 40), and the frame types of a published message.
_BASIC_CLASS = 60
_PUBLISH_METHOD = pack(">HHH", _BASIC_CLASS, 40, 0)  # the method's id, then its deprecated `ticket`
_METHOD_FRAME, _HEADER_FRAME, _BODY_FRAME = 1, 2, 3
_FRAME_END = b"\xce"


def _frame(frame_type: int, channel_id: int, payload: bytes) -> bytes:
    return pack(">BHI", frame_type, channel_id, len(payload)) + payload + _FRAME_END


def publish_frames(
    *,
    channel_id: int,
    frame_max: int,
    exchange: str,
    routing_key: str,
    mandatory: bool,
    properties: bytes,
    body: bytes,
) -> bytes:
    """The frames of one `basic.publish` of `body`: method, content header, and the body split
    into frames of at most `frame_max` bytes, exactly as py-amqp's frame writer writes them."""
    method = _PUBLISH_METHOD + _shortstr(exchange) + _shortstr(routing_key) + pack("B", 1 if mandatory else 0)
    frames = [
        _frame(_METHOD_FRAME, channel_id, method),
        _frame(_HEADER_FRAME, channel_id, pack(">HHQ", _BASIC_CLASS, 0, len(body)) + properties),
    ]
    chunk = frame_max - 8  # a frame's own header and end take 8 bytes of frame_max
    frames.extend(_frame(_BODY_FRAME, channel_id, body[at : at + chunk]) for at in range(0, len(body), chunk))
    return b"".join(frames)


class FrameWriter:
    """Packs each publish of a batch and writes them to the channel's socket a few dozen at a time.

    In writes of about `piece_bytes`, so that RabbitMQ routes one piece while the relay packs the
    next, where one write per batch would leave each side idle while the other works. Frames go
    out in the order they were added, which is the order of their delivery tags. One thread per
    connection: the writes bypass the lock of py-amqp's own frame writer.
    """

    def __init__(self, channel: amqp.Channel, piece_bytes: int = 32 * 1024) -> None:
        self._connection = channel.connection
        self._channel_id = channel.channel_id
        self._piece_bytes = piece_bytes
        self._frames: list[bytes] = []
        self._size = 0

    def publish(
        self, *, exchange: str, routing_key: str, mandatory: bool, properties: dict[str, Any], body: bytes
    ) -> None:
        """Pack one `basic.publish` of `body` and hold it with the others (see `add`).

        Raises what py-amqp raises for a value it cannot encode, before anything of it is held.
        """
        self.add(
            publish_frames(
                channel_id=self._channel_id,
                frame_max=self._connection.frame_max,
                exchange=exchange,
                routing_key=routing_key,
                mandatory=mandatory,
                properties=content_properties(properties),
                body=body,
            )
        )

    def add(self, frames: bytes) -> None:
        """Hold packed frames; write what is held once it reaches `piece_bytes`."""
        self._frames.append(frames)
        self._size += len(frames)
        if self._size >= self._piece_bytes:
            self.flush()

    def flush(self) -> None:
        """Write what is held; raises what the socket raises (OSError)."""
        if not self._frames:
            return
        self._connection.transport.write(b"".join(self._frames))
        # Counted as py-amqp counts its own writes: its heartbeat check reads this.
        self._connection.bytes_sent += 1
        self._frames.clear()
        self._size = 0
