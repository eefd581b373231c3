"""Reads of the messaging domain: who may see which message and notification.

Lists load everything they show in one query (`select_related` / `only`), so an API page costs
the same number of queries whatever its length.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet

from messaging.models import Message, Notification

INBOX = "inbox"
SENT = "sent"
MESSAGE_BOXES = (INBOX, SENT)

# What a message in a list shows: its own columns and both users' names.
_MESSAGE_FIELDS = (
    "message_id",
    "content",
    "timestamp",
    "is_read",
    "sender__username",
    "receiver__username",
)
_NOTIFICATION_FIELDS = (
    "notification_id",
    "user_id",
    "message_id",
    "notification_type",
    "title",
    "content",
    "is_read",
    "created_at",
)


def messages_of(user: AbstractBaseUser, *, box: str | None = None, unread: bool | None = None) -> QuerySet[Message]:
    """Messages `user` sent or received (`box` narrows to one side), newest first.

    `unread` keeps only unread (True) or only read (False) messages.
    """
    if box == INBOX:
        visible = Q(receiver=user)
    elif box == SENT:
        visible = Q(sender=user)
    elif box is None:
        visible = Q(receiver=user) | Q(sender=user)
    else:
        raise ValueError(f"box must be one of {MESSAGE_BOXES} or None, not {box!r}")
    messages = Message.objects.filter(visible)
    if unread is not None:
        messages = messages.filter(is_read=not unread)
    return messages.select_related("sender", "receiver").only(*_MESSAGE_FIELDS)


def message_of(user: AbstractBaseUser, message_id) -> Message:
    """The message `message_id` if `user` sent or received it; `Message.DoesNotExist` otherwise."""
    return messages_of(user).get(pk=message_id)


def notifications_of(user: AbstractBaseUser, *, unread: bool | None = None) -> QuerySet[Notification]:
    """The notifications of `user`, newest first; `unread` keeps only unread (True) or read (False) ones."""
    notifications = Notification.objects.filter(user=user)
    if unread is not None:
        notifications = notifications.filter(is_read=not unread)
    return notifications.only(*_NOTIFICATION_FIELDS)


def notification_of(user: AbstractBaseUser, notification_id) -> Notification:
    """The notification `notification_id` if it is `user`'s; `Notification.DoesNotExist` otherwise."""
    return notifications_of(user).get(pk=notification_id)


def unread_notification_count(user: AbstractBaseUser) -> int:
    """How many of `user`'s notifications are unread."""
    return Notification.objects.filter(user=user, is_read=False).count()


def active_user_by_username(username: str) -> AbstractBaseUser | None:
    """The active user with this username, or None (unknown and inactive users look the same)."""
    user_model = get_user_model()
    return (
        user_model._default_manager.filter(**{user_model.USERNAME_FIELD: username}, is_active=True)
        .only("pk", user_model.USERNAME_FIELD, "is_active")
        .first()
    )
