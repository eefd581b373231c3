"""Time-ordered ids (UUIDv7, RFC 9562) for rows that an index keeps in id order.

A random (v4) id puts each insert on a random leaf of its index. Once the index is larger than
what one checkpoint cycle touches, nearly every insert is the first change to its leaf since the
last checkpoint, and PostgreSQL then writes the whole 8 kB page to the WAL: on a large outbox
those page images are most of a message's WAL (the message id is also the aggregate id the
outbox indexes; figures in docs/performance.md). A v7 id starts with the time in milliseconds,
so new ids land together at the index's right-hand end.

It tells the creation time to whoever sees the id; events and messages carry that time anyway.
"""

from __future__ import annotations

import uuid

# A stdlib uuid.UUID (compat), not the library's own type: psycopg, Django and json take it as is.
# Python 3.14's uuid.uuid7 can replace it.
from uuid_utils.compat import uuid7


def time_ordered_uuid() -> uuid.UUID:
    """A new UUIDv7: unique, and greater than the ids made before it in earlier milliseconds."""
    return uuid7()
