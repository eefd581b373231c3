"""Time partitions of the event and inbox tables: day bounds, names, create-ahead, list, drop.

Both tables are range-partitioned on `event_id`, a UUIDv7 whose first 48 bits are its creation
time in milliseconds, so a period of time is a range of ids (docs/decisions/0005-time-partitions.md).
Partitions are created ahead by the relay's slow tick and `outbox_partitions`, never on the write
path; a DEFAULT partition catches any id outside them and is reported. Retention drops whole
partitions, and never one that still holds an unpublished (pending or dead) event.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, OperationalError, connections, transaction

from outbox.models import InboxEntry, OutboxEvent

EVENTS_TABLE = OutboxEvent._meta.db_table
INBOX_TABLE = InboxEntry._meta.db_table
PARTITIONED_TABLES = (EVENTS_TABLE, INBOX_TABLE)

# Creating or dropping a partition takes an ACCESS EXCLUSIVE lock on the parent; it waits no
# longer than this for it, so writers queue behind it for at most as long, and is tried again.
DDL_LOCK_TIMEOUT = "2s"
LOCK_NOT_AVAILABLE = "55P03"
# The DEFAULT partition's rows are counted up to this many on every dashboard refresh.
DEFAULT_ROWS_COUNTED = 100_000

_BOUND = re.compile(r"FOR VALUES FROM \((?P<lo>[^)]*)\) TO \((?P<hi>[^)]*)\)")


def is_lock_timeout(exc: BaseException) -> bool:
    """True for the error of a statement that waited longer than its lock_timeout."""
    return getattr(exc.__cause__, "sqlstate", None) == LOCK_NOT_AVAILABLE


def uuid_floor(moment: datetime) -> uuid.UUID:
    """The smallest UUIDv7 of the millisecond `moment` falls in: every id made at or after it is greater."""
    milliseconds = int(moment.timestamp() * 1000)
    return uuid.UUID(int=milliseconds << 80)


def moment_of(event_id: uuid.UUID) -> datetime:
    """The creation time a UUIDv7 carries in its first 48 bits."""
    return datetime.fromtimestamp((event_id.int >> 80) / 1000, tz=UTC)


def day_start(day: date) -> datetime:
    """Midnight UTC at the start of `day`: partitions follow UTC days."""
    return datetime.combine(day, time.min, tzinfo=UTC)


def partition_name(table: str, day: date) -> str:
    """The name of `table`'s partition that starts on `day`."""
    return f"{table}_p{day:%Y%m%d}"


@dataclass(frozen=True)
class Partition:
    """One partition of a table; `lower`/`upper` are None for MINVALUE/MAXVALUE, both None for DEFAULT."""

    table: str
    name: str
    lower: uuid.UUID | None
    upper: uuid.UUID | None
    is_default: bool
    estimated_rows: int

    @property
    def ends_at(self) -> datetime | None:
        return None if self.upper is None else moment_of(self.upper)


def _bound(text: str) -> uuid.UUID | None:
    text = text.strip().strip("'")
    return None if text in ("MINVALUE", "MAXVALUE") else uuid.UUID(text)


def list_partitions(table: str, *, using: str = DEFAULT_DB_ALIAS) -> list[Partition]:
    """`table`'s partitions in range order, the DEFAULT partition last; empty if it is not partitioned."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), greatest(c.reltuples, 0)::bigint "
            "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            [table],
        )
        rows = cursor.fetchall()
    partitions = []
    for name, bound, estimated in rows:
        match = _BOUND.search(bound)
        if match is None:
            partitions.append(Partition(table, name, None, None, True, estimated))
        else:
            partitions.append(Partition(table, name, _bound(match["lo"]), _bound(match["hi"]), False, estimated))
    never = uuid.UUID(int=0)
    partitions.sort(key=lambda p: (p.is_default, p.lower or never))
    return partitions


def create_partitions_ahead(
    table: str,
    *,
    days_ahead: int,
    partition_days: int = 1,
    today: date | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> list[str]:
    """Create `table`'s partitions up to `days_ahead` days past today; return the names created.

    They continue from the last partition's upper bound, or start today when the last one ended
    earlier (the days between went to the DEFAULT partition, which reports them).
    """
    today = today or datetime.now(UTC).date()
    ranged = [p for p in list_partitions(table, using=using) if not p.is_default and p.upper is not None]
    start = day_start(today)
    if ranged:
        last_end = max(moment_of(p.upper) for p in ranged)
        start = max(start, last_end)
    horizon = day_start(today + timedelta(days=days_ahead + 1))
    created = []
    while start < horizon:
        end = start + timedelta(days=partition_days)
        name = create_partition(table, start, end, using=using)
        created.append(name)
        start = end
    return created


def create_all_partitions_ahead(*, using: str = DEFAULT_DB_ALIAS) -> list[str]:
    """Create the missing partitions of both tables up to OUTBOX_PARTITIONS_AHEAD_DAYS; return their names."""
    created: list[str] = []
    for table in PARTITIONED_TABLES:
        created += create_partitions_ahead(
            table,
            days_ahead=settings.OUTBOX_PARTITIONS_AHEAD_DAYS,
            partition_days=settings.OUTBOX_PARTITION_DAYS,
            using=using,
        )
    return created


def create_partition(table: str, start: datetime, end: datetime, *, using: str = DEFAULT_DB_ALIAS) -> str:
    """Create `table`'s partition for the ids made from `start` to `end` (if missing); return its name."""
    name = partition_name(table, start.date())
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        # Creating a partition locks the parent: never queue writers behind it for long.
        cursor.execute(f"SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'")
        cursor.execute(
            f'CREATE TABLE IF NOT EXISTS "{name}" PARTITION OF "{table}" FOR VALUES FROM (%s) TO (%s)',
            [str(uuid_floor(start)), str(uuid_floor(end))],
        )
    return name


@dataclass
class RetentionResult:
    """What one retention pass did: partitions dropped, and those kept with the reason."""

    dropped: list[str] = field(default_factory=list)
    dropped_rows: int = 0
    kept: dict[str, str] = field(default_factory=dict)


def expired_partitions(
    table: str, older_than: timedelta, *, now: datetime | None = None, using: str = DEFAULT_DB_ALIAS
) -> list[Partition]:
    """`table`'s range partitions whose every id is older than `older_than`."""
    cutoff = uuid_floor((now or datetime.now(UTC)) - older_than)
    return [
        p for p in list_partitions(table, using=using) if not p.is_default and p.upper is not None and p.upper <= cutoff
    ]


def unpublished_in(partition: str, *, using: str = DEFAULT_DB_ALIAS) -> tuple[int, int]:
    """(pending, dead) events held by one partition of the event table."""
    # Each count matches a partial index's condition (pending, dead): a partition of millions of
    # published rows is not read for them, and the dashboard asks on every refresh.
    with connections[using].cursor() as cursor:
        cursor.execute(
            f'SELECT (SELECT count(*) FROM "{partition}" WHERE published_at IS NULL AND dead_at IS NULL), '
            f'(SELECT count(*) FROM "{partition}" WHERE dead_at IS NOT NULL AND published_at IS NULL)'
        )
        pending, dead = cursor.fetchone()
    return pending, dead


def default_partition(table: str, *, using: str = DEFAULT_DB_ALIAS) -> str | None:
    """The name of `table`'s DEFAULT partition, if it has one."""
    return next((p.name for p in list_partitions(table, using=using) if p.is_default), None)


def drop_expired_partitions(
    older_than: timedelta,
    *,
    now: datetime | None = None,
    on_progress: Callable[[Partition, str], None] | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> RetentionResult:
    """Drop the event and inbox partitions older than `older_than`, whole; keep any with unpublished events.

    Each drop is its own short transaction: the partition is locked, checked for pending and
    dead events under that lock (so none can appear between the check and the drop), then
    dropped. A lock not granted within `DDL_LOCK_TIMEOUT` keeps the partition for next time.
    """
    result = RetentionResult()
    for table in PARTITIONED_TABLES:
        for partition in expired_partitions(table, older_than, now=now, using=using):
            outcome = drop_partition(partition, using=using)
            if outcome == "dropped":
                result.dropped.append(partition.name)
                result.dropped_rows += partition.estimated_rows
            else:
                result.kept[partition.name] = outcome
            if on_progress is not None:
                on_progress(partition, outcome)
    return result


def drop_partition(partition: Partition, *, using: str = DEFAULT_DB_ALIAS) -> str:
    """Drop one partition unless it holds an unpublished event; return "dropped" or why it was kept."""
    check_unpublished = partition.table == EVENTS_TABLE
    try:
        with transaction.atomic(using=using), connections[using].cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'")
            cursor.execute(f'LOCK TABLE "{partition.table}", "{partition.name}" IN ACCESS EXCLUSIVE MODE')
            if check_unpublished:
                pending, dead = unpublished_in(partition.name, using=using)
                if pending or dead:
                    return f"holds {pending} pending and {dead} dead events"
            cursor.execute(f'DROP TABLE "{partition.name}"')
    except OperationalError as exc:
        if is_lock_timeout(exc):
            return "lock not granted in time; retried on the next pass"
        raise
    return "dropped"


@dataclass(frozen=True)
class PartitionReport:
    """What an operator needs to know of the partitions: kept past retention, strays in DEFAULT."""

    # Partition name -> why it is kept although older than the retention window.
    kept: dict[str, str]
    # Table -> rows in its DEFAULT partition (ids outside every range partition), up to DEFAULT_ROWS_COUNTED.
    default_rows: dict[str, int]
    # Table -> how many days ahead its partitions reach (negative: writes go to DEFAULT).
    days_ahead: dict[str, int]


def partition_report(retention_days: int, *, now: datetime | None = None, using=DEFAULT_DB_ALIAS) -> PartitionReport:
    """The partitions kept past retention and why, the rows in each DEFAULT partition, the days covered ahead."""
    now = now or datetime.now(UTC)
    kept: dict[str, str] = {}
    for partition in expired_partitions(EVENTS_TABLE, timedelta(days=retention_days), now=now, using=using):
        pending, dead = unpublished_in(partition.name, using=using)
        if pending or dead:
            kept[partition.name] = f"holds {pending} pending and {dead} dead events"
    default_rows: dict[str, int] = {}
    days_ahead: dict[str, int] = {}
    for table in PARTITIONED_TABLES:
        partitions = list_partitions(table, using=using)
        for partition in partitions:
            if partition.is_default:
                with connections[using].cursor() as cursor:
                    cursor.execute(
                        f'SELECT count(*) FROM (SELECT 1 FROM "{partition.name}" LIMIT %s) AS counted',
                        [DEFAULT_ROWS_COUNTED],
                    )
                    default_rows[table] = cursor.fetchone()[0]
        ends = [p.ends_at for p in partitions if p.ends_at is not None]
        if ends:
            days_ahead[table] = (max(ends) - now).days
    return PartitionReport(kept=kept, default_rows=default_rows, days_ahead=days_ahead)
