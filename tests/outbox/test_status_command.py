"""`manage.py outbox_status`: the operators' snapshot on one terminal screen, or as JSON."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.utils import timezone

from outbox.models import OutboxEvent, WorkerHeartbeat
from outbox.status_text import duration, sparkline
from tests.helpers import append_read_events

pytestmark = pytest.mark.django_db


@pytest.fixture
def outbox_with_trouble(topology):
    """Two pending events, one dead event, and a relay that had an outage."""
    pending = append_read_events(2)
    dead = append_read_events(1)[0]
    OutboxEvent.objects.filter(pk=dead.pk).update(dead_at=timezone.now(), attempts=8, last_error="NOT_ROUTED")
    WorkerHeartbeat.objects.create(
        worker_id="relay-host-1-abc",
        kind="relay",
        hostname="host",
        pid=1,
        started_at=timezone.now(),
        beat_at=timezone.now(),
        last_error="BrokerUnavailable: Connection refused",
        last_error_at=timezone.now(),
    )
    return pending, dead


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("outbox_status", *args, stdout=out)
    return out.getvalue()


def test_the_screen_shows_backlog_workers_dead_events_queues_and_errors(outbox_with_trouble, topology):
    _, dead = outbox_with_trouble

    screen = run()

    assert "pending 2" in screen
    assert "dead 1" in screen
    assert "relay-host-1-abc" in screen
    assert "alive" in screen
    assert "last error" in screen
    assert f"#{dead.id:<8} message.read" in screen
    assert "error=NOT_ROUTED" in screen
    assert f"{topology.dead_letter_queue_for('notifications').name}  0 messages" in screen
    assert "BrokerUnavailable: Connection refused" in screen.split("Recent errors")[1]
    assert "published" in screen
    assert "consumed" in screen


def test_json_prints_the_same_snapshot_for_scripts(outbox_with_trouble):
    _, dead = outbox_with_trouble

    data = json.loads(run("--json"))

    assert data["backlog"]["pending"] == 2
    assert data["dead_events"][0]["id"] == dead.id
    assert data["broker"]["dead_letter_queues"][0]["depth"] == 0
    assert data["workers"][0]["worker_id"] == "relay-host-1-abc"


def test_an_idle_outbox_says_so(broker_namespace):
    screen = run()

    assert "pending 0" in screen
    assert "no relay or consumer has a heartbeat" in screen
    assert screen.rstrip().endswith("none"), "no recent errors"


def test_the_screen_on_the_filesystem_broker_names_its_folder_and_the_queues_it_cannot_find(filesystem_broker):
    screen = run()

    assert f"Dead-letter queues (broker filesystem:// (folder {filesystem_broker['data_folder_in']}))" in screen
    assert "not declared yet" in screen
    assert "broker unreachable" not in screen


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(4.24, "4.2 s"), (42, "42 s"), (185, "3 min 5 s"), (7380, "2 h 3 min"), (3 * 86400 + 4 * 3600, "3 d 4 h")],
)
def test_durations_read_as_people_say_them(seconds, text):
    assert duration(seconds) == text


def test_a_sparkline_scales_to_its_largest_value():
    assert sparkline([0, 1, 2, 4]) == "▁▃▅█"
    assert sparkline([0, 1, 100]) == "▁▂█", "a little traffic is not shown as none"
    assert sparkline([0, 0]) == "▁▁"
