"""Writes to the outbox: append events in the caller's transaction, claim and settle them.

`emit` is the one way to append an event. Claiming and settling are the relay's side; they live
here because they are rules of the event table, not of any broker.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, overload

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import QuerySet

from outbox import write_behind
from outbox.envelope import OutgoingEvent
from outbox.errors import NotInTransaction
from outbox.event_rows import EventDraft, EventRow, event_rows, insert_sql, parameters
from outbox.metrics import count_appended
from outbox.models import OutboxEvent
from outbox.round_trips import one_round_trip

__all__ = ["EventDraft", "emit", "emit_many"]

_TABLE = OutboxEvent._meta.db_table

# last_error is for operators; keep it a line, not a stack dump.
MAX_ERROR_LENGTH = 1000


def require_transaction(using: str) -> None:
    _require_atomic_block(connections[using])


def _require_atomic_block(db: BaseDatabaseWrapper) -> None:
    if not db.in_atomic_block:
        raise NotInTransaction(
            "outbox events must be appended inside transaction.atomic() together with the change "
            "they describe; outside one the event would commit on its own"
        )


@overload
def emit_many(
    drafts: Iterable[EventDraft], *, using: str = ..., returning: Literal[True] = ...
) -> list[OutboxEvent]: ...
@overload
def emit_many(drafts: Iterable[EventDraft], *, using: str = ..., returning: Literal[False]) -> None: ...
def emit_many(
    drafts: Iterable[EventDraft], *, using: str = DEFAULT_DB_ALIAS, returning: bool = True
) -> list[OutboxEvent] | None:
    """Append several events in one INSERT, inside the caller's open transaction.

    With `returning=False` nothing comes back, and on `outbox.backends.postgresql` the rows are
    written behind: with the transaction's next statement or in its COMMIT's round trip
    (`outbox.write_behind`). Either way they commit with the transaction or not at all.
    """
    # The connection is looked up once: each lookup goes through Django's thread-local storage.
    db = connections[using]
    _require_atomic_block(db)
    rows = event_rows(drafts)
    if not rows:
        return [] if returning else None
    if not returning:
        queue = write_behind.queue_of(db)
        if queue is not None:
            queue.extend(rows)
        else:
            with db.cursor() as cursor:
                cursor.execute(insert_sql(len(rows)), parameters(rows))
        _count_on_commit(rows, db)
        return None
    # A direct INSERT: through the ORM's bulk_create it cost as much again as the statement.
    with db.cursor() as cursor:
        cursor.execute(insert_sql(len(rows), returning="id, event_id"), parameters(rows))
        ids = {event_id: pk for pk, event_id in cursor.fetchall()}
    _count_on_commit(rows, db)
    events = [row.as_model() for row in rows]
    for event in events:
        event.id = ids[event.event_id]
        event._state.adding = False
        event._state.db = using
    return events


def _count_on_commit(rows: list[EventRow], db: BaseDatabaseWrapper) -> None:
    # Counted once committed: a rolled-back append was never appended.
    appended: dict[str, int] = {}
    for row in rows:
        appended[row.event_type] = appended.get(row.event_type, 0) + 1
    db.on_commit(lambda: count_appended(appended))


def emit(
    *,
    aggregate_type: str,
    aggregate_id: Any,
    event_type: str,
    payload: Mapping[str, Any],
    headers: Mapping[str, Any] | None = None,
    schema_version: int | None = None,
    occurred_at: datetime | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> OutboxEvent:
    """Append one event inside the caller's open transaction; raise `NotInTransaction` outside one.

    The payload is checked against the schema registered for `event_type` (the newest version
    unless `schema_version` is given), so a malformed event never reaches the table.
    """
    draft = EventDraft(
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        event_type=event_type,
        payload=payload,
        headers=headers or {},
        schema_version=schema_version,
        occurred_at=occurred_at,
    )
    return emit_many([draft], using=using)[0]


# The claim takes pending events in id order whose retry time has come, skipping any event while
# an older event of its aggregate is still pending (claimed by another relay, or waiting for its
# retry): that keeps each aggregate's events in order whatever the number of relays. Dead events
# do not hold their aggregate back.
#
# It is two single-table statements and no join, so that no table statistics can make it slow.
# As one statement (NOT EXISTS an older pending event) it is fast only with the plan "walk the
# pending index, probe each row's aggregate", and stale or misleading statistics (a burst after
# the table is analyzed nearly empty) make the planner scan every pending row per row instead
# (docs/decisions/0003-two-statement-claim.md).
#
# 1. Read the head of the pending queue in id order, without locks. It is a prefix of the
#    pending events, so every older pending event of an aggregate in it is in it too, whether
#    another relay holds it or it waits for its retry: the first one of each aggregate is the
#    only candidate, if it is due.
# 2. Lock the candidates by id, SKIP LOCKED, re-checking that they are still pending.
# The table is partitioned by event_id (outbox.partitions): step 1 reads every partition's small
# pending index; step 2 and the settling statements name the span of the batch's event ids, so
# PostgreSQL reads only the partitions that can hold them.
# A writer cannot slip an older event in between: events of one aggregate are written under its
# row lock, so an event is committed, and visible to step 1, before any younger one exists.
_HEAD_SQL = f"""
    SELECT id, event_id, aggregate_type, aggregate_id,
           next_attempt_at IS NULL OR next_attempt_at <= statement_timestamp()
    FROM {_TABLE}
    WHERE published_at IS NULL AND dead_at IS NULL AND id > %s
    ORDER BY id
    LIMIT %s
"""
# The first page has no lower bound: to estimate `id > %s` the planner reads the lowest id of
# each partition's key index, which past many dead rows (published and pruned, rolled back)
# costs milliseconds of planning per claim; the first page is nearly every claim.
_FIRST_HEAD_SQL = _HEAD_SQL.replace(" AND id > %s", "")
# What `outgoing_event` reads of a row. The payload and headers as PostgreSQL prints them, so every
# publisher of an event (the relay, a replay) puts the same bytes on the wire.
OUTGOING_EVENT_COLUMNS = (
    "id, event_id, aggregate_type, aggregate_id, event_type, schema_version, payload::text, headers::text, "
    "occurred_at, attempts"
)
_LOCK_SQL = f"""
    SELECT {OUTGOING_EVENT_COLUMNS}
    FROM {_TABLE}
    WHERE id = ANY(%s::bigint[]) AND event_id BETWEEN %s AND %s AND published_at IS NULL AND dead_at IS NULL
    ORDER BY id
    LIMIT %s
    FOR UPDATE SKIP LOCKED
"""
# Across partitions the head is a merge of each partition's pending index; statistics of a
# partition analyzed nearly empty (a new day's, the DEFAULT's) make a sort of a sequential scan
# look cheaper there. Turned off for the claim's statements only, and put back after them: left
# off, they make whatever else the transaction plans far slower (a consumer's work, in tests).
# The same statement may limit how long the transaction may sit idle holding the batch.
CLAIM_PLANNER_SETTINGS = (
    "SELECT current_setting('enable_seqscan'), current_setting('enable_sort'), "
    "set_config('enable_seqscan', 'off', true), set_config('enable_sort', 'off', true)"
)
_HOLD_LIMIT_SQL = ", set_config('idle_in_transaction_session_timeout', %s, true)"
_RESTORE_PLANNER_SETTINGS = "SELECT set_config('enable_seqscan', %s, true), set_config('enable_sort', %s, true)"
_LOCK_AND_RESTORE_SQL = f"{_LOCK_SQL}; {_RESTORE_PLANNER_SETTINGS}"


def head_page_size(batch_size: int) -> int:
    """Rows of the queue's head read per page: the batch and a quarter more, so that the younger
    events of aggregates in it (held back behind their first) rarely cost a second page."""
    return batch_size + batch_size // 4 + 1


# The span of event ids of a batch: (lowest, highest).
EventIdSpan = tuple[uuid.UUID, uuid.UUID]


def event_id_span(event_ids: Iterable[uuid.UUID]) -> EventIdSpan | None:
    """The lowest and highest of some event ids, for a statement to read only their partitions."""
    ids = list(event_ids)
    return (min(ids), max(ids)) if ids else None


@dataclass(frozen=True)
class ClaimedBatch:
    """The events a claim locked, and whether more may be claimable as soon as they are published."""

    events: list[OutgoingEvent]
    # The batch was full, or a younger event of one of its aggregates waits behind it in the
    # queue: claim again at once rather than wait for a commit's notice.
    more_behind: bool


class _QueueHead:
    """The claim's candidates, read page by page from the head of the pending queue (step 1)."""

    def __init__(self, page_size: int, wanted: int) -> None:
        self.page_size = page_size
        self.wanted = wanted
        self.candidates: list[tuple[int, uuid.UUID]] = []
        self.after = 0
        # The whole pending queue has been read.
        self.exhausted = False
        self._first_of: dict[tuple[str, str], int | None] = {}
        # Candidates (their ids) with a younger event of their aggregate waiting behind them.
        self.held_behind: set[int] = set()

    @property
    def complete(self) -> bool:
        return self.exhausted or len(self.candidates) >= self.wanted

    def read(self, rows: Sequence[tuple]) -> None:
        for pk, event_id, aggregate_type, aggregate_id, due in rows:
            aggregate = (aggregate_type, aggregate_id)
            if aggregate not in self._first_of:
                self._first_of[aggregate] = pk if due else None
                if due:
                    self.candidates.append((pk, event_id))
            elif (first := self._first_of[aggregate]) is not None:
                self.held_behind.add(first)
        # A short page is the whole rest of the queue; a full one may hide more candidates behind
        # events that wait for a retry, or behind them.
        self.exhausted = len(rows) < self.page_size
        if rows:
            self.after = rows[-1][0]

    def read_on(self, wanted: int) -> None:
        """Look for `wanted` more candidates past what was read. The aggregates already seen stay
        held back: their first event is locked by another relay, or by this claim."""
        self.wanted = wanted
        self.candidates = []


def claim_batch(batch_size: int, *, hold_limit: float | None = None, using: str = DEFAULT_DB_ALIAS) -> ClaimedBatch:
    """Lock up to `batch_size` unpublished events in id order; other relays skip them.

    The lock lasts as long as the caller's transaction: a relay that dies releases its batch at
    once, and the events stay pending for the next claim. With `hold_limit` (seconds), PostgreSQL
    ends the session if the transaction then sits idle that long, releasing the batch to others.
    Two round trips in all, the transaction's BEGIN included: one for the head, one for the lock.
    The head read is about one batch long; when another relay holds part of it, the claim reads
    on past it and locks again (two more round trips), rather than read every claim's head
    several batches long for the case of several relays.
    """
    require_transaction(using)
    head = _QueueHead(head_page_size(batch_size), wanted=batch_size)
    settings_sql, settings_params = CLAIM_PLANNER_SETTINGS, []
    if hold_limit is not None:
        settings_sql += _HOLD_LIMIT_SQL
        settings_params.append(str(max(1, round(hold_limit * 1000))))
    rows: list[tuple] = []
    while True:
        locked = _lock_head(head, batch_size - len(rows), settings_sql, settings_params, using)
        rows += locked
        others_hold_some = len(locked) < min(head.wanted, len(head.candidates))
        if len(rows) >= batch_size or not others_hold_some or head.exhausted:
            break
        head.read_on(batch_size - len(rows))
    events = [outgoing_event(row) for row in rows]
    more = len(events) >= batch_size or any(event.id in head.held_behind for event in events)
    return ClaimedBatch(events, more_behind=more)


def _lock_head(head: _QueueHead, limit: int, settings_sql: str, settings_params: list, using: str) -> list[tuple]:
    """Read `head` on until it has its candidates, and lock up to `limit` of them: two round trips."""
    db = connections[using]
    with db.cursor() as settings_cursor, db.cursor() as cursor, psycopg.Cursor(db.connection) as first_page:
        page = cursor if head.after else first_page
        with one_round_trip(using):
            settings_cursor.execute(settings_sql, settings_params)
            if head.after:
                cursor.execute(_HEAD_SQL, [head.after, head.page_size])
            else:
                # Prepared once per connection, when it may keep prepared statements (config.settings):
                # planning the merge of every partition's pending index was a third of what the page
                # cost the server at a trickle. No parameters, so the kept plan is the one for them.
                first_page.execute(
                    _FIRST_HEAD_SQL % head.page_size, prepare=db.connection.prepare_threshold is not None
                )
        seqscan, sort = settings_cursor.fetchone()[:2]
        head.read(page.fetchall())
        while not head.complete:
            cursor.execute(_HEAD_SQL, [head.after, head.page_size])
            head.read(cursor.fetchall())
        # The lock and the settings put back go as one query of two statements, which the client-side
        # binding cursor (config.settings) sends by the simple protocol: not a pipeline, whose end
        # would leave the idle timer of `hold_limit` unarmed while the batch is held.
        if not head.candidates:
            cursor.execute(_RESTORE_PLANNER_SETTINGS, [seqscan, sort])
            return []
        lowest, highest = event_id_span(event_id for _, event_id in head.candidates)
        ids = _bigint_array(pk for pk, _ in head.candidates)
        cursor.execute(_LOCK_AND_RESTORE_SQL, [ids, lowest, highest, limit, seqscan, sort])
        return cursor.fetchall()


def claim_pending_events(batch_size: int, *, using: str = DEFAULT_DB_ALIAS) -> list[OutgoingEvent]:
    """The events of `claim_batch`, for callers that claim until nothing is left."""
    return claim_batch(batch_size, using=using).events


def _bigint_array(ids: Iterable[int]) -> str:
    # One array literal, cast in the statement: psycopg adapts a Python list element by element,
    # which cost more than the statement for a batch of hundreds of ids.
    return "{" + ",".join(map(str, ids)) + "}"


def outgoing_event(row: Sequence[Any]) -> OutgoingEvent:
    """The event of a row selected as `OUTGOING_EVENT_COLUMNS`, ready for the wire."""
    return OutgoingEvent(
        id=row[0],
        event_id=row[1],
        aggregate_type=row[2],
        aggregate_id=row[3],
        event_type=row[4],
        schema_version=row[5],
        payload_json=row[6],
        headers=json.loads(row[7]) if row[7] != "{}" else {},
        occurred_at=row[8],
        attempts=row[9],
    )


def _within_sql(within: EventIdSpan | None) -> tuple[str, list[uuid.UUID]]:
    return ("", []) if within is None else (" AND event_id BETWEEN %s AND %s", list(within))


def mark_published(
    event_ids: Sequence[int], *, within: EventIdSpan | None = None, using: str = DEFAULT_DB_ALIAS
) -> int:
    """Mark claimed events published; call only for events the broker has confirmed.

    `within` is the span of the batch's event ids (`event_id_span`): given, only the partitions
    that can hold them are read.
    """
    if not event_ids:
        return 0
    require_transaction(using)
    span_sql, span = _within_sql(within)
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"UPDATE {_TABLE} "
            "SET published_at = statement_timestamp(), last_attempt_at = statement_timestamp(), "
            "attempts = attempts + 1, last_error = '', next_attempt_at = NULL "
            f"WHERE id = ANY(%s::bigint[]){span_sql} AND published_at IS NULL",
            [_bigint_array(event_ids), *span],
        )
        return cursor.rowcount


# Exponential backoff with jitter (half to all of the capped delay), and the last attempt parks
# the event as dead. Computed in the database so that every relay applies one rule.
_FAILURE_SQL = f"""
    UPDATE {_TABLE}
    SET attempts = attempts + 1,
        last_attempt_at = statement_timestamp(),
        last_error = %(error)s,
        next_attempt_at = statement_timestamp() + make_interval(
            secs => least(%(base)s * power(2, attempts), %(cap)s) * (0.5 + random() / 2)
        ),
        dead_at = CASE WHEN attempts + 1 >= %(max_attempts)s THEN statement_timestamp() END
    WHERE id = %(id)s AND published_at IS NULL
    RETURNING dead_at IS NOT NULL
"""


def record_publish_failures(errors: Mapping[int, str], *, using: str = DEFAULT_DB_ALIAS) -> list[int]:
    """Count a failed attempt on each claimed event, schedule its retry; return those now dead."""
    if not errors:
        return []
    require_transaction(using)
    dead = []
    with connections[using].cursor() as cursor:
        for event_id, error in errors.items():
            cursor.execute(
                _FAILURE_SQL,
                {
                    "error": error[:MAX_ERROR_LENGTH],
                    "base": settings.OUTBOX_RETRY_BASE_SECONDS,
                    "cap": settings.OUTBOX_RETRY_MAX_SECONDS,
                    "max_attempts": settings.OUTBOX_MAX_ATTEMPTS,
                    "id": event_id,
                },
            )
            row = cursor.fetchone()
            if row and row[0]:
                dead.append(event_id)
    return dead


def retry_dead_events(events: QuerySet[OutboxEvent]) -> int:
    """Send dead events again: back to pending with a fresh attempt budget; the last error stays."""
    with transaction.atomic(using=events.db):
        return events.filter(dead_at__isnull=False, published_at__isnull=True).update(
            dead_at=None, next_attempt_at=None, attempts=0
        )
