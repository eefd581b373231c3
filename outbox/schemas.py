"""The registry of event schemas: what each event type's `data` must look like, per version.

Apps register a JSON Schema for every event type they emit (in their AppConfig.ready). The same
schema is checked when an event is appended and when a consumer receives it, so a malformed
event is refused at the door on both sides. JSON Schema (draft-07), because other teams' services
read it; compiled to Python by fastjsonschema, because it is checked on every write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import fastjsonschema

from outbox.errors import InvalidEventPayload, UnknownEventType


@dataclass(frozen=True)
class EventSchema:
    """The JSON Schema of one version of one event type.

    `aggregate_id_key` names the key of `data` that must hold the event's aggregate id, for event
    types whose consumers find the aggregate in the data: JSON Schema cannot compare a value with
    one outside the document.
    """

    event_type: str
    version: int
    schema: dict[str, Any]
    aggregate_id_key: str | None = None


_registry: dict[tuple[str, int], tuple[EventSchema, Callable[[Any], Any]]] = {}
# Event type -> its newest registered version; asked on every append.
_latest: dict[str, int] = {}


def register_event_schema(schema: EventSchema) -> None:
    """Register `schema`; registering the same type and version twice must give the same schema."""
    key = (schema.event_type, schema.version)
    existing = _registry.get(key)
    if existing is not None and existing[0] != schema:
        raise ValueError(f"a different schema is already registered for {schema.event_type} v{schema.version}")
    # Compiling refuses a broken schema at registration, not at the first event.
    _registry[key] = (schema, fastjsonschema.compile(schema.schema))
    _latest[schema.event_type] = max(schema.version, _latest.get(schema.event_type, 0))


def registered_schemas() -> list[EventSchema]:
    """Every registered schema, sorted by event type and version."""
    return [schema for schema, _ in sorted(_registry.values(), key=lambda item: (item[0].event_type, item[0].version))]


def latest_version(event_type: str) -> int:
    """The newest registered version of `event_type`."""
    version = _latest.get(event_type)
    if version is None:
        raise UnknownEventType(f"no schema is registered for event type {event_type!r}")
    return version


def validate_event_data(event_type: str, version: int, data: Any, *, aggregate_id: str | None = None) -> None:
    """Raise `UnknownEventType` or `InvalidEventPayload` unless `data` fits the registered schema.

    Given the event's `aggregate_id`, `data` must also hold it under the schema's `aggregate_id_key`.
    """
    entry = _registry.get((event_type, version))
    if entry is None:
        raise UnknownEventType(f"no schema is registered for event type {event_type!r} version {version}")
    schema, validate = entry
    try:
        validate(data)
    except fastjsonschema.JsonSchemaValueException as exc:
        where = "/".join(_path_part(part) for part in exc.path[1:]) or "(root)"
        # Name the rule that failed, never the value: message content must not reach a log line.
        raise InvalidEventPayload(f"{event_type} v{version} data at {where} fails {exc.rule!r}") from None
    key = schema.aggregate_id_key
    if key is not None and aggregate_id is not None and (not isinstance(data, dict) or data.get(key) != aggregate_id):
        raise InvalidEventPayload(f"{event_type} v{version} data at {key} is not the event's aggregate id")


def _path_part(part: Any) -> str:
    # A key the sender chose is shown only when it looks like a field name.
    text = str(part)
    return text if len(text) <= 64 and text.replace("_", "").replace("-", "").isalnum() and text.isascii() else "…"
