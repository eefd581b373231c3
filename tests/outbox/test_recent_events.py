"""The recent-events view holds today's and tomorrow's events and moves once a day, on the upkeep's tick."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection

from outbox.partitions import EVENTS_TABLE, create_partitions_ahead
from outbox.recent_events import RECENT_EVENTS_VIEW, refresh_recent_events_view
from relay.partition_upkeep import PartitionUpkeep
from tests.outbox.partition_rows import event_id_on, insert_event

TODAY = datetime.now(UTC).date()


def ids_in_view() -> set:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT event_id FROM {RECENT_EVENTS_VIEW}")
        return {row[0] for row in cursor.fetchall()}


@pytest.fixture
def days_of_events(db):
    """One event on each day from yesterday to three days ahead, each in a partition of its own day or older."""
    create_partitions_ahead(EVENTS_TABLE, days_ahead=3, today=TODAY + timedelta(days=3))
    days = [TODAY + timedelta(days=n) for n in range(-1, 4)]
    ids = {day: event_id_on(day) for day in days}
    for event_id in ids.values():
        insert_event(event_id)
    return ids


def test_the_view_holds_the_events_of_today_and_tomorrow_only(days_of_events):
    refresh_recent_events_view(today=TODAY)

    assert ids_in_view() == {days_of_events[TODAY], days_of_events[TODAY + timedelta(days=1)]}


def test_the_view_moves_with_the_day_and_is_left_alone_within_it(days_of_events):
    later = TODAY + timedelta(days=2)

    assert refresh_recent_events_view(today=later) is True
    assert refresh_recent_events_view(today=later) is False  # unchanged: no session plans its probes again
    assert ids_in_view() == {days_of_events[later], days_of_events[later + timedelta(days=1)]}


def test_the_relays_tick_and_the_create_command_move_the_view_to_today(days_of_events, capsys):
    refresh_recent_events_view(today=TODAY - timedelta(days=5))
    PartitionUpkeep().tick()
    assert days_of_events[TODAY] in ids_in_view()

    refresh_recent_events_view(today=TODAY - timedelta(days=5))
    call_command("outbox_partitions", "create")
    assert days_of_events[TODAY] in ids_in_view()
    assert "moved the recent-events view to today" in capsys.readouterr().out
