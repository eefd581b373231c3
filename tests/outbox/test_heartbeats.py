"""Worker heartbeats: written on a schedule, cleared on a clean stop, silence reported once."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from outbox.heartbeats import Heartbeat
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
