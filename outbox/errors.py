"""Errors the outbox raises, each naming what went wrong and what to do instead."""


class OutboxError(Exception):
    """Base class of every outbox error."""


class NotInTransaction(OutboxError):
    """An event was emitted outside `transaction.atomic()`; it would commit on its own."""


class UnknownEventType(OutboxError):
    """No schema is registered for the event type (and version)."""


class UnsupportedEventVersion(UnknownEventType):
    """The event's schema version is one the consumer does not accept and cannot upcast."""


class InvalidEventPayload(OutboxError):
    """The payload does not match the schema registered for its event type, or JSON cannot encode it."""


class MalformedEnvelope(OutboxError):
    """A message on the wire is not a CloudEvents 1.0 JSON document this service understands."""


class InvalidEvent(OutboxError):
    """An event's own fields (not its payload) cannot be stored: an empty or too long aggregate."""
