"""The registry of event schemas: what each event type's `data` must look like, per version.

Apps register a JSON Schema for every event type they emit (in their AppConfig.ready). The same
schema is checked when an event is appended and when a consumer receives it, so a malformed
event is refused at the door on both sides. JSON Schema, because other teams' services read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from outbox.errors import InvalidEventPayload, UnknownEventType


@dataclass(frozen=True)
class EventSchema:
    """The JSON Schema of one version of one event type."""

    event_type: str
    version: int
    schema: dict[str, Any]

    def __post_init__(self) -> None:
        # Refuse a broken schema at registration, not at the first event.
        Draft202012Validator.check_schema(self.schema)


_registry: dict[tuple[str, int], tuple[EventSchema, Draft202012Validator]] = {}


def register_event_schema(schema: EventSchema) -> None:
    """Register `schema`; registering the same type and version twice must give the same schema."""
    key = (schema.event_type, schema.version)
    existing = _registry.get(key)
    if existing is not None and existing[0] != schema:
        raise ValueError(f"a different schema is already registered for {schema.event_type} v{schema.version}")
    _registry[key] = (schema, Draft202012Validator(schema.schema, format_checker=Draft202012Validator.FORMAT_CHECKER))


def registered_schemas() -> list[EventSchema]:
    """Every registered schema, sorted by event type and version."""
    return [schema for schema, _ in sorted(_registry.values(), key=lambda item: (item[0].event_type, item[0].version))]


def latest_version(event_type: str) -> int:
    """The newest registered version of `event_type`."""
    versions = [version for (registered_type, version) in _registry if registered_type == event_type]
    if not versions:
        raise UnknownEventType(f"no schema is registered for event type {event_type!r}")
    return max(versions)


def validate_event_data(event_type: str, version: int, data: Any) -> None:
    """Raise `UnknownEventType` or `InvalidEventPayload` unless `data` fits the registered schema."""
    entry = _registry.get((event_type, version))
    if entry is None:
        raise UnknownEventType(f"no schema is registered for event type {event_type!r} version {version}")
    error = best_match(entry[1].iter_errors(data))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "(root)"
        # The validator's message quotes the offending value; keep only the rule that failed so
        # that message content never reaches a log line.
        raise InvalidEventPayload(f"{event_type} v{version} data at {where} fails {error.validator!r}")
