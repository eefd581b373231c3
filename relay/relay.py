"""The relay: moves committed outbox events to the broker, in id order, at least once.

One batch is one database transaction: claim pending events with FOR UPDATE SKIP LOCKED, publish
them with publisher confirms, mark the confirmed ones published, commit. A crash anywhere before
the commit leaves the events pending (the broker may then hold a copy, which consumers dedupe);
nothing is marked published that the broker did not confirm. The loop around it (start,
heartbeat, outage backoff, SIGTERM) is `outbox.worker.Worker`'s; one unit of work is a batch and,
when it published nothing, the sleep until the next commit.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections, transaction

from outbox.failpoints import failpoint
from outbox.services import claim_batch, event_id_span, mark_published, record_publish_failures
from outbox.worker import BrokerUnavailable, DatabaseUnavailable, Worker, database_unavailable
from relay import metrics
from relay import tracing as relay_tracing
from relay.partition_upkeep import PartitionUpkeep
from relay.publisher import Publisher, relay_publisher
from relay.wakeup import CommitListener

__all__ = ["BatchResult", "DatabaseUnavailable", "Relay"]

logger = logging.getLogger(__name__)

# A batch this large means a backlog or commits faster than the relay's cycle (see work_once()).
BUSY_BATCH = 8
# How often the wait loop looks up from LISTEN to notice stop() and keep the broker alive.
WAKE_CHECK_SECONDS = 0.5


@dataclass(frozen=True)
class BatchResult:
    claimed: int
    published: int
    failed: int
    # More may be claimable now: the batch was full, or events of its aggregates wait behind it.
    more_behind: bool = False


class Relay(Worker):
    """The relay daemon: `run()` until `stop()`, or `drain()` once; `relay_batch()` is one step."""

    log_prefix = "relay"

    def __init__(
        self,
        *,
        publisher: Publisher | None = None,
        listener: CommitListener | None = None,
        batch_size: int | None = None,
        poll_interval: float | None = None,
        max_backoff: float | None = None,
        using: str = DEFAULT_DB_ALIAS,
    ) -> None:
        self.max_backoff = max_backoff or settings.RELAY_MAX_BACKOFF_SECONDS
        super().__init__(kind="relay", logger=logger, max_backoff=self.max_backoff, using=using)
        self.publisher = publisher or relay_publisher()
        self.listener = listener or CommitListener(database=using)
        self.batch_size = batch_size or settings.RELAY_BATCH_SIZE
        self.poll_interval = poll_interval or settings.RELAY_POLL_INTERVAL_SECONDS
        self.lock_timeout = settings.RELAY_LOCK_TIMEOUT_SECONDS
        self.partition_upkeep = PartitionUpkeep(using=using)

    def describe(self) -> str:
        """The start line's fields: the broker (password masked), the batch size, the poll interval."""
        return f"broker={self.publisher.broker} batch_size={self.batch_size} poll_interval={self.poll_interval:.1f}s"

    # --- one unit of work ---------------------------------------------------------------

    def relay_batch(self) -> BatchResult:
        """Claim, publish and settle one batch in one transaction."""
        try:
            with transaction.atomic(using=self.using):
                claim_started = relay_tracing.now_ns()
                # A relay that hangs while holding a batch (waiting on the broker, stopped,
                # swapped out) must not hold its locks for ever: PostgreSQL ends its session past
                # this limit, which rolls the batch back for the other relays to claim.
                claim = claim_batch(self.batch_size, hold_limit=self.lock_timeout, using=self.using)
                events = claim.events
                if not events:
                    return BatchResult(0, 0, 0)
                failpoint("relay.after_claim")
                traced = relay_tracing.batch_trace(events, claim_started)
                publish_started = time.perf_counter()
                with relay_tracing.step(traced, "relay.publish"):
                    outcome = self.publisher.publish_batch(traced.events if traced else events)
                confirm_seconds = time.perf_counter() - publish_started
                failpoint("relay.after_confirm")
                within = event_id_span(e.event_id for e in events)
                with relay_tracing.step(traced, "relay.mark"):
                    mark_published(outcome.confirmed, within=within, using=self.using)
                    dead = record_publish_failures(outcome.failed, using=self.using)
            failpoint("relay.after_commit")
            if traced is not None:
                traced.finished(outcome.confirmed, outcome.failed)
        except (OperationalError, InterfaceError) as exc:
            raise self._database_unavailable(exc) from exc
        metrics.record_batch(
            claimed=len(events),
            published=len(outcome.confirmed),
            failed=len(outcome.failed),
            dead=len(dead),
            confirm_seconds=confirm_seconds,
        )
        for event_id, error in outcome.failed.items():
            if event_id in dead:
                logger.error("relay.event_dead event=%s attempts_exhausted=true error=%s", event_id, error)
            else:
                logger.warning("relay.publish_failed event=%s retry_scheduled=true error=%s", event_id, error)
        logger.debug(
            "relay.batch claimed=%d published=%d failed=%d", len(events), len(outcome.confirmed), len(outcome.failed)
        )
        return BatchResult(len(events), len(outcome.confirmed), len(outcome.failed), more_behind=claim.more_behind)

    def _keep_partitions_ahead(self) -> None:
        try:
            self.partition_upkeep.tick()
        except (OperationalError, InterfaceError) as exc:
            raise self._database_unavailable(exc) from exc

    def _database_unavailable(self, exc: Exception) -> DatabaseUnavailable:
        return database_unavailable(exc, using=self.using)

    # --- loops --------------------------------------------------------------------------

    def drain(self) -> BatchResult:
        """Publish everything pending now and return the totals; outages raise."""
        claimed = published = failed = 0
        while not self.stopping:
            result = self.relay_batch()
            claimed, published, failed = claimed + result.claimed, published + result.published, failed + result.failed
            # Claim until a batch publishes nothing: a short batch does not mean the backlog is
            # empty, since events held back behind an older event of their aggregate become
            # claimable once it is published. A batch of failures only is retried later.
            if result.published == 0:
                break
        return BatchResult(claimed, published, failed)

    def work_once(self) -> None:
        """Relay one batch; then claim again at once, or sleep until a commit notifies.

        While events trickle in, the wake gate stays closed: every commit notifies, and the relay
        sleeps after each batch without an empty claim or a round trip to reopen and close the
        gate. A batch of `BUSY_BATCH` events or more means commits come faster than the relay's
        cycle: it opens the gate, so that writers stop notifying (a notifying commit cannot
        share its flush with others: `outbox.wake_gate`), and claims until a claim finds nothing.
        """
        # LISTEN before claiming; a commit after the claim is caught by the wake gate.
        self.listener.connect()
        self.publisher.connect()
        self._keep_partitions_ahead()
        gate_was_closed = self.listener.gate_closed
        result = self.relay_batch()
        if result.claimed >= BUSY_BATCH:
            self.listener.open_gate()
            return
        if result.more_behind:
            return  # events of this batch's aggregates are claimable now (see drain())
        if gate_was_closed:
            # Closed before this claim began: whatever it did not see sends a notice.
            self._wait_for_events()
            return
        if result.claimed:
            return  # the gate is open: claim until a claim finds nothing
        if not self.listener.close_gate():
            # Writers held it past its wait (a long transaction): claim again, not sleep.
            logger.debug("relay.wake_gate_busy claiming_instead=true")
            return
        if self.listener.gate_closed:
            return  # events committed before it closed sent no notice: claim once more behind it
        # No gate to own (every wake slot taken): woken alongside the relays that own one, or by the poll.
        self._wait_for_events()

    def disconnect(self, cause: BaseException | None = None) -> None:
        """Close what `cause` broke (everything on stop or an unexpected error); the next batch reconnects it."""
        if not isinstance(cause, DatabaseUnavailable):
            self.publisher.close()
        if isinstance(cause, BrokerUnavailable):
            return  # the listener keeps its wake slot through a broker outage
        # Both database connections go to one database: when one died, the other most likely
        # did too. Renewing both at once makes one outage one outage, not two in a row.
        self.listener.close()
        connections[self.using].close()

    # --- helpers ------------------------------------------------------------------------

    def _wait_for_events(self) -> None:
        deadline = time.monotonic() + self.poll_interval
        while not self.stopping:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self.listener.wait(min(WAKE_CHECK_SECONDS, remaining)):
                return
            # Reads the broker's heartbeats too: unread, they look missed and the broker connection drops.
            self.publisher.heartbeat()
            self.beat()
