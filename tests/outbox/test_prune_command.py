"""outbox_prune: retention drops whole time partitions, never one holding a pending or dead event."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from outbox.models import InboxEntry, OutboxEvent
from outbox.partitions import EVENTS_TABLE, INBOX_TABLE, list_partitions, partition_name
from tests.outbox.partition_rows import daily_partitions_since, event_id_on, insert_event, insert_inbox_entry

TODAY = datetime.now(UTC).date()


def test_prune_drops_expired_partitions_keeps_those_with_unpublished_events_and_says_why(db, capsys):
    daily_partitions_since(TODAY - timedelta(days=12))
    old_day, dead_day, pending_day = (TODAY - timedelta(days=n) for n in (12, 11, 10))
    recent = insert_event(event_id_on(TODAY - timedelta(days=1)), state="published")
    insert_event(event_id_on(old_day), state="published")
    insert_inbox_entry(event_id_on(old_day))
    dead = insert_event(event_id_on(dead_day), state="dead")
    pending = insert_event(event_id_on(pending_day), state="pending")
    # Ids of no time partition (made before ids were time-ordered) wait in the DEFAULT partition.
    long_ago = timezone.now() - timedelta(days=30)
    stray = insert_event(uuid.UUID("ffffffff-0000-4000-8000-000000000000"), state="published")
    OutboxEvent.objects.filter(pk=stray).update(published_at=long_ago)
    InboxEntry.objects.create(consumer="c", event_id=uuid.uuid4(), event_type="t", processed_at=long_ago)

    call_command("outbox_prune", "--older-than", "7d", "--batch-size", "2")

    out = capsys.readouterr().out
    assert f"kept {partition_name(EVENTS_TABLE, dead_day)}: holds 0 pending and 1 dead events" in out
    assert f"kept {partition_name(EVENTS_TABLE, pending_day)}: holds 1 pending and 0 dead events" in out
    assert "deleted 1 published events and 1 inbox entries from the DEFAULT partitions" in out
    partitions = {p.name for table in (EVENTS_TABLE, INBOX_TABLE) for p in list_partitions(table)}
    assert partition_name(EVENTS_TABLE, old_day) not in partitions
    assert partition_name(INBOX_TABLE, old_day) not in partitions
    # The inbox has no unpublished rows: its partitions go with the window.
    assert partition_name(INBOX_TABLE, dead_day) not in partitions
    assert set(OutboxEvent.objects.values_list("pk", flat=True)) == {recent, dead, pending}
    assert not InboxEntry.objects.exists()


@pytest.mark.django_db
def test_prune_without_a_duration_uses_the_retention_setting(settings, capsys):
    settings.OUTBOX_RETENTION_DAYS = 3
    daily_partitions_since(TODAY - timedelta(days=5))
    insert_event(event_id_on(TODAY - timedelta(days=5)), state="published")

    call_command("outbox_prune")

    # In each table: the first partition (ids before five days ago) and those of days 5 and 4 ago.
    assert "dropped 6 partitions" in capsys.readouterr().out
    assert not OutboxEvent.objects.exists()
