"""Time partitions: created ahead, rows routed by event id, guards on every partition, retention by drop."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pgtrigger
import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction

from outbox.models import DELETE_GUARD_URI, OutboxEvent
from outbox.partitions import (
    EVENTS_TABLE,
    INBOX_TABLE,
    create_partitions_ahead,
    default_partition,
    drop_expired_partitions,
    list_partitions,
    partition_name,
    partition_report,
)
from outbox.services import claim_pending_events, event_id_span, mark_published
from relay.replay import ReplaySelection, plan_replay, replay_events
from tests.helpers import get_messages
from tests.outbox.partition_rows import event_id_on, insert_event, insert_inbox_entry, partition_of

TODAY = datetime.now(UTC).date()


def names(table: str) -> list[str]:
    return [partition.name for partition in list_partitions(table)]


@pytest.fixture
def later_day(db):
    """A day with partitions of its own in both tables, past the ones the migration created."""
    day = TODAY + timedelta(days=10)
    for table in (EVENTS_TABLE, INBOX_TABLE):
        create_partitions_ahead(table, days_ahead=0, today=day)
    return day


def test_partitions_are_created_ahead_once_and_continue_from_the_last_one(db):
    day = TODAY + timedelta(days=20)

    created = create_partitions_ahead(EVENTS_TABLE, days_ahead=3, today=day)
    again = create_partitions_ahead(EVENTS_TABLE, days_ahead=3, today=day)
    continued = create_partitions_ahead(EVENTS_TABLE, days_ahead=3, today=day + timedelta(days=2))

    # A relay that checks late starts today: the days missed go to the DEFAULT partition.
    assert created == [partition_name(EVENTS_TABLE, day + timedelta(days=n)) for n in range(4)]
    assert again == []
    assert continued == [partition_name(EVENTS_TABLE, day + timedelta(days=n)) for n in (4, 5)]
    ranged = [p for p in list_partitions(EVENTS_TABLE) if not p.is_default]
    assert all(a.upper == b.lower for a, b in itertools.pairwise(ranged[-6:]))
    assert names(EVENTS_TABLE)[-1] == f"{EVENTS_TABLE}_default"


def test_an_event_lands_in_the_partition_of_its_day_and_a_stray_id_in_the_default(later_day):
    in_day, stray = event_id_on(later_day), uuid.UUID("ffffffff-0000-4000-8000-000000000000")
    insert_event(in_day)
    insert_event(stray)

    assert partition_of(EVENTS_TABLE, in_day) == partition_name(EVENTS_TABLE, later_day)
    assert partition_of(EVENTS_TABLE, stray) == default_partition(EVENTS_TABLE)
    assert partition_report(7).default_rows[EVENTS_TABLE] == 1


def test_the_append_only_guards_hold_on_a_day_partition(later_day):
    pk = insert_event(event_id_on(later_day), state="published")
    pending = insert_event(event_id_on(later_day))

    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        OutboxEvent.objects.filter(pk=pk).update(event_type="message.created")
    with pytest.raises(IntegrityError, match="only be removed by the outbox retention path"), transaction.atomic():
        OutboxEvent.objects.filter(pk=pk).delete()
    with (
        pytest.raises(IntegrityError, match="not published yet"),
        pgtrigger.ignore(DELETE_GUARD_URI),
        transaction.atomic(),
    ):
        OutboxEvent.objects.filter(pk=pending).delete()
    # Through the partition itself, not the parent: the same guards.
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f'UPDATE "{partition_name(EVENTS_TABLE, later_day)}" SET payload = %s', ["{}"])


def test_the_claim_takes_events_across_partitions_in_id_order_and_settles_them(later_day):
    today_event = insert_event(event_id_on(TODAY))
    later_event = insert_event(event_id_on(later_day))

    with transaction.atomic():
        events = claim_pending_events(10)
        span = event_id_span(event.event_id for event in events)
        marked = mark_published([event.id for event in events], within=span)

    assert [event.id for event in events] == [today_event, later_event]
    assert marked == 2
    assert not OutboxEvent.objects.filter(published_at__isnull=True).exists()


def test_retention_drops_whole_expired_partitions_and_keeps_those_with_pending_or_dead_events(later_day):
    dropped_day, pending_day, dead_day = later_day, later_day + timedelta(days=1), later_day + timedelta(days=2)
    for table in (EVENTS_TABLE, INBOX_TABLE):
        create_partitions_ahead(table, days_ahead=2, today=later_day)
    insert_event(event_id_on(dropped_day), state="published")
    insert_inbox_entry(event_id_on(dropped_day))
    insert_event(event_id_on(pending_day), state="published")
    insert_event(event_id_on(pending_day), state="pending")
    insert_event(event_id_on(dead_day), state="dead")
    # Far enough ahead that every partition up to the dead event's day is past retention.
    later = datetime.combine(dead_day, datetime.min.time(), tzinfo=UTC) + timedelta(days=8)

    report = partition_report(7, now=later)
    result = drop_expired_partitions(timedelta(days=7), now=later)

    kept = {
        partition_name(EVENTS_TABLE, pending_day): "holds 1 pending and 0 dead events",
        partition_name(EVENTS_TABLE, dead_day): "holds 0 pending and 1 dead events",
    }
    assert {name: reason for name, reason in report.kept.items() if name in kept} == kept
    assert {name: reason for name, reason in result.kept.items() if name in kept} == kept
    assert partition_name(EVENTS_TABLE, dropped_day) in result.dropped
    assert partition_name(INBOX_TABLE, dropped_day) in result.dropped
    assert partition_name(EVENTS_TABLE, dropped_day) not in names(EVENTS_TABLE)
    assert OutboxEvent.objects.filter(published_at__isnull=True).count() == 2


def test_prune_command_reports_what_it_kept_and_why(later_day, capsys):
    insert_event(event_id_on(later_day), state="dead")
    later = datetime.combine(later_day, datetime.min.time(), tzinfo=UTC) + timedelta(days=9)

    result = drop_expired_partitions(timedelta(days=7), now=later)
    call_command("outbox_partitions", "list")

    assert result.kept[partition_name(EVENTS_TABLE, later_day)] == "holds 0 pending and 1 dead events"
    assert partition_name(EVENTS_TABLE, later_day) in capsys.readouterr().out


def test_outbox_partitions_create_fills_the_days_ahead(db, capsys, settings):
    settings.OUTBOX_PARTITIONS_AHEAD_DAYS = 6

    call_command("outbox_partitions", "create")

    assert partition_name(EVENTS_TABLE, TODAY + timedelta(days=6)) in names(EVENTS_TABLE)
    assert partition_name(INBOX_TABLE, TODAY + timedelta(days=6)) in names(INBOX_TABLE)
    assert "created" in capsys.readouterr().out


def test_replay_sends_published_events_of_every_partition_in_id_order(later_day, topology, broker_channel):
    published = [insert_event(event_id_on(day), state="published") for day in (TODAY, later_day, TODAY)]

    plan = plan_replay(ReplaySelection())
    replay_events(plan)

    deliveries = get_messages(broker_channel, topology.queue_for("notifications"), expected=3)
    sent = [uuid.UUID(delivery.properties["message_id"]) for delivery in deliveries]
    assert sent == list(OutboxEvent.objects.filter(pk__in=published).order_by("id").values_list("event_id", flat=True))
