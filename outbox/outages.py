"""How long-running workers live through outages: one log line per outage, jittered backoff."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

INITIAL_BACKOFF_SECONDS = 0.5
# How long a worker must work without failing before its backoff starts again from the bottom.
HEALTHY_AFTER_SECONDS = 10.0


class OutageTracker:
    """Logs an outage once when it begins and once when it ends, and paces the retries.

    Full jitter (a random delay up to an exponentially growing cap) keeps several workers from
    retrying in lockstep against a service that is coming back. The cap and the count of
    consecutive failures go back to the start only after `healthy_after` seconds without a
    failure: a reconnect that fails again at once (a crash loop) keeps backing off.
    """

    def __init__(
        self,
        logger: logging.Logger,
        worker: str,
        *,
        max_backoff: float,
        on_failure: Callable[[BaseException], None] | None = None,
        healthy_after: float = HEALTHY_AFTER_SECONDS,
    ) -> None:
        self._logger = logger
        # Told of every failure, e.g. the worker's heartbeat, which shows it on the ops dashboard.
        self._on_failure = on_failure
        self._worker = worker
        self._max_backoff = max_backoff
        self._healthy_after = healthy_after
        self._backoff = INITIAL_BACKOFF_SECONDS
        self._kind: str | None = None
        self._since = 0.0
        self._healthy_since: float | None = None
        self.consecutive_failures = 0

    @property
    def in_outage(self) -> bool:
        return self._kind is not None

    def began(self, exc: BaseException) -> float:
        """Record a failure; return how long to wait before the next try."""
        self._forget_failures_if_healthy()
        self._healthy_since = None
        self.consecutive_failures += 1
        kind = type(exc).__name__
        if self._on_failure is not None:
            self._on_failure(exc)
        if self._kind is None:
            self._logger.error("%s.outage kind=%s error=%s retrying_with_backoff=true", self._worker, kind, exc)
            self._kind, self._since = kind, time.monotonic()
        else:
            self._logger.debug("%s.outage_continues kind=%s error=%s", self._worker, kind, exc)
        delay = random.uniform(0, self._backoff)  # noqa: S311 - jitter, not cryptography
        self._backoff = min(self._backoff * 2, self._max_backoff)
        return delay

    def recovered(self) -> None:
        """Record a success: log the end of an outage; the backoff resets once health lasts."""
        if self._kind is not None:
            self._logger.info(
                "%s.recovered kind=%s after=%.1fs", self._worker, self._kind, time.monotonic() - self._since
            )
            self._kind = None
        if self._healthy_since is None:
            self._healthy_since = time.monotonic()
        self._forget_failures_if_healthy()

    def _forget_failures_if_healthy(self) -> None:
        if self._healthy_since is not None and time.monotonic() - self._healthy_since >= self._healthy_after:
            self._backoff = INITIAL_BACKOFF_SECONDS
            self.consecutive_failures = 0
