"""The recent-events view: the event table narrowed, by constant bounds, to the ids of today and tomorrow (UTC).

A probe that a trigger runs on every commit (messaging's created-event guard) goes through this
view. PL/pgSQL keeps one plan per session for it; with constant bounds the planner prunes the
other partitions when it makes that plan, so each run locks and reads one or two partitions. The
same probe on the table, bounded by `now()`, prunes only as it runs, after the plan has locked
every partition and index of the table (docs/decisions/0005-time-partitions.md, "Probes at commit").

The relay's slow tick and `outbox_partitions create` move the window each day. A stale window
costs speed, not correctness: a probe that misses here must look in the whole table.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from outbox.partitions import DDL_LOCK_TIMEOUT, EVENTS_TABLE, day_start, uuid_floor

RECENT_EVENTS_VIEW = "outbox_recent_events"
RECENT_EVENTS_DAYS = 2
# Only what a probe reads: a column in this view cannot be dropped or retyped on the table.
RECENT_EVENTS_COLUMNS = ("event_id", "aggregate_type", "aggregate_id", "event_type", "payload")


def recent_events_window(today: date) -> tuple[uuid.UUID, uuid.UUID]:
    """The ids the view holds on `today`: from today's first to the last of tomorrow (UTC)."""
    return uuid_floor(day_start(today)), uuid_floor(day_start(today + timedelta(days=RECENT_EVENTS_DAYS)))


def refresh_recent_events_view(*, today: date | None = None, using: str = DEFAULT_DB_ALIAS) -> bool:
    """Point the view at `today`'s window (creating it if missing); True if it was created or moved."""
    lower, upper = recent_events_window(today or datetime.now(UTC).date())
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        cursor.execute("SELECT pg_get_viewdef(to_regclass(%s))", [RECENT_EVENTS_VIEW])
        definition = cursor.fetchone()[0]
        if definition is not None and str(lower) in definition and str(upper) in definition:
            return False  # unchanged: replacing it would make every session plan its probes again
        # Replacing the view waits for the commits probing it; never queue writers behind it for long.
        cursor.execute(f"SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'")
        cursor.execute(
            f'CREATE OR REPLACE VIEW "{RECENT_EVENTS_VIEW}" AS SELECT {", ".join(RECENT_EVENTS_COLUMNS)} '
            f"FROM \"{EVENTS_TABLE}\" WHERE event_id >= '{lower}'::uuid AND event_id < '{upper}'::uuid"
        )
    return True


def drop_recent_events_view(*, using: str = DEFAULT_DB_ALIAS) -> None:
    """Drop the view (the migration's way back)."""
    with connections[using].cursor() as cursor:
        cursor.execute(f'DROP VIEW IF EXISTS "{RECENT_EVENTS_VIEW}"')
