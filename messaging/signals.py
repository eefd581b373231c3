"""Signal receivers: thin shells that append a Message's events through the services.

Message.save() runs the write and these receivers in one atomic block, so the events commit
with the message or not at all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pgtrigger
from django.db import connection
from django.db.models.signals import post_save
from django.dispatch import receiver

from messaging import services
from messaging.models import CREATED_EVENT_GUARD_URI, Message, Notification


# One receiver for both events: a receiver call is paid on every save of a message.
@receiver(post_save, sender=Message, dispatch_uid="messaging.emit_message_events")
def emit_message_events(sender, instance: Message, created: bool, **kwargs) -> None:
    """A new message emits `message.created`; one whose is_read flips from false to true, `message.read`.

    Other saves emit nothing.
    """
    if created:
        services.append_message_created(instance)
    elif getattr(instance, "_became_read", False):
        services.append_message_read(instance)


@receiver(post_save, sender=Notification, dispatch_uid="messaging.notification_read_handler")
def notification_read_handler(sender, instance: Notification, created: bool, **kwargs) -> None:
    """Log and count a notification someone just marked read (the seed's analytics hook)."""
    if not created and instance.is_read and getattr(instance, "_loaded_is_read", None) is False:
        services.record_notification_read(instance)
        instance._loaded_is_read = True


MESSAGE_EVENT_RECEIVERS = ((emit_message_events, "messaging.emit_message_events"),)


@contextlib.contextmanager
def message_event_receivers_disconnected() -> Iterator[None]:
    """Disconnect the receivers that append message events (process-wide, not thread-safe)."""
    for handler, uid in MESSAGE_EVENT_RECEIVERS:
        post_save.disconnect(handler, sender=Message, dispatch_uid=uid)
    try:
        yield
    finally:
        for handler, uid in MESSAGE_EVENT_RECEIVERS:
            post_save.connect(handler, sender=Message, dispatch_uid=uid)


@contextlib.contextmanager
def created_event_guard_ignored() -> Iterator[None]:
    """Let this thread commit messages without their message.created event."""
    with pgtrigger.ignore(CREATED_EVENT_GUARD_URI):
        yield
        if connection.in_atomic_block:
            # The guard is deferred to COMMIT, which comes after this block: settle it now,
            # while it is ignored, then defer it again for the rest of the transaction.
            pgtrigger.constraints(pgtrigger.Immediate, CREATED_EVENT_GUARD_URI)
            pgtrigger.constraints(pgtrigger.Deferred, CREATED_EVENT_GUARD_URI)


@contextlib.contextmanager
def created_event_guard_ignored_by_this_session() -> Iterator[None]:
    """Let this thread's connection commit messages without their event, at no cost per write.

    For measuring the bare write: `created_event_guard_ignored()` goes through
    `pgtrigger.ignore()`, which puts a `set_config` in front of every statement, a cost the bare
    write would carry and the outbox's write would not. This sets the same setting once, for the
    session: the guard still fires at COMMIT and returns at its first test. Not for a
    transaction that also uses `pgtrigger.ignore()`, whose local setting would hide this one.
    """
    model, trigger = pgtrigger.registry.registered(CREATED_EVENT_GUARD_URI)[0]
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('pgtrigger.ignore', %s, false)", ["{" + trigger.get_pgid(model) + "}"])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('pgtrigger.ignore', '', false)")


@contextlib.contextmanager
def message_events_disabled() -> Iterator[None]:
    """Write messages without events: for isolated tests and for benchmarking the bare write.

    Disconnects the receivers and ignores the database guard that would otherwise refuse to
    commit the event-less messages. Never use it in production code.
    """
    with message_event_receivers_disconnected(), created_event_guard_ignored():
        yield
