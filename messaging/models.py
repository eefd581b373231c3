"""Messages between users and the notifications built from their events.

A Message and the outbox events describing it commit together on every write path:
- `save()` / `objects.create()` run the write and its post_save receivers in one atomic block;
- `bulk_create()` and `mark_read()` on the queryset append the events themselves;
- `update(is_read=True)` and `bulk_update(..., ["is_read"])` refuse, naming `mark_read()`;
- raw SQL: a deferred constraint trigger refuses to commit a Message without a `message.created`
  event whose data names it (`data.message_id`).
"""

from __future__ import annotations

import uuid

import pgtrigger
from django.conf import settings
from django.db import models, router, transaction
from django.utils import timezone

from messaging.events import MESSAGE_AGGREGATE, MESSAGE_CREATED, message_created_event, message_read_event
from outbox import pg_triggers
from outbox.ids import time_ordered_uuid
from outbox.models import OutboxEvent
from outbox.recent_events import RECENT_EVENTS_VIEW
from outbox.services import emit_many

# Name of the database guard; `messaging.signals.message_events_disabled()` ignores it.
CREATED_EVENT_GUARD_URI = "messaging.Message:message_requires_created_event"
# The created-event guard's condition on an event row (see Message.Meta.triggers).
_NAMES_THE_MESSAGE = (
    f"aggregate_type = '{MESSAGE_AGGREGATE}' AND aggregate_id = NEW.message_id::text "
    f"AND event_type = '{MESSAGE_CREATED}' AND payload->>'message_id' = NEW.message_id::text"
)


class MessageQuerySet(models.QuerySet):
    """Queryset whose bulk writes append the events that signals would have appended."""

    def bulk_create(self, objs, *args, **kwargs):
        if kwargs.get("ignore_conflicts") or kwargs.get("update_conflicts"):
            # Which rows were really inserted is unknown then, so which events to append is too.
            raise ValueError("Message.objects.bulk_create() cannot ignore or update conflicts: events would be wrong")
        objs = list(objs)
        with transaction.atomic(using=self.db):
            created = super().bulk_create(objs, *args, **kwargs)
            usernames = _usernames({message.sender_id for message in created})
            emit_many(
                [message_created_event(message, usernames[message.sender_id]) for message in created],
                using=self.db,
                returning=False,
            )
        return created

    def mark_read(self) -> int:
        """Mark the unread messages of this queryset read, appending `message.read` for each."""
        with transaction.atomic(using=self.db):
            flipped = list(
                self.filter(is_read=False).select_for_update().order_by("pk").values_list("message_id", "receiver_id")
            )
            if not flipped:
                return 0
            self.model.objects.using(self.db).filter(pk__in=[pk for pk, _ in flipped])._update_unchecked(is_read=True)
            drafts = [message_read_event(pk, receiver_id) for pk, receiver_id in flipped]
            emit_many(drafts, using=self.db, returning=False)
        return len(flipped)

    def mark_unread(self) -> int:
        """Mark these messages unread; only reading is an event, as with `save()`."""
        return self._update_unchecked(is_read=False)

    def update(self, **kwargs):
        if kwargs.get("is_read", False) is not False:
            raise ValueError("Message update(is_read=True) would skip the message.read event; use .mark_read()")
        return self._update_unchecked(**kwargs)

    def _update_unchecked(self, **kwargs) -> int:
        return super().update(**kwargs)

    def bulk_update(self, objs, fields, *args, **kwargs):
        if "is_read" in fields:
            raise ValueError("Message bulk_update() of is_read would skip message.read events; use .mark_read()")
        return super().bulk_update(objs, fields, *args, **kwargs)


def _usernames(user_ids: set) -> dict:
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    return dict(user_model._default_manager.filter(pk__in=user_ids).values_list("pk", user_model.USERNAME_FIELD))


class Message(models.Model):
    """A message one user sent another."""

    # Time-ordered: it keys this table and, as the aggregate id, the outbox's aggregate index.
    message_id = models.UUIDField(primary_key=True, default=time_ordered_uuid, editable=False)
    sender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sent_messages")
    receiver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="received_messages")
    content = models.TextField()
    timestamp = models.DateTimeField(default=timezone.now, db_index=True)
    is_read = models.BooleanField(default=False)

    objects = MessageQuerySet.as_manager()

    class Meta:
        ordering = ["-timestamp"]
        indexes = [
            models.Index(fields=["receiver", "is_read"], name="message_receiver_unread_idx"),
            models.Index(fields=["receiver", "-timestamp"], name="message_receiver_time_idx"),
            models.Index(fields=["sender", "-timestamp"], name="message_sender_time_idx"),
        ]
        # Messages go between two users (docs/decisions/self-messages.md); the service explains a refusal.
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(sender=models.F("receiver")), name="message_sender_is_not_receiver"
            )
        ]
        triggers = [
            # Deferred to COMMIT so the event may be appended after the row within the transaction.
            # The probe runs with sequential scans off, so it always goes through
            # outbox_aggregate_idx: PL/pgSQL keeps a plan for the session, and one made while the
            # outbox is nearly empty (a new deployment, a fresh connection after a vacuum) is a
            # sequential scan, which then makes every message's COMMIT read the whole outbox. The
            # setting is put back at once, for whatever else this transaction still plans. Both
            # set_config calls are assignments, not PERFORM: PL/pgSQL evaluates an assignment as a
            # simple expression, while PERFORM runs a whole query.
            # The probe looks first in the recent-events view, whose plan locks the day's one or two
            # partitions, and only then in the whole table, whose plan locks every partition and
            # index: the event is written in this transaction, so the first probe finds it unless
            # the transaction crossed the view's daily move (outbox.recent_events). Two IF
            # statements, not one condition: PL/pgSQL plans a condition as one query, both probes.
            # The event must name the message in its data, not only in its aggregate id: the
            # consumer and rebuild_notifications read the data, and a `{}` there builds nothing.
            pg_triggers.Trigger(
                name="message_requires_created_event",
                operation=pgtrigger.Insert,
                when=pgtrigger.After,
                timing=pgtrigger.Deferred,
                declare=[("seqscan", "text"), ("unused", "text")],
                func=(
                    "seqscan := current_setting('enable_seqscan'); "
                    "unused := set_config('enable_seqscan', 'off', true); "
                    f"IF NOT EXISTS (SELECT 1 FROM {RECENT_EVENTS_VIEW} WHERE {_NAMES_THE_MESSAGE}) THEN "
                    f"IF NOT EXISTS (SELECT 1 FROM {OutboxEvent._meta.db_table} WHERE {_NAMES_THE_MESSAGE}) THEN "
                    f"RAISE EXCEPTION 'message % was written without a {MESSAGE_CREATED} outbox event naming it "
                    "in data.message_id', NEW.message_id USING ERRCODE = 'integrity_constraint_violation'; "
                    "END IF; END IF; "
                    "unused := set_config('enable_seqscan', seqscan, true); "
                    "RETURN NULL;"
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"Message from {self.sender} to {self.receiver} at {self.timestamp:%Y-%m-%d %H:%M}"

    def save(self, *args, **kwargs):
        # Django sends post_save after save_base's write and, in autocommit mode, outside any
        # transaction: the receivers' events would commit separately. One atomic block around
        # the write and its signals makes the message and its events commit together or not at all.
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        with transaction.atomic(using=using):
            self._became_read = self._is_becoming_read(using, kwargs.get("update_fields"))
            super().save(*args, **kwargs)

    def _is_becoming_read(self, using: str, update_fields) -> bool:
        """True when this save flips is_read from false to true in the database."""
        if self._state.adding or not self.is_read:
            return False
        if update_fields is not None and "is_read" not in update_fields:
            return False
        # The stored value, locked: an instance loaded earlier may be stale, and two concurrent
        # readers must not both see the flip.
        stored = (
            type(self)
            ._base_manager.using(using)
            .select_for_update()
            .filter(pk=self.pk)
            .values_list("is_read", flat=True)
            .first()
        )
        return stored is False


class Notification(models.Model):
    """Something a user should see; built by the notifications consumer from events."""

    class NotificationType(models.TextChoices):
        MESSAGE = "message", "Message"
        SYSTEM = "system", "System"

    notification_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="notifications", null=True, blank=True)
    notification_type = models.CharField(
        max_length=20, choices=NotificationType.choices, default=NotificationType.MESSAGE
    )
    title = models.CharField(max_length=200)
    content = models.TextField(blank=True)
    is_read = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    # The outbox event this notification was built from; unique, so an event builds at most one.
    source_event_id = models.UUIDField(null=True, blank=True, unique=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["user", "is_read"], name="notification_user_unread_idx"),
            models.Index(fields=["user", "-created_at"], name="notification_user_time_idx"),
        ]
        constraints = [
            # A message is announced once, whatever reaches the consumer: a second `message.created`
            # under a fresh event id (forged, or re-emitted) finds this and builds nothing.
            models.UniqueConstraint(
                fields=["message"],
                condition=models.Q(notification_type="message"),
                name="one_notification_per_message",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_notification_type_display()} notification for {self.user}: {self.title}"

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        # Remembered so the read handler can tell a flip from a re-save.
        instance._loaded_is_read = instance.__dict__.get("is_read")
        return instance


class SendLimitWindow(models.Model):
    """How many messages one user tried to send through the API in one window of the send limit.

    Counted by `messaging.services.count_message_send` with one atomic upsert, so concurrent
    requests in every web process see each other's counts.
    """

    # No index of its own: the unique constraint's index starts with the user.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False)
    # The window's length: a changed API_MESSAGE_CREATE_RATE period counts in windows of its own.
    period_seconds = models.PositiveIntegerField()
    window_start = models.DateTimeField()
    sends = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "period_seconds", "window_start"], name="send_limit_window_per_user"
            )
        ]

    def __str__(self) -> str:
        return (
            f"{self.sends} sends by user {self.user_id} in the {self.period_seconds}s window from {self.window_start}"
        )
