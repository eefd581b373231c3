"""The worker loop the relay and the consumers share: one unit at a time, backoff that a reconnect
failing at once does not reset, failures in a row on the heartbeat, a clean stop."""

from __future__ import annotations

import logging
import random

import pytest

from outbox.health import readiness
from outbox.models import WorkerHeartbeat
from outbox.outages import INITIAL_BACKOFF_SECONDS, OutageTracker
from outbox.worker import BrokerUnavailable, Worker, WorkerRefused
from tests.helpers import run_in_thread, wait_until

logger = logging.getLogger(__name__)


@pytest.fixture
def widest_jitter(monkeypatch):
    """Every backoff delay is its cap, so a test can read the cap off the delay."""
    monkeypatch.setattr(random, "uniform", lambda low, high: high)


def test_a_reconnect_that_fails_again_at_once_keeps_backing_off(widest_jitter):
    outages = OutageTracker(logger, "test", max_backoff=60, healthy_after=10)

    delays = []
    for _ in range(5):
        delays.append(outages.began(BrokerUnavailable("refused")))
        outages.recovered()  # connected, then the same failure at once

    assert delays == [INITIAL_BACKOFF_SECONDS * 2**n for n in range(5)]
    assert outages.consecutive_failures == 5


def test_backoff_and_failure_count_start_over_after_a_healthy_period(widest_jitter):
    outages = OutageTracker(logger, "test", max_backoff=60, healthy_after=0)
    for _ in range(3):
        outages.began(BrokerUnavailable("refused"))

    outages.recovered()

    assert outages.consecutive_failures == 0
    assert outages.began(BrokerUnavailable("refused")) == INITIAL_BACKOFF_SECONDS


class FailingWorker(Worker):
    """A worker whose unit of work fails `failures` times (an outage, then a bug), then succeeds."""

    log_prefix = "test"

    def __init__(self, failures: int) -> None:
        super().__init__(kind="test.worker", logger=logger, max_backoff=0.01)
        self.failures = failures
        self.units = 0

    def work_once(self) -> None:
        self.units += 1
        if self.units <= self.failures:
            raise BrokerUnavailable("refused") if self.units % 2 else KeyError("a bug")
        self.wait(0.01)


@pytest.mark.django_db(transaction=True)
def test_a_worker_failing_in_a_row_is_not_ready_and_says_why_then_recovers(settings, caplog):
    settings.WORKER_FAILING_AFTER = 3
    worker = FailingWorker(failures=10**9)
    runner = run_in_thread(worker)
    try:
        row = wait_until(
            lambda: WorkerHeartbeat.objects.filter(
                worker_id=worker.heartbeat.worker_id, consecutive_failures__gte=3
            ).first(),
            what="the failures in a row on the heartbeat",
        )
        assert row.last_error.split(":")[0] in ("BrokerUnavailable", "KeyError")
        result = readiness()
        assert not result.ready
        [workers_check] = [check for check in result.checks if check.name == "workers"]
        assert workers_check.error.startswith("test.worker: ")

        worker.failures = 0  # the cause is gone
        worker._outages._healthy_after = 0
        wait_until(
            lambda: WorkerHeartbeat.objects.filter(
                worker_id=worker.heartbeat.worker_id, consecutive_failures=0
            ).exists(),
            what="the failure count written back to zero",
        )
        assert readiness().ready
    finally:
        worker.stop()
        runner.join(10)
    assert not runner.is_alive()
    assert not WorkerHeartbeat.objects.exists(), "a clean stop clears the heartbeat"
    lines = [record.getMessage() for record in caplog.records]
    assert sum(line.startswith("test.worker.outage ") for line in lines) == 1
    assert any(line.startswith("test.unexpected_error retrying_with_backoff=true") for line in lines)
    assert lines[-1] == "test.stopped"


class RefusingWorker(Worker):
    """A worker that finds, at its second unit of work, a dependency set up against its settings."""

    log_prefix = "test"

    def __init__(self) -> None:
        super().__init__(kind="test.worker", logger=logger, max_backoff=0.01)
        self.units = 0

    def work_once(self) -> None:
        self.units += 1
        if self.units == 2:
            raise WorkerRefused("the broker has 5 partitions, this worker is set for 4")


@pytest.mark.django_db(transaction=True)
def test_a_refusal_ends_the_loop_with_one_line_and_no_retry(caplog):
    worker = RefusingWorker()

    worker.run()

    assert worker.units == 2
    assert str(worker.refusal) == "the broker has 5 partitions, this worker is set for 4"
    lines = [record.getMessage() for record in caplog.records]
    assert lines[-2:] == [
        "test.refused reason='the broker has 5 partitions, this worker is set for 4'",
        "test.stopped",
    ]
    assert not [record for record in caplog.records if record.exc_info]
