"""The per-user limit on sending messages."""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import UserRateThrottle


class MessageCreateThrottle(UserRateThrottle):
    """At most `settings.API_MESSAGE_CREATE_RATE` messages per user, counted in the shared cache.

    The cache is the database (settings.CACHES), so every web process counts against the same
    history; a 429 carries `Retry-After`.
    """

    scope = "message_create"

    def get_rate(self) -> str:
        # Read per request rather than DRF's THROTTLE_RATES, which is frozen at import.
        return settings.API_MESSAGE_CREATE_RATE
