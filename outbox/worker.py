"""The loop every long-running worker shares: start, heartbeat, outage backoff, graceful stop.

A worker (the relay, each consumer) supplies one unit of work, `work_once()`, and how to drop
its connections; `run()` repeats the unit until `stop()` (SIGTERM, through `outbox.shutdown`).
A `DependencyUnavailable` from the unit is an outage of the database or the broker: logged once,
waited out with a growing, jittered backoff (`outbox.outages`), logged again when it ends. Any
other exception is a bug or something unforeseen: logged with its stack, treated as an outage
too, so the loop stays alive. Each failure and the count of them in a row reach the worker's
heartbeat, which the ops dashboard and readiness read. A `WorkerRefused` ends the loop instead:
what the worker connected to contradicts its settings, and no retry can mend that.
"""

from __future__ import annotations

import contextlib
import logging
import threading

from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections

from outbox.heartbeats import Heartbeat
from outbox.outages import OutageTracker


class DependencyUnavailable(Exception):
    """The database or the broker cannot be reached or dropped a connection."""


class DatabaseUnavailable(DependencyUnavailable):
    """The database could not be reached or dropped the connection."""


class BrokerUnavailable(DependencyUnavailable):
    """The broker cannot be reached or dropped the connection; nothing in flight is safe."""


class WorkerRefused(Exception):
    """What the worker connected to contradicts its settings: it must stop, not retry, until an operator acts."""


def database_unavailable(exc: Exception, *, using: str = DEFAULT_DB_ALIAS) -> DatabaseUnavailable:
    """Close Django's connection (the next query reconnects) and describe the lost one."""
    connections[using].close()
    return DatabaseUnavailable(f"{type(exc).__name__}: {exc}".strip())


class Worker:
    """A long-running worker: `run()` until `stop()`; a subclass supplies `work_once()`.

    `log_prefix` starts every log line's event name (`relay.started`, `consumer.stopped`) and
    `log_context` follows it (`consumer=notifications`); `kind` names the heartbeat and the
    outage lines (`relay`, `consumer.notifications`).
    """

    log_prefix: str = "worker"

    def __init__(self, *, kind: str, logger: logging.Logger, max_backoff: float, using: str = DEFAULT_DB_ALIAS) -> None:
        self.kind = kind
        self.using = using
        self.logger = logger
        self._stop = threading.Event()
        #: Why `run()` returned on its own, if it did (a `WorkerRefused`); None after `stop()`.
        self.refusal: WorkerRefused | None = None
        self.heartbeat = Heartbeat(kind)
        self._outages = OutageTracker(self.logger, kind, max_backoff=max_backoff, on_failure=self._failed)

    @property
    def log_context(self) -> str:
        """Fields on every start, stop and error line of this worker, e.g. `consumer=notifications`."""
        return ""

    def describe(self) -> str:
        """The fields of the start line: where the worker connects, how it is tuned."""
        return ""

    # --- what a worker supplies -------------------------------------------------------

    def work_once(self) -> None:
        """One unit of work; raise `DependencyUnavailable` when the database or broker is out."""
        raise NotImplementedError

    def disconnect(self, cause: BaseException | None = None) -> None:
        """Drop the connections after a failure (`cause`) or on stop (None); the next unit reconnects."""

    # --- the loop ---------------------------------------------------------------------

    def run(self) -> None:
        """Repeat `work_once()` until `stop()`, backing off through outages and unexpected errors."""
        self.logger.info(self._line("started", self.describe()))
        while not self._stop.is_set():
            try:
                self.work_once()
                self.beat()
            except DependencyUnavailable as exc:
                self._back_off(exc)
                continue
            except WorkerRefused as exc:
                # One line that says why, no stack: it is a setting to change, not a bug.
                self.logger.error(self._line("refused", f"reason={str(exc)!r}"))
                self.refusal = exc
                break
            except Exception as exc:  # one bug must not end the worker: log it, go on
                self.logger.exception(self._line("unexpected_error", "retrying_with_backoff=true"))
                self._back_off(exc)
                continue
            self._outages.recovered()
            self.heartbeat.record_failures(self._outages.consecutive_failures)
        self.disconnect(None)
        self._clear_heartbeat()
        self.logger.info(self._line("stopped"))

    def stop(self) -> None:
        """Finish the unit of work in hand, then return from `run()`; safe from a signal handler."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, waking at once on `stop()`; True when stopping."""
        return self._stop.wait(seconds)

    def beat(self) -> None:
        """Write the heartbeat if one is due; raise `DatabaseUnavailable` when the database does not answer."""
        try:
            self.heartbeat.beat(using=self.using)
        except (OperationalError, InterfaceError) as exc:
            raise database_unavailable(exc, using=self.using) from exc

    def _back_off(self, exc: BaseException) -> None:
        self.disconnect(exc)
        delay = self._outages.began(exc)
        # Written now if the database answers: a worker stuck in an outage shows why.
        with contextlib.suppress(DatabaseUnavailable):
            self.beat()
        self.wait(delay)

    def _failed(self, exc: BaseException) -> None:
        self.heartbeat.record_error(exc)
        self.heartbeat.record_failures(self._outages.consecutive_failures)

    def _clear_heartbeat(self) -> None:
        try:
            self.heartbeat.clear(using=self.using)
        except (OperationalError, InterfaceError):
            self.logger.warning(self._line("heartbeat_not_cleared", "reason=database_unavailable"))

    def _line(self, event: str, fields: str = "") -> str:
        # Log lines are built here, not %-formatted by logging: the parts hold no user content.
        return " ".join(part for part in (f"{self.log_prefix}.{event}", self.log_context, fields) if part)
