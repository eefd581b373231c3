"""The relay's slow tick: keep the event and inbox tables' partitions created days ahead, and the
recent-events view on today (outbox.recent_events).

A write never creates a partition (it would take a lock on the parent in the write path); the
relay checks every OUTBOX_PARTITION_CHECK_SECONDS instead, so a partition exists days before the
first event it holds (docs/decisions/0005-time-partitions.md).
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, OperationalError

from outbox.partitions import create_all_partitions_ahead, is_lock_timeout
from outbox.recent_events import refresh_recent_events_view

logger = logging.getLogger(__name__)

RETRY_AFTER_LOCK_TIMEOUT_SECONDS = 10.0


class PartitionUpkeep:
    """Creates partitions ahead and moves the recent-events view, at most once per OUTBOX_PARTITION_CHECK_SECONDS."""

    def __init__(self, *, using: str = DEFAULT_DB_ALIAS) -> None:
        self.using = using
        self.interval = settings.OUTBOX_PARTITION_CHECK_SECONDS
        self.next_check = 0.0  # at once, on the first tick

    def tick(self) -> None:
        """Create the partitions ahead and move the view if due; database errors go to the worker's backoff."""
        if time.monotonic() < self.next_check:
            return
        try:
            created = create_all_partitions_ahead(using=self.using)
            moved = refresh_recent_events_view(using=self.using)
        except OperationalError as exc:
            if not is_lock_timeout(exc):
                raise
            # Busy writers or a long transaction held the table: not an outage, try again soon.
            logger.warning("relay.partition_check_deferred reason=lock_timeout")
            self.next_check = time.monotonic() + min(self.interval, RETRY_AFTER_LOCK_TIMEOUT_SECONDS)
            return
        self.next_check = time.monotonic() + self.interval
        for name in created:
            logger.info("relay.partition_created partition=%s", name)
        if moved:
            logger.info("relay.recent_events_view_moved")
