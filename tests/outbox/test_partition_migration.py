"""The migration to time partitions keeps every row, its state and its id sequence, and the relay relays on."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from django.db import connection

from outbox.models import OutboxEvent
from outbox.partitions import EVENTS_TABLE, INBOX_TABLE, default_partition
from tests.helpers import migrate_to, relay_pending_events
from tests.outbox.partition_rows import event_id_on, insert_event, insert_inbox_entry, partition_of

BEFORE = [("outbox", "0008_worker_consecutive_failures")]


def is_partitioned(table: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", [table])
        return cursor.fetchone()[0] == "p"


@pytest.mark.django_db(transaction=True)
def test_partitioning_keeps_pending_published_and_dead_events_and_the_relay_relays_them(topology):
    migrate_to(BEFORE)
    try:
        assert not is_partitioned(EVENTS_TABLE)
        today = datetime.now(UTC).date()
        published = insert_event(event_id_on(today), state="published")
        pending = insert_event(event_id_on(today), state="pending")
        dead = insert_event(event_id_on(today), state="dead")
        # An id from before ids were time-ordered: no time partition holds it.
        stray_id = uuid.UUID("ffffffff-0000-4000-8000-000000000000")
        stray = insert_event(stray_id, state="pending")
        insert_inbox_entry(event_id_on(today))
    finally:
        migrate_to()

    assert is_partitioned(EVENTS_TABLE)
    assert is_partitioned(INBOX_TABLE)
    states = {event.pk: event.state for event in OutboxEvent.objects.all()}
    assert states == {published: "published", pending: "pending", dead: "dead", stray: "pending"}
    assert partition_of(EVENTS_TABLE, stray_id) == default_partition(EVENTS_TABLE)
    # The id sequence goes on past the rows that were there.
    assert insert_event(event_id_on(today)) > stray

    relay_pending_events()

    states = {event.pk: event.state for event in OutboxEvent.objects.all()}
    assert states[pending] == states[stray] == "published"
    assert states[dead] == "dead"
