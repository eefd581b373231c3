"""The transactional outbox: append events in the caller's transaction, describe them on the wire.

`outbox.emit(...)` is the one way to append an event. It is imported lazily so that importing this
package does not touch Django's app registry.
"""

from typing import Any

__all__ = ["emit", "emit_many"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from outbox import services

        return getattr(services, name)
    raise AttributeError(f"module 'outbox' has no attribute {name!r}")
