"""`outbox_bench --partitions`: the relay with old rows spread over daily partitions, and retention's cost.

1. Relay rate and end-to-end latency (p99 at the first --rates rate) with the event table as it
   is (a fresh benchmark database: nearly empty), then again after --old-rows published rows are
   spread over --old-days daily partitions before today.
2. The cost of retention per day of data, alternated round by round: deleting one day's rows
   row by row in batches (what `outbox_prune` did) against dropping another day's partition
   whole. Time and WAL bytes of each; WAL is read from the server's WAL position, so another
   session's writes in the same seconds count too (noise, on both sides).
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, date, datetime, timedelta

from django.db import connection, transaction

from outbox.models import InboxEntry, OutboxEvent
from outbox.partitions import (
    EVENTS_TABLE,
    create_partition,
    day_start,
    drop_partition,
    list_partitions,
    partition_name,
    uuid_floor,
)
from outbox.retention import delete_published_events
from tooling.benchmarks.pipeline import FILLER_TYPE, BenchRefused, PipelineBench, time_ordered_uuid_sql

CHUNK = 100_000


def daily_partitions_since(first_day: date) -> None:
    """Give both tables daily partitions from `first_day` on, as a table converted that day would have.

    The migration's first ("legacy") partition holds every id up to two days after the conversion;
    it is attached again for the ids before `first_day` only, which it must not hold rows past.
    """
    for table in (OutboxEvent._meta.db_table, InboxEntry._meta.db_table):
        legacy = next(p for p in list_partitions(table) if p.lower is None and not p.is_default)
        bound = uuid_floor(day_start(first_day))
        if legacy.upper is not None and legacy.upper <= bound:
            continue
        # One transaction: a refused attach must not leave the table without its first partition.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f'SELECT EXISTS (SELECT 1 FROM "{legacy.name}" WHERE event_id >= %s)', [str(bound)])
            if cursor.fetchone()[0]:
                raise BenchRefused(
                    f"--partitions needs a database whose {table} holds no event from {first_day} on "
                    f"in {legacy.name}: run it on a freshly migrated database"
                )
            cursor.execute(f'ALTER TABLE "{table}" DETACH PARTITION "{legacy.name}"')
            cursor.execute(
                f'ALTER TABLE "{table}" ATTACH PARTITION "{legacy.name}" FOR VALUES FROM (MINVALUE) TO (%s)',
                [str(bound)],
            )
        start = day_start(first_day)
        while legacy.upper is None or uuid_floor(start) < legacy.upper:
            create_partition(table, start, start + timedelta(days=1))
            start += timedelta(days=1)


def _wal_position() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn()::text")
        return cursor.fetchone()[0]


def _wal_since(position: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)::bigint", [position])
        return cursor.fetchone()[0]


class PartitionBench(PipelineBench):
    """Relay rate and p99 latency, empty table against old rows over daily partitions; prune against drop."""

    def measure(self) -> None:
        rate = self.config.rates[0]
        days = self.config.old_days
        today = datetime.now(UTC).date()
        first_day = today - timedelta(days=days)
        daily_partitions_since(first_day)
        self.measure_relay_and_consumer(relays=1, prefix="empty.", rounds=self.config.limit_rounds)
        self.measure_latency(prefix="empty.", rates=(rate,))
        self.add_old_rows_by_day(first_day, days)
        self._settle_server()
        self.measure_relay_and_consumer(relays=1, prefix="old_rows.", rounds=self.config.limit_rounds)
        self.measure_latency(prefix="old_rows.", rates=(rate,))
        f = self.result.figures
        self.result.set(
            "old_rows.relay_change",
            f["old_rows.relay.1_relays.events_per_s"] / f["empty.relay.1_relays.events_per_s"] - 1,
        )
        self.result.set(
            "old_rows.p99_change",
            f[f"old_rows.latency.{rate}_per_s.p99_ms"] / f[f"empty.latency.{rate}_per_s.p99_ms"] - 1,
        )
        self.measure_retention(first_day, days)

    def add_old_rows_by_day(self, first_day: date, days: int) -> None:
        """--old-rows published filler events, an even share in each day's partition, ids spread over the day."""
        per_day = self.config.old_rows // days
        done = 0
        for offset in range(days):
            start = day_start(first_day + timedelta(days=offset))
            for chunk_start in range(0, per_day, CHUNK):
                size = min(CHUNK, per_day - chunk_start)
                moment = f"%s::timestamptz + ((g + {chunk_start})::float / {per_day}) * interval '1 day'"
                event_id = time_ordered_uuid_sql(moment, "g::text || random()::text")
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"INSERT INTO {EVENTS_TABLE} (event_id, aggregate_type, aggregate_id, event_type, "
                        "schema_version, payload, headers, occurred_at, published_at, attempts, last_error) "
                        f"SELECT {event_id}, %s, g::text, %s, 1, '{{}}'::jsonb, "
                        "'{}'::jsonb, now(), now(), 1, '' FROM generate_series(0, %s - 1) AS g",
                        [start, FILLER_TYPE, FILLER_TYPE, size],
                    )
                done += size
                self.progress("old rows", done, per_day * days)
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM (ANALYZE) {EVENTS_TABLE}")

    def measure_retention(self, first_day: date, days: int) -> None:
        """One day's rows deleted row by row against one day's partition dropped, alternated; medians."""
        prune_seconds, prune_wal, drop_seconds, drop_wal, rows = [], [], [], [], []
        partitions = {p.name: p for p in list_partitions(EVENTS_TABLE)}
        for pair in range(days // 2):
            pruned = partition_name(EVENTS_TABLE, first_day + timedelta(days=2 * pair))
            dropped = partitions[partition_name(EVENTS_TABLE, first_day + timedelta(days=2 * pair + 1))]
            with connection.cursor() as cursor:
                cursor.execute("CHECKPOINT")
            position, started = _wal_position(), time.perf_counter()
            rows.append(delete_published_events(timedelta(0), batch_size=1000, table=pruned))
            prune_seconds.append(time.perf_counter() - started)
            prune_wal.append(_wal_since(position))
            with connection.cursor() as cursor:
                cursor.execute("CHECKPOINT")
            position, started = _wal_position(), time.perf_counter()
            outcome = drop_partition(dropped)
            drop_seconds.append(time.perf_counter() - started)
            drop_wal.append(_wal_since(position))
            if outcome != "dropped":
                raise RuntimeError(f"{dropped.name} was not dropped: {outcome}")
            self.progress("retention", pair + 1, days // 2)
        if not rows:
            return
        self.result.set("retention.rows_per_day", statistics.median(rows))
        self.result.set("retention.prune_rows.seconds", statistics.median(prune_seconds))
        self.result.set("retention.prune_rows.wal_mb", statistics.median(prune_wal) / 1e6)
        self.result.set("retention.drop_partition.seconds", statistics.median(drop_seconds))
        self.result.set("retention.drop_partition.wal_mb", statistics.median(drop_wal) / 1e6)
