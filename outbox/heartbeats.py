"""Worker heartbeats: each relay and consumer process says it is alive, and notices who is not.

A relay that dies releases its batch at once (its transaction dies with it). One that hangs holds
its locks until PostgreSQL's idle-in-transaction timeout ends its session; meanwhile its silent
heartbeat shows it, and every other worker logs it once. A worker's last outage or unexpected
error, and how many failures in a row it has had, are kept on its heartbeat row too, for the ops
dashboard (`outbox.status`) and readiness (`outbox.health`).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone

from outbox.models import WorkerHeartbeat

logger = logging.getLogger(__name__)

GONE_AFTER_STALLS = 10

# The length of WorkerHeartbeat.last_error.
MAX_ERROR_LENGTH = 300
# user:password@ in a URL (a broker or database URL in a connection error).
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]*@", re.IGNORECASE)


def describe_error(exc: BaseException) -> str:
    """One line for operators: the exception type and the first line of its message.

    Only the first line: PostgreSQL puts the values of the offending row in the DETAIL lines
    that follow, and those may be message content. Credentials in URLs are masked.
    """
    lines = str(exc).strip().splitlines()
    message = _URL_CREDENTIALS.sub(r"\g<scheme>***@", lines[0].strip()) if lines else ""
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text if len(text) <= MAX_ERROR_LENGTH else text[: MAX_ERROR_LENGTH - 1] + "…"


class Heartbeat:
    """Writes this worker's heartbeat at most every `interval` seconds and reports stalled peers;
    an error recorded in between is written by the next beat."""

    def __init__(self, kind: str, *, interval: float | None = None, stall_after: float | None = None) -> None:
        self.kind = kind
        self.worker_id = f"{kind}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.interval = interval or settings.WORKER_HEARTBEAT_SECONDS
        self.stall_after = stall_after or settings.WORKER_STALL_SECONDS
        self._started_at = timezone.now()
        self._last_beat = 0.0
        self._reported_stalled: set[str] = set()
        self._unwritten_error: tuple[str, datetime] | None = None
        self._failures = 0
        self._written_failures = 0

    def record_error(self, exc: BaseException) -> None:
        """Remember an outage or unexpected error; the next beat writes it, whatever the interval.

        Nothing is written here: during a database outage there is nowhere to write it to.
        """
        self._unwritten_error = (describe_error(exc), timezone.now())

    def record_failures(self, count: int) -> None:
        """Remember how many failures in a row the worker has had; a change is written by the next beat."""
        self._failures = count

    def beat(self, *, using: str = DEFAULT_DB_ALIAS) -> bool:
        """Record a sign of life (and an error recorded since) if one is due; True when it wrote one."""
        error = self._unwritten_error
        failures = self._failures
        if error is None and failures == self._written_failures and time.monotonic() - self._last_beat < self.interval:
            return False
        now = timezone.now()
        fields = {"beat_at": now, "consecutive_failures": failures}
        if error is not None:
            fields.update(last_error=error[0], last_error_at=error[1])
        WorkerHeartbeat.objects.using(using).update_or_create(
            worker_id=self.worker_id,
            defaults=fields,
            create_defaults={
                "kind": self.kind,
                "hostname": socket.gethostname(),
                "pid": os.getpid(),
                "started_at": self._started_at,
                **fields,
            },
        )
        self._last_beat = time.monotonic()
        self._written_failures = failures
        if self._unwritten_error is error:
            self._unwritten_error = None
        self._report_stalled_peers(now, using)
        return True

    def _report_stalled_peers(self, now, using: str) -> None:
        # Silent past GONE_AFTER_STALLS stall periods: presumed dead (a SIGKILL never clears
        # its row). Whoever deletes the row says so, once; the rest are reported stalled once.
        gone_cutoff = now - timedelta(seconds=self.stall_after * GONE_AFTER_STALLS)
        gone = list(
            WorkerHeartbeat.objects.using(using)
            .filter(kind=self.kind, beat_at__lt=gone_cutoff)
            .values_list("worker_id", "beat_at")
        )
        for worker_id, beat_at in gone:
            deleted, _ = WorkerHeartbeat.objects.using(using).filter(worker_id=worker_id, beat_at=beat_at).delete()
            if deleted:
                logger.warning(
                    "%s.peer_gone worker=%s silent_for=%.0fs", self.kind, worker_id, (now - beat_at).total_seconds()
                )
        cutoff = now - timedelta(seconds=self.stall_after)
        stalled = WorkerHeartbeat.objects.using(using).filter(kind=self.kind, beat_at__lt=cutoff)
        current = set()
        for peer in stalled:
            current.add(peer.worker_id)
            if peer.worker_id not in self._reported_stalled:
                logger.warning(
                    "%s.peer_stalled worker=%s pid=%s host=%s silent_for=%.0fs",
                    self.kind,
                    peer.worker_id,
                    peer.pid,
                    peer.hostname,
                    (now - peer.beat_at).total_seconds(),
                )
        self._reported_stalled = current

    def clear(self, *, using: str = DEFAULT_DB_ALIAS) -> None:
        """Remove this worker's heartbeat on a clean stop."""
        WorkerHeartbeat.objects.using(using).filter(worker_id=self.worker_id).delete()
