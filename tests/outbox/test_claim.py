"""The relay's claim: which pending events it locks, in which order, whatever the statistics say."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from outbox.models import OutboxEvent
from outbox.services import (
    _FIRST_HEAD_SQL,
    _HEAD_SQL,
    _LOCK_SQL,
    CLAIM_PLANNER_SETTINGS,
    claim_batch,
    claim_pending_events,
    emit,
    head_page_size,
)
from tests.helpers import (
    TIME_ORDERED_UUID_SQL,
    append_read_events,
    claim_held_by_another_relay,
    partitions_of,
    plan_nodes,
    plan_of,
)

TABLE = OutboxEvent._meta.db_table


def add_pending_events(count: int, *, aggregate_id: str | None = None) -> None:
    """`count` pending events in one statement, each on its own aggregate unless one is given."""
    aggregate = "%s" if aggregate_id is not None else "gen_random_uuid()::text"
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {TABLE} (event_id, aggregate_type, aggregate_id, event_type, schema_version, payload, "
            f"headers, occurred_at, attempts, last_error) "
            f"SELECT {TIME_ORDERED_UUID_SQL}, 'message', {aggregate}, 'message.read', 1, '{{}}', '{{}}', now(), 0, '' "
            "FROM generate_series(1, %s)",
            [aggregate_id, count] if aggregate_id is not None else [count],
        )


def claimed_ids(batch_size: int) -> list[int]:
    with transaction.atomic():
        return [event.id for event in claim_pending_events(batch_size)]


def same_aggregate_events(count: int) -> list[OutboxEvent]:
    first = append_read_events(1)[0]
    with transaction.atomic():
        return [first] + [
            emit(
                aggregate_type="message",
                aggregate_id=first.aggregate_id,
                event_type="message.read",
                payload=first.payload,
            )
            for _ in range(count - 1)
        ]


@pytest.mark.django_db
def test_the_claim_takes_the_oldest_pending_event_of_each_aggregate_in_id_order():
    older, _younger = same_aggregate_events(2)
    others = append_read_events(3)

    assert claimed_ids(10) == [older.id, *(event.id for event in others)]


@pytest.mark.django_db
def test_an_event_waiting_for_its_retry_holds_back_the_younger_events_of_its_aggregate():
    older, _younger = same_aggregate_events(2)
    [other] = append_read_events(1)
    OutboxEvent.objects.filter(pk=older.pk).update(next_attempt_at=timezone.now() + timedelta(hours=1))

    assert claimed_ids(10) == [other.id]


def more_behind_claim(batch_size: int) -> bool:
    with transaction.atomic():
        return claim_batch(batch_size).more_behind


@pytest.mark.django_db
def test_a_claim_says_more_waits_behind_it_when_its_batch_is_full_or_holds_back_a_younger_event():
    append_read_events(2)
    assert more_behind_claim(3) is False  # the whole queue, nothing behind it
    assert more_behind_claim(2) is True  # full: there may be more

    OutboxEvent.objects.update(published_at=timezone.now())
    same_aggregate_events(2)
    assert more_behind_claim(10) is True  # the younger event is claimable once the older is published


@pytest.mark.django_db
def test_an_event_held_back_behind_one_waiting_for_its_retry_is_not_more_behind_the_claim():
    older, _younger = same_aggregate_events(2)
    append_read_events(1)
    OutboxEvent.objects.filter(pk=older.pk).update(next_attempt_at=timezone.now() + timedelta(hours=1))

    assert more_behind_claim(10) is False  # claiming again at once would find it held back still


@pytest.mark.django_db
def test_the_claim_reads_past_a_head_of_events_all_waiting_for_their_retry():
    batch_size = 2
    waiting = head_page_size(batch_size) * 3
    add_pending_events(waiting)
    OutboxEvent.objects.filter(published_at__isnull=True).update(next_attempt_at=timezone.now() + timedelta(hours=1))
    due = append_read_events(3)

    assert claimed_ids(batch_size) == [due[0].id, due[1].id]


@pytest.mark.django_db(transaction=True)
def test_an_event_another_relay_holds_still_holds_back_the_younger_events_of_its_aggregate():
    older, _younger = same_aggregate_events(2)
    [other] = append_read_events(1)
    with claim_held_by_another_relay(1) as first_claim:
        second_claim = claimed_ids(10)

    assert first_claim == [older.id]
    assert second_claim == [other.id]


@pytest.mark.django_db(transaction=True)
def test_a_claim_reads_on_past_a_head_another_relay_holds():
    batch_size = 5
    # Another relay holds several pages of the head: the claim reads on until it finds a batch.
    held_count = head_page_size(batch_size) * 3 + 2
    events = append_read_events(held_count + batch_size + 1)
    with claim_held_by_another_relay(held_count) as first_claim:
        second_claim = claimed_ids(batch_size)

    assert first_claim == [event.id for event in events[:held_count]]
    assert second_claim == [event.id for event in events[held_count : held_count + batch_size]]


# --- the plans ------------------------------------------------------------------------------


def claim_plan_of(sql: str, params: list) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(CLAIM_PLANNER_SETTINGS)  # as the claim plans it
    return plan_of(sql, params)


@pytest.fixture
def statistics_of_an_empty_table(db):
    """The planner's worst case: statistics taken while the table's pages held no live row
    (here rolled back rows), then a burst. Every path then looks like one row to it."""
    with connection.cursor() as cursor:
        cursor.execute("SAVEPOINT burst_rolled_back")
        add_pending_events(20_000)
        cursor.execute("ROLLBACK TO SAVEPOINT burst_rolled_back")
        cursor.execute(f"ANALYZE {TABLE}")
    add_pending_events(20_000)


@pytest.mark.parametrize(("sql", "params"), [(_FIRST_HEAD_SQL, [2000]), (_HEAD_SQL, [1, 2000])], ids=["first", "next"])
def test_reading_the_head_walks_the_pending_index_even_with_misleading_statistics(
    statistics_of_an_empty_table, sql, params
):
    plan = claim_plan_of(sql, params)

    # One walk of each partition's pending index, merged in id order.
    scans = [node for node in plan_nodes(plan) if "Scan" in node["Node Type"]]
    assert scans
    assert {scan["Node Type"] for scan in scans} == {"Index Scan"}
    assert {scan["Index Name"] for scan in scans} <= partitions_of("outbox_pending_idx")
    assert not any(node["Node Type"] == "Sort" for node in plan_nodes(plan))


def test_locking_the_candidates_probes_them_by_id_even_with_misleading_statistics(statistics_of_an_empty_table):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, event_id FROM {TABLE} WHERE published_at IS NULL ORDER BY id LIMIT 2000")
        rows = cursor.fetchall()
    ids, event_ids = [row[0] for row in rows], [row[1] for row in rows]

    plan = claim_plan_of(_LOCK_SQL, ["{" + ",".join(map(str, ids)) + "}", min(event_ids), max(event_ids), 500])

    # The event-id span prunes every partition but the one holding the batch.
    scans = [node for node in plan_nodes(plan) if "Scan" in node["Node Type"]]
    assert len(scans) == 1
    assert scans[0]["Node Type"] in ("Index Scan", "Bitmap Heap Scan")
    probe = scans[0] if scans[0]["Node Type"] == "Index Scan" else scans[0]["Plans"][0]
    assert "id = ANY" in probe["Index Cond"]


def _head_statements_kept() -> list[tuple[int, int]]:
    """(generic plans, custom plans) of each prepared statement of this session reading the queue's head."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE %s",
            ["%WHERE published_at IS NULL AND dead_at IS NULL%ORDER BY id%LIMIT%"],
        )
        return cursor.fetchall()


def test_the_heads_first_page_is_planned_once_per_connection(db):
    add_pending_events(3)
    claimed_ids(2)
    claimed_ids(2)

    # One statement, and no plan made for a single claim of its own: both ran the kept one.
    assert _head_statements_kept() == [(2, 0)]


def test_a_connection_that_may_not_keep_prepared_statements_claims_without_them(db):
    configured = connection.connection.prepare_threshold
    connection.connection.prepare_threshold = None  # as with DATABASE_PREPARED_STATEMENTS=false
    try:
        add_pending_events(3)
        assert len(claimed_ids(2)) == 2
        assert _head_statements_kept() == []
    finally:
        connection.connection.prepare_threshold = configured
