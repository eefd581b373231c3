"""Who may look at the outbox's state and who may act on it: one rule for the admin and /ops/.

Looking (the ops dashboard and its JSON snapshot) takes a staff user with the view or the change
permission on outbox events, as the admin's own event pages do. Acting (sending dead events
again, replaying published ones) takes the change permission.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

VIEW_EVENTS = "outbox.view_outboxevent"
CHANGE_EVENTS = "outbox.change_outboxevent"


def can_view_events(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Whether `user` may read the event log's state: staff with the view or the change permission."""
    return bool(user.is_staff) and (user.has_perm(VIEW_EVENTS) or user.has_perm(CHANGE_EVENTS))


def can_operate_events(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Whether `user` may send dead events again or replay events: staff with the change permission."""
    return bool(user.is_staff) and user.has_perm(CHANGE_EVENTS)
