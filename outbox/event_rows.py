"""Drafts made into event rows: checked, encoded, and the one INSERT statement that writes them.

Both ways of writing an append use it: at once, with the ids returned (`outbox.services`), and
behind, with the transaction's next statement or its COMMIT (`outbox.write_behind`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from outbox import tracing
from outbox.errors import InvalidEvent, InvalidEventPayload
from outbox.ids import time_ordered_uuid
from outbox.models import OutboxEvent
from outbox.schemas import latest_version, validate_event_data


@dataclass(frozen=True)
class EventDraft:
    """An event about to be appended."""

    aggregate_type: str
    aggregate_id: Any
    event_type: str
    payload: Mapping[str, Any]
    headers: Mapping[str, Any] = field(default_factory=dict)
    schema_version: int | None = None
    occurred_at: datetime | None = None


_TABLE = OutboxEvent._meta.db_table
# What every append writes; payload and headers as JSON text, so the stored document is exactly
# the one that was validated.
COLUMNS = (
    "event_id",
    "aggregate_type",
    "aggregate_id",
    "event_type",
    "schema_version",
    "occurred_at",
    "payload",
    "headers",
)
_INSERT_HEAD = f"INSERT INTO {_TABLE} ({', '.join(COLUMNS)}, attempts, last_error) VALUES "
_INSERT_ROW = "(" + ", ".join(["%s"] * len(COLUMNS)) + ", 0, '')"


@dataclass(frozen=True)
class EventRow:
    """A checked draft: `values` in `COLUMNS` order; `payload` and `headers` as JSON decodes them."""

    values: tuple[Any, ...]
    payload: Any
    headers: Any

    @property
    def event_type(self) -> str:
        return self.values[COLUMNS.index("event_type")]

    def as_model(self) -> OutboxEvent:
        """The row as an unsaved model instance."""
        fields = dict(zip(COLUMNS, self.values, strict=True))
        return OutboxEvent(**fields | {"payload": self.payload, "headers": self.headers})


# What the text columns hold (the model's max_length): longer is refused here, by name, rather
# than by the database with a bare "value too long", possibly at COMMIT for a write-behind append.
_LIMITS = {name: OutboxEvent._meta.get_field(name).max_length for name in ("aggregate_type", "aggregate_id")}

# JSON is encoded by orjson, in C: the stdlib encoder calls back into Python for every UUID and
# datetime, a cost paid on every message's write (docs/performance.md). Datetimes, dates and times
# pass through to Django's encoder, so they read as Django writes them (ISO 8601, milliseconds,
# "Z"); orjson writes UUIDs as str() does.
# One stdlib encoder for the rest: what orjson refuses (non-string keys, integers past 64 bits,
# other types) and any output holding a null, which may be a NaN or an infinity orjson wrote as
# null. It refuses those (allow_nan=False), so the append fails here rather than losing a value.
_ENCODER = DjangoJSONEncoder(allow_nan=False)
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME


def insert_sql(count: int, *, returning: str = "") -> str:
    """The INSERT of `count` rows, whose parameters are `parameters(rows)`; in the rows' order.

    A VALUES list is inserted in its order, so a transaction's events of one aggregate get
    increasing ids, which is the publish order.
    """
    sql = _INSERT_HEAD + ", ".join([_INSERT_ROW] * count)
    return f"{sql} RETURNING {returning}" if returning else sql


# A few sizes only: one row is nearly every append, and each statement grows with its count.
@functools.lru_cache(maxsize=8)
def numbered_insert_sql(count: int) -> bytes:
    """`insert_sql(count)` with `$1, $2, …` placeholders, as libpq's extended protocol takes them."""
    placeholders = tuple(f"${number}" for number in range(1, count * len(COLUMNS) + 1))
    return (insert_sql(count) % placeholders).encode()


def parameters(rows: Iterable[EventRow]) -> list[Any]:
    """The parameters of `insert_sql(len(rows))`."""
    params: list[Any] = []
    for row in rows:
        params += row.values
    return params


def _to_json(value: Mapping[str, Any], event_type: str, name: str) -> tuple[str, Any]:
    # Store exactly what goes on the wire (UUIDs and datetimes as strings) and validate that.
    if not value:
        return "{}", {}
    document = value if type(value) is dict else dict(value)
    try:
        encoded = orjson.dumps(document, default=_ENCODER.default, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:
        encoded = None
    if encoded is not None and b"null" not in encoded:
        return encoded.decode(), orjson.loads(encoded)
    try:
        text = _ENCODER.encode(document)
    except ValueError as exc:
        # NaN, infinities, timezone-aware times: the stdlib's messages name the kind, not the value.
        raise InvalidEventPayload(f"{event_type} {name} cannot be encoded as JSON: {exc}") from None
    return text, json.loads(text)


def event_rows(drafts: Iterable[EventDraft]) -> list[EventRow]:
    """The drafts checked and encoded; raise `UnknownEventType`, `InvalidEventPayload` or `InvalidEvent`."""
    now = timezone.now()
    # The span current at the append is the event's parent in its trace (outbox.tracing).
    trace_headers = tracing.current_headers() if tracing.ACTIVE else None
    rows = []
    for draft in drafts:
        aggregate_id = str(draft.aggregate_id)
        for name, value in (("aggregate_type", draft.aggregate_type), ("aggregate_id", aggregate_id)):
            if not value or len(value) > _LIMITS[name]:
                raise InvalidEvent(f"{draft.event_type} {name} must be 1 to {_LIMITS[name]} characters")
        version = draft.schema_version or latest_version(draft.event_type)
        payload_json, payload = _to_json(draft.payload, draft.event_type, "payload")
        validate_event_data(draft.event_type, version, payload, aggregate_id=aggregate_id)
        draft_headers = trace_headers | dict(draft.headers) if trace_headers else draft.headers
        headers_json, headers = _to_json(draft_headers, draft.event_type, "headers")
        values = (time_ordered_uuid(), draft.aggregate_type, aggregate_id, draft.event_type, version)
        values += (draft.occurred_at or now, payload_json, headers_json)
        rows.append(EventRow(values=values, payload=payload, headers=headers))
    return rows
