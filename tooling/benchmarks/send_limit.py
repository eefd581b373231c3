"""The send limit's cost per request and its exactness: the PostgreSQL counter against DRF's cache.

Both counters are driven as the API drives them (`allow_request` on an authenticated request),
against the configured database: DRF's `UserRateThrottle` in the database cache (settings.CACHES)
and `MessageCreateThrottle`'s upsert. docs/decisions/send-limit-counter.md holds the figures.
"""

from __future__ import annotations

import itertools
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from rest_framework.throttling import UserRateThrottle

from messaging.api.throttling import MessageCreateThrottle
from messaging.models import SendLimitWindow


class _CacheThrottle(UserRateThrottle):
    """The cache-based limit as the API had it: a read-modify-write of a timestamp list."""

    scope = "message_create"

    def get_rate(self) -> str:
        return settings.API_MESSAGE_CREATE_RATE


@dataclass(frozen=True)
class _Request:
    user: object


COUNTERS: dict[str, Callable[[], object]] = {"cache": _CacheThrottle, "postgresql": MessageCreateThrottle}


@dataclass(frozen=True)
class CounterFigures:
    """One counter's figures: µs per admitted request (median of rounds), and the burst's admitted count."""

    name: str
    microseconds_per_request: float
    burst_limit: int
    burst_requests: int
    burst_admitted: int


def _fresh_user():
    return get_user_model().objects.create_user(username=f"bench-limit-{uuid.uuid4().hex[:10]}")


# Sends per user in the timed rounds: under the API's default 60 a window, every one admitted and
# the cache's history as long as it gets in use.
_SENDS_PER_USER = 50


def _sequential_cost(make_throttle: Callable[[], object], requests: int, rounds: int) -> float:
    settings.API_MESSAGE_CREATE_RATE = "60/hour"
    medians = []
    for _ in range(rounds):
        users = [_Request(_fresh_user()) for _ in range(-(-requests // _SENDS_PER_USER))]
        started = time.perf_counter()
        for number in range(requests):
            make_throttle().allow_request(users[number // _SENDS_PER_USER], None)
        medians.append((time.perf_counter() - started) / requests * 1e6)
    return statistics.median(medians)


def _burst_admitted(make_throttle: Callable[[], object], limit: int, threads: int, requests: int) -> int:
    settings.API_MESSAGE_CREATE_RATE = f"{limit}/hour"
    request = _Request(_fresh_user())
    numbers = itertools.count()
    admitted = []
    start = threading.Barrier(threads)

    def client() -> None:
        start.wait()
        try:
            while next(numbers) < requests:
                admitted.append(make_throttle().allow_request(request, None))
        finally:
            connection.close()

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(admitted)


def measure(requests: int = 2000, rounds: int = 5, limit: int = 20, threads: int = 16) -> list[CounterFigures]:
    """Each counter's cost per request and how many of a 3x burst from `threads` threads it admits."""
    rate = settings.API_MESSAGE_CREATE_RATE
    figures = []
    try:
        for name, make_throttle in COUNTERS.items():
            cost = _sequential_cost(make_throttle, requests, rounds)
            admitted = _burst_admitted(make_throttle, limit, threads, 3 * limit)
            figures.append(CounterFigures(name, round(cost, 1), limit, 3 * limit, admitted))
    finally:
        settings.API_MESSAGE_CREATE_RATE = rate
        cache.clear()
        SendLimitWindow.objects.filter(user__username__startswith="bench-limit-").delete()
        get_user_model().objects.filter(username__startswith="bench-limit-").delete()
    return figures
