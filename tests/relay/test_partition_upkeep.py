"""The relay's slow tick keeps partitions created ahead, and a busy table defers it without an outage."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from outbox.partitions import EVENTS_TABLE, INBOX_TABLE, list_partitions, partition_name
from relay.partition_upkeep import PartitionUpkeep
from tests.helpers import other_database_session

TODAY = datetime.now(UTC).date()


def names(table: str) -> set[str]:
    return {partition.name for partition in list_partitions(table)}


@pytest.mark.django_db
def test_the_tick_creates_partitions_ahead_then_waits_for_its_interval(settings):
    settings.OUTBOX_PARTITIONS_AHEAD_DAYS = 8
    upkeep = PartitionUpkeep()

    upkeep.tick()
    settings.OUTBOX_PARTITIONS_AHEAD_DAYS = 9
    upkeep.tick()  # within OUTBOX_PARTITION_CHECK_SECONDS: nothing is checked

    for table in (EVENTS_TABLE, INBOX_TABLE):
        assert partition_name(table, TODAY + timedelta(days=8)) in names(table)
        assert partition_name(table, TODAY + timedelta(days=9)) not in names(table)


@pytest.mark.django_db(transaction=True)
def test_a_table_held_by_a_long_transaction_defers_the_check_and_is_no_outage(settings, caplog):
    settings.OUTBOX_PARTITIONS_AHEAD_DAYS = 12
    upkeep = PartitionUpkeep()
    with other_database_session() as session, session.transaction():
        session.execute(f"LOCK TABLE {EVENTS_TABLE} IN ROW EXCLUSIVE MODE")  # as an open write does
        with caplog.at_level(logging.WARNING, logger="relay.partition_upkeep"):
            upkeep.tick()

    assert "relay.partition_check_deferred reason=lock_timeout" in caplog.text
    assert partition_name(EVENTS_TABLE, TODAY + timedelta(days=12)) not in names(EVENTS_TABLE)
    upkeep.next_check = 0.0  # the retry, without waiting for it
    upkeep.tick()
    assert partition_name(EVENTS_TABLE, TODAY + timedelta(days=12)) in names(EVENTS_TABLE)
