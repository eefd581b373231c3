"""Whether this service can do its work: the database and the broker answer, and who relays.

Readiness fails on what this process itself needs, the database and the broker, and on a worker
that runs but keeps failing (`workers`: alive with WORKER_FAILING_AFTER outages or unexpected
errors in a row, its last error's type named): work silently not done must show. Relays and
consumers that are absent or stalled are reported (how many by kind) but do not fail it: the web
process keeps accepting writes while no relay runs (that is what the outbox is for), and taking
it out of service because a relay is down would turn a delay into an outage.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from outbox.broker import broker_connection
from outbox.selectors import Worker, workers

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Check:
    """One dependency: reachable or not, and the error's type (its text may name hosts or users)."""

    name: str
    ok: bool
    error: str = ""

    def as_dict(self) -> dict:
        return {"ok": self.ok, "error": self.error} if self.error else {"ok": self.ok}


@dataclass(frozen=True)
class Readiness:
    checks: list[Check]
    # Worker kind -> {"alive": n, "stalled": n}; None when the database could not be read.
    workers: dict[str, dict[str, int]] | None = field(default=None)

    @property
    def ready(self) -> bool:
        return all(check.ok for check in self.checks)

    def as_dict(self) -> dict:
        body: dict = {
            "status": "ready" if self.ready else "unavailable",
            "checks": {check.name: check.as_dict() for check in self.checks},
            "workers": self.workers,
        }
        if not self.ready:
            body["failing"] = [check.name for check in self.checks if not check.ok]
        return body


def check_database(*, timeout: float, using: str = DEFAULT_DB_ALIAS) -> None:
    """Open a fresh connection with a connect and a statement timeout, and run SELECT 1."""
    # A new connection rather than the request's: Django's has no connect timeout, and a host
    # that drops packets would hold the probe for minutes.
    params = connections[using].get_connection_params()
    params["connect_timeout"] = max(2, math.ceil(timeout))  # libpq: whole seconds, at least 2
    params["options"] = f"{params.get('options', '')} -c statement_timeout={int(timeout * 1000)}".strip()
    with psycopg.connect(**params) as connection:
        connection.execute("SELECT 1")


def check_broker(*, timeout: float) -> None:
    """Connect to the broker once, without kombu's retries, and close again."""
    with broker_connection(connect_timeout=timeout) as connection:
        connection.ensure_connection(max_retries=0)


def worker_counts(seen: list[Worker] | None = None) -> dict[str, dict[str, int]]:
    """Relays and consumers by kind: how many alive, stalled and failing (from their heartbeats)."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"alive": 0, "stalled": 0, "failing": 0})
    for worker in workers() if seen is None else seen:
        counts[worker.kind]["alive" if worker.alive else "stalled"] += 1
        counts[worker.kind]["failing"] += worker.failing
    return dict(counts)


def check_workers(seen: list[Worker]) -> Check:
    """Fails naming each failing worker's kind, its failures in a row and its last error's type."""
    reasons = [
        f"{worker.kind}: {worker.consecutive_failures} failures in a row, last {worker.last_error.partition(':')[0]}"
        for worker in seen
        if worker.failing
    ]
    return Check("workers", ok=not reasons, error="; ".join(reasons))


def _run(name: str, check: Callable[[], None]) -> Check:
    try:
        check()
    except Exception as exc:  # noqa: BLE001 - whatever breaks the check, the answer is "not ready"
        logger.info("readiness.check_failed check=%s error=%s", name, type(exc).__name__)
        return Check(name, ok=False, error=type(exc).__name__)
    return Check(name, ok=True)


def readiness() -> Readiness:
    """Check the database and the broker, each within READINESS_TIMEOUT_SECONDS, and the workers' heartbeats."""
    timeout = settings.READINESS_TIMEOUT_SECONDS
    checks = [
        _run("database", lambda: check_database(timeout=timeout)),
        _run("broker", lambda: check_broker(timeout=timeout)),
    ]
    counts = None
    if checks[0].ok:
        try:
            seen = workers()
            counts = worker_counts(seen)
            checks.append(check_workers(seen))
        except DatabaseError as exc:
            logger.info("readiness.workers_unavailable error=%s", type(exc).__name__)
    return Readiness(checks, counts)
