"""The relay: moves committed outbox events to the broker, in id order, at least once.

One batch is one database transaction: claim pending events with FOR UPDATE SKIP LOCKED, publish
them with publisher confirms, mark the confirmed ones published, commit. A crash anywhere before
the commit leaves the events pending (the broker may then hold a copy, which consumers dedupe);
nothing is marked published that the broker did not confirm.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections, transaction

from outbox.outages import OutageTracker
from outbox.services import claim_pending_events, mark_published, record_publish_failures
from relay.publisher import BrokerUnavailable, ConfirmingPublisher
from relay.wakeup import CommitListener, ListenerUnavailable

logger = logging.getLogger(__name__)

# How often the wait loop looks up from LISTEN to notice stop() and keep the broker alive.
WAKE_CHECK_SECONDS = 0.5


@dataclass(frozen=True)
class BatchResult:
    claimed: int
    published: int
    failed: int


class DatabaseUnavailable(Exception):
    """The database could not be reached or dropped the connection."""


class Relay:
    """The relay daemon: `run()` until `stop()`, or `drain()` once; `relay_batch()` is one step."""

    def __init__(
        self,
        *,
        publisher: ConfirmingPublisher | None = None,
        listener: CommitListener | None = None,
        batch_size: int | None = None,
        poll_interval: float | None = None,
        max_backoff: float | None = None,
        using: str = DEFAULT_DB_ALIAS,
    ) -> None:
        self.publisher = publisher or ConfirmingPublisher()
        self.listener = listener or CommitListener(database=using)
        self.batch_size = batch_size or settings.RELAY_BATCH_SIZE
        self.poll_interval = poll_interval or settings.RELAY_POLL_INTERVAL_SECONDS
        self.max_backoff = max_backoff or settings.RELAY_MAX_BACKOFF_SECONDS
        self.using = using
        self._stop = threading.Event()
        self._outages = OutageTracker(logger, "relay", max_backoff=self.max_backoff)

    # --- one unit of work ---------------------------------------------------------------

    def relay_batch(self) -> BatchResult:
        """Claim, publish and settle one batch in one transaction."""
        try:
            with transaction.atomic(using=self.using):
                events = claim_pending_events(self.batch_size, using=self.using)
                if not events:
                    return BatchResult(0, 0, 0)
                outcome = self.publisher.publish_batch(events)
                mark_published(outcome.confirmed, using=self.using)
                record_publish_failures(outcome.failed, using=self.using)
        except (OperationalError, InterfaceError) as exc:
            connections[self.using].close()
            raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}".strip()) from exc
        for event_id, error in outcome.failed.items():
            logger.warning("relay.publish_failed event=%s error=%s", event_id, error)
        logger.debug(
            "relay.batch claimed=%d published=%d failed=%d", len(events), len(outcome.confirmed), len(outcome.failed)
        )
        return BatchResult(len(events), len(outcome.confirmed), len(outcome.failed))

    # --- loops --------------------------------------------------------------------------

    def drain(self) -> BatchResult:
        """Publish everything pending now and return the totals; outages raise."""
        claimed = published = failed = 0
        while not self._stop.is_set():
            result = self.relay_batch()
            claimed, published, failed = claimed + result.claimed, published + result.published, failed + result.failed
            # A short batch means the backlog is empty; a batch that published nothing holds
            # only events that keep failing, which claiming again would not change.
            if result.claimed < self.batch_size or result.published == 0:
                break
        return BatchResult(claimed, published, failed)

    def run(self) -> None:
        """Relay until `stop()`: wake on commit, poll as a fallback, back off through outages."""
        logger.info(
            "relay.started broker=%s batch_size=%d poll_interval=%.1fs",
            self.publisher.broker,
            self.batch_size,
            self.poll_interval,
        )
        while not self._stop.is_set():
            try:
                # LISTEN before claiming, so an event committed after the claim still wakes us.
                self.listener.connect()
                self.publisher.connect()
                result = self.relay_batch()
                self._outages.recovered()
                if result.claimed == self.batch_size and result.published > 0:
                    continue
                self._wait_for_events()
            except (BrokerUnavailable, DatabaseUnavailable, ListenerUnavailable) as exc:
                if isinstance(exc, ListenerUnavailable):
                    self.listener.close()
                self._stop.wait(self._outages.began(exc))
            except Exception as exc:
                # A bug or an unforeseen error: log it with its stack, start from fresh
                # connections and keep the loop alive; the batch rolled back and stays pending.
                logger.exception("relay.unexpected_error retrying_with_backoff=true")
                self.publisher.close()
                self.listener.close()
                connections[self.using].close()
                self._stop.wait(self._outages.began(exc))
        self.listener.close()
        self.publisher.close()
        logger.info("relay.stopped")

    def stop(self) -> None:
        """Ask the loop to finish its current batch and return; safe from a signal handler."""
        self._stop.set()

    # --- helpers ------------------------------------------------------------------------

    def _wait_for_events(self) -> None:
        deadline = time.monotonic() + self.poll_interval
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self.listener.wait(min(WAKE_CHECK_SECONDS, remaining)):
                return
            self.publisher.heartbeat()
