"""Worker heartbeats: written on a schedule, cleared on a clean stop, silence reported once."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from outbox.heartbeats import MAX_ERROR_LENGTH, Heartbeat, describe_error
from outbox.models import WorkerHeartbeat

pytestmark = pytest.mark.django_db


def test_a_beat_records_the_worker_and_the_next_is_skipped_until_due():
    heartbeat = Heartbeat("relay", interval=60, stall_after=120)

    assert heartbeat.beat() is True
    assert heartbeat.beat() is False
    row = WorkerHeartbeat.objects.get(worker_id=heartbeat.worker_id)
    assert row.kind == "relay"
    assert row.pid > 0


def test_clear_removes_the_heartbeat():
    heartbeat = Heartbeat("relay", interval=60, stall_after=120)
    heartbeat.beat()

    heartbeat.clear()

    assert not WorkerHeartbeat.objects.exists()


def test_a_silent_peer_is_reported_once(caplog):
    silent = Heartbeat("relay", interval=0.001, stall_after=30)
    silent.beat()
    WorkerHeartbeat.objects.filter(worker_id=silent.worker_id).update(beat_at=timezone.now() - timedelta(minutes=2))
    watcher = Heartbeat("relay", interval=0.001, stall_after=30)

    with caplog.at_level(logging.WARNING, logger="outbox.heartbeats"):
        watcher.beat()
        watcher._last_beat = 0
        watcher.beat()

    lines = [r.getMessage() for r in caplog.records if "peer_stalled" in r.getMessage()]
    assert len(lines) == 1
    assert silent.worker_id in lines[0]


def test_a_peer_silent_far_too_long_is_presumed_gone_and_forgotten(caplog):
    dead = Heartbeat("relay", interval=0.001, stall_after=30)
    dead.beat()
    WorkerHeartbeat.objects.filter(worker_id=dead.worker_id).update(beat_at=timezone.now() - timedelta(hours=1))
    watcher = Heartbeat("relay", interval=0.001, stall_after=30)

    with caplog.at_level(logging.WARNING, logger="outbox.heartbeats"):
        watcher.beat()

    assert not WorkerHeartbeat.objects.filter(worker_id=dead.worker_id).exists()
    assert f"relay.peer_gone worker={dead.worker_id}" in caplog.text
    assert "peer_stalled" not in caplog.text


def test_a_recorded_error_is_written_by_the_next_beat_even_before_the_interval():
    heartbeat = Heartbeat("relay", interval=60, stall_after=120)
    heartbeat.beat()

    heartbeat.record_error(ConnectionRefusedError(111, "Connection refused"))

    assert heartbeat.beat() is True
    row = WorkerHeartbeat.objects.get(worker_id=heartbeat.worker_id)
    assert row.last_error == "ConnectionRefusedError: [Errno 111] Connection refused"
    assert row.last_error_at is not None
    assert heartbeat.beat() is False, "once written, the error does not make every beat due"


def test_a_later_beat_keeps_the_last_error():
    heartbeat = Heartbeat("relay", interval=0.001, stall_after=120)
    heartbeat.record_error(RuntimeError("boom"))
    heartbeat.beat()
    heartbeat._last_beat = 0

    heartbeat.beat()

    assert WorkerHeartbeat.objects.get(worker_id=heartbeat.worker_id).last_error == "RuntimeError: boom"


def test_describe_error_keeps_one_line_masks_credentials_and_caps_the_length():
    database_error = Exception('duplicate key value violates unique constraint "x"\nDETAIL:  Key (content)=(secret)')
    broker_error = OSError("cannot reach amqp://guest:hunter2@broker:5672// now")

    assert describe_error(database_error) == 'Exception: duplicate key value violates unique constraint "x"'
    assert describe_error(broker_error) == "OSError: cannot reach amqp://***@broker:5672// now"
    assert describe_error(KeyError()) == "KeyError"
    assert len(describe_error(ValueError("x" * 1000))) == MAX_ERROR_LENGTH
