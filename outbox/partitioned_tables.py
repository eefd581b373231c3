"""Converting a live table into one range-partitioned on `event_id`, without stopping its writers.

The table keeps its rows: it becomes the parent's first ("legacy") partition, for every id below
a bound two days ahead, and a DEFAULT partition takes the rows outside that range (event ids
made before ids were time-ordered). Only the last step, the swap, takes an exclusive lock, and it
only changes the catalog: the long work (an index, validating a CHECK constraint) runs first,
concurrently with writers. The steps and their limits: docs/decisions/0005-time-partitions.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import OperationalError, connections

from outbox.partitions import create_partitions_ahead, day_start, is_lock_timeout, uuid_floor

# How many times the swap waits for its lock (a short lock_timeout each) before giving up.
SWAP_ATTEMPTS = 20
SWAP_LOCK_TIMEOUT = "3s"


def _legacy_upper_bound(now: datetime):
    # Two days ahead: no id a writer makes before the swap commits can fall past it.
    return uuid_floor(day_start(now.date() + timedelta(days=2)))


def _short(name: str, suffix: str) -> str:
    return f"{name[: 63 - len(suffix)]}{suffix}"


def convert_to_partitioned(
    table: str,
    *,
    guarded_triggers: tuple[str, ...] = (),
    preferred_indexes: tuple[str, ...] = (),
    days_ahead: int = 3,
    using: str = "default",
) -> None:
    """Turn `table` (bigint identity `id`, uuid `event_id`) into a table partitioned by `event_id` range.

    `guarded_triggers` are the trigger ids (pgid) to ignore while the rows outside the legacy
    range move to the DEFAULT partition (the append-only delete guards); `preferred_indexes` are
    rebuilt after the new primary key's index (see below). Call it outside a
    transaction; each step commits on its own, and running it again after a failure resumes it.
    """
    db = connections[using]
    if db.in_atomic_block:
        raise RuntimeError("convert_to_partitioned runs its own transactions")
    now = datetime.now(UTC)
    upper = str(_legacy_upper_bound(now))
    legacy, default = _short(table, "_legacy"), _short(table, "_default")
    with db.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", [table])
        if cursor.fetchone()[0] == "p":
            return
        # 1. Rows outside the legacy range move to what becomes the DEFAULT partition.
        cursor.execute(
            f'CREATE TABLE IF NOT EXISTS "{default}" (LIKE "{table}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)'
        )
        cursor.execute("BEGIN")
        try:
            if guarded_triggers:
                cursor.execute(
                    "SELECT set_config('pgtrigger.ignore', %s, true)", ["{" + ",".join(guarded_triggers) + "}"]
                )
            cursor.execute(
                f'WITH moved AS (DELETE FROM "{table}" WHERE event_id >= %s RETURNING *) '
                f'INSERT INTO "{default}" SELECT * FROM moved',
                [upper],
            )
            cursor.execute("COMMIT")
        except Exception:
            cursor.execute("ROLLBACK")
            raise
        # 2. The partitioned primary key's index, and a CHECK the attach can trust without a scan;
        # both built while writers go on.
        pk_index = _short(table, "_id_event_id")
        cursor.execute(f'CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "{pk_index}" ON "{table}" (id, event_id)')
        # On an exact tie of estimated costs (statistics of a table analyzed empty) the planner
        # takes the index created last; rebuilt after the new key's, an index a query must use
        # (the claim's pending index) keeps winning that tie over the key.
        for index in preferred_indexes:
            cursor.execute(f'REINDEX INDEX CONCURRENTLY "{index}"')
        check = _short(table, "_legacy_range")
        cursor.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT IF EXISTS "{check}"')
        cursor.execute(
            f'ALTER TABLE "{table}" ADD CONSTRAINT "{check}" CHECK (event_id IS NOT NULL AND event_id < %s::uuid) '
            "NOT VALID",
            [upper],
        )
        cursor.execute(f'ALTER TABLE "{table}" VALIDATE CONSTRAINT "{check}"')
    # 3. The swap: catalog changes only, under a lock held for milliseconds.
    for attempt in range(SWAP_ATTEMPTS):
        try:
            with db.cursor() as cursor:
                cursor.execute("BEGIN")
                try:
                    cursor.execute(f"SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'")
                    _swap(cursor, table, legacy, default, pk_index, check, upper)
                    cursor.execute("COMMIT")
                except Exception:
                    cursor.execute("ROLLBACK")
                    raise
            break
        except OperationalError as exc:
            if not is_lock_timeout(exc) or attempt + 1 == SWAP_ATTEMPTS:
                raise
    create_partitions_ahead(table, days_ahead=days_ahead, using=using)


def _swap(cursor, table: str, legacy: str, default: str, pk_index: str, check: str, upper: str) -> None:
    cursor.execute(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE')
    # What is rebuilt on the parent, read first.
    shape = _read_shape(cursor, table, skip_index=pk_index)
    primary_key = shape.primary_key
    # The id sequence: the identity's own goes with the identity, so a new one continues it.
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
    old_sequence = cursor.fetchone()[0]
    cursor.execute(f"SELECT last_value, is_called FROM {old_sequence}")
    last_value, is_called = cursor.fetchone()
    cursor.execute(f'SELECT coalesce(max(id), 0) FROM "{table}"')
    next_id = max(last_value + (1 if is_called else 0), cursor.fetchone()[0] + 1)
    sequence = _short(table, "_id_seq")
    cursor.execute(f'ALTER TABLE "{table}" ALTER COLUMN id DROP IDENTITY')
    cursor.execute(f'CREATE SEQUENCE "{sequence}"')
    cursor.execute("SELECT setval(%s, %s, false)", [sequence, next_id])
    cursor.execute(f'ALTER TABLE "{table}" ALTER COLUMN id SET DEFAULT nextval(\'"{sequence}"\'::regclass)')
    for name, _definition, _comment in shape.triggers:
        cursor.execute(f'DROP TRIGGER "{name}" ON "{table}"')
    for name, _definition in shape.uniques:
        cursor.execute(f'ALTER TABLE "{table}" RENAME CONSTRAINT "{name}" TO "{_short(name, "_l")}"')
    for name, _definition in shape.indexes:
        cursor.execute(f'ALTER INDEX "{name}" RENAME TO "{_short(name, "_l")}"')
    cursor.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{primary_key}"')
    cursor.execute(
        f'ALTER TABLE "{table}" ADD CONSTRAINT "{_short(table, "_l_pkey")}" PRIMARY KEY USING INDEX "{pk_index}"'
    )
    cursor.execute(f'ALTER TABLE "{table}" RENAME TO "{legacy}"')
    # The parent, under the old name, with the primary key the partition key must be part of.
    cursor.execute(
        f'CREATE TABLE "{table}" (LIKE "{legacy}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE, '
        f'CONSTRAINT "{primary_key}" PRIMARY KEY (id, event_id)) PARTITION BY RANGE (event_id)'
    )
    cursor.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{check}"')
    _rebuild_uniques(cursor, table, shape)
    cursor.execute(f'ALTER SEQUENCE "{sequence}" OWNED BY "{table}".id')
    cursor.execute(f'ALTER TABLE "{table}" ATTACH PARTITION "{legacy}" FOR VALUES FROM (MINVALUE) TO (%s)', [upper])
    cursor.execute(f'ALTER TABLE "{legacy}" DROP CONSTRAINT "{check}"')
    cursor.execute(f'ALTER TABLE "{table}" ATTACH PARTITION "{default}" DEFAULT')
    # Matching indexes on the partitions are attached, not built.
    _rebuild_indexes_and_triggers(cursor, table, shape)


def convert_to_single(table: str, *, using: str = "default") -> None:
    """Undo `convert_to_partitioned`: copy every partition's rows into one plain table, under a lock.

    Writers wait for the whole copy: it is the way back for a rollback of the deployment and for
    the migration tests, not a step meant for a large table in service.
    """
    db = connections[using]
    with db.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", [table])
        if cursor.fetchone()[0] != "p":
            return
        single = _short(table, "_single")
        cursor.execute("BEGIN")
        try:
            cursor.execute(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE')
            shape = _read_shape(cursor, table)
            cursor.execute(f"SELECT nextval(pg_get_serial_sequence('{table}', 'id'))")
            next_id = cursor.fetchone()[0]
            cursor.execute(f'CREATE TABLE "{single}" (LIKE "{table}" INCLUDING CONSTRAINTS INCLUDING STORAGE)')
            cursor.execute(f'INSERT INTO "{single}" SELECT * FROM "{table}"')
            cursor.execute(f'DROP TABLE "{table}" CASCADE')
            cursor.execute(f'ALTER TABLE "{single}" RENAME TO "{table}"')
            cursor.execute(
                f'ALTER TABLE "{table}" ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (START WITH {next_id})'
            )
            cursor.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{shape.primary_key}" PRIMARY KEY (id)')
            _rebuild_uniques(cursor, table, shape)
            _rebuild_indexes_and_triggers(cursor, table, shape)
            cursor.execute("COMMIT")
        except Exception:
            cursor.execute("ROLLBACK")
            raise


@dataclass(frozen=True)
class _Shape:
    """What a table's conversion rebuilds: its keys, indexes and triggers as their definitions."""

    primary_key: str
    # (name, definition) of each unique constraint and of each index no constraint owns.
    uniques: list[tuple[str, str]]
    indexes: list[tuple[str, str]]
    # (name, definition, comment): pgtrigger keeps its hash in the comment.
    triggers: list[tuple[str, str, str | None]]


def _read_shape(cursor, table: str, *, skip_index: str = "") -> _Shape:
    cursor.execute("SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'", [table])
    primary_key = cursor.fetchone()[0]
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'u'",
        [table],
    )
    uniques = cursor.fetchall()
    cursor.execute(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "WHERE x.indrelid = %s::regclass AND i.relname <> %s "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)",
        [table, skip_index],
    )
    # A partitioned table's index reads "ON ONLY"; rebuilt on a plain table it must not.
    indexes = [(name, definition.replace(" ON ONLY ", " ON ")) for name, definition in cursor.fetchall()]
    cursor.execute(
        "SELECT tgname, pg_get_triggerdef(oid), obj_description(oid, 'pg_trigger') FROM pg_trigger "
        "WHERE tgrelid = %s::regclass AND NOT tgisinternal",
        [table],
    )
    return _Shape(primary_key, uniques, indexes, cursor.fetchall())


def _rebuild_uniques(cursor, table: str, shape: _Shape) -> None:
    for name, definition in shape.uniques:
        cursor.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}')


def _rebuild_indexes_and_triggers(cursor, table: str, shape: _Shape) -> None:
    for _name, definition in shape.indexes:
        cursor.execute(definition)
    for name, definition, comment in shape.triggers:
        cursor.execute(definition)
        if comment is not None:
            cursor.execute(f'COMMENT ON TRIGGER "{name}" ON "{table}" IS %s', [comment])
