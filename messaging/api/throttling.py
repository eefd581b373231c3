"""The per-user limit on sending messages."""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import BaseThrottle

from messaging import services

# The periods settings._env_rate accepts, by their first letter, as DRF reads them.
_PERIOD_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class MessageCreateThrottle(BaseThrottle):
    """At most `settings.API_MESSAGE_CREATE_RATE` messages per user and fixed window.

    Counted in PostgreSQL by one atomic statement (`services.count_message_send`), so concurrent
    requests in every web process count against the same number; keyed on the user, whichever
    way they authenticated. A 429 carries `Retry-After`: the seconds to the window's end.
    """

    def __init__(self) -> None:
        self._seconds_left: float | None = None

    def allow_request(self, request, view) -> bool:
        if not request.user.is_authenticated:
            return True  # the view's permission refuses it first
        # Read per request rather than DRF's THROTTLE_RATES, which is frozen at import.
        limit, _, period = settings.API_MESSAGE_CREATE_RATE.partition("/")
        count = services.count_message_send(request.user, _PERIOD_SECONDS[period[0]])
        self._seconds_left = count.seconds_left
        return count.sends <= int(limit)

    def wait(self) -> float | None:
        return self._seconds_left
