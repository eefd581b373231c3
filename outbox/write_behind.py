"""Appends written behind: their rows go to the server with the transaction's next statement.

An append whose caller needs nothing back (no ids) does not need a round trip of its own, and
that round trip is a large share of a message's write
(docs/decisions/0001-event-written-with-the-commit.md). On a connection of
`outbox.backends.postgresql`, `emit_many(..., returning=False)` queues its rows on the
connection, and they are inserted:
- in the same round trip as the COMMIT, the INSERT and the COMMIT sent together through libpq's
  pipeline mode: the usual case, where the append is the last thing a transaction does
  (`Message.save()` and its `post_save`);
- before any other statement the connection runs, so the transaction reads its own events, and
  an insert that fails, fails in the block that appended it: SAVEPOINT and RELEASE are statements
  too, so a queued row never crosses a savepoint.
A rollback, of the transaction or to a savepoint, drops the queue: every queued row was appended
after the last statement, so inside what is being rolled back.

The rows are checked before they are queued (`outbox.event_rows`); what only the database can
refuse, it refuses at that statement or at COMMIT, like a deferred constraint.

A single row goes with the COMMIT through a statement prepared once per connection, when the
connection may keep prepared statements: when its `prepare_threshold` (Django's OPTIONS, which
Django sets to None unless told) is not None. Otherwise, and for several rows, the statement is
planned anew each time. Either way the values travel as parameters, never spliced into SQL.

Limits: a statement run on the raw psycopg connection, past Django's cursor, does not send the
queue first (it cannot read the queued rows), and other execute wrappers (`pgtrigger.ignore`)
never see the rows' INSERT. DISCARD ALL or DEALLOCATE through Django's cursor makes the next
commit prepare the statement anew; run on the raw connection, it fails the next commit with an
append, and the one after prepares it again.
"""

from __future__ import annotations

import itertools
import select
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.adapt import PyFormat, Transformer
from psycopg.pq import ExecStatus, TransactionStatus

if TYPE_CHECKING:
    from psycopg.abc import Buffer
    from psycopg.pq.abc import PGconn, PGresult

    from outbox.event_rows import EventRow

# The attribute, on a Django DatabaseWrapper, of its queue; only our backend sets it.
QUEUE_ATTRIBUTE = "outbox_write_behind"


def queue_of(db: Any) -> list[EventRow] | None:
    """The write-behind queue of a Django connection; None when its backend does not write behind."""
    return getattr(db, QUEUE_ATTRIBUTE, None)


def flush(db: Any, *, then_commit: bool = False) -> None:
    """Insert the rows queued on `db` (a Django connection), with a COMMIT in the same round trip if asked.

    Its callers (the backend's commit, the execute wrapper) call it only with rows queued. The
    queue is emptied whatever happens: on success the rows are written; on an error the
    transaction is aborted (or ended, for a COMMIT), so they are gone with it.
    """
    queue = queue_of(db)
    rows = list(queue)
    queue.clear()
    # Imported here: Django loads this backend before the apps, and event_rows needs the models.
    from outbox.event_rows import insert_sql, parameters

    connection = db.connection
    if then_commit:
        _insert_and_commit(db, _kept_for(connection), rows)
        return
    # Through a psycopg cursor, which first opens the transaction on the server (with the
    # connection's isolation level) if no statement has yet: sent alone, the rows would commit
    # on their own. Rare: most transactions end with their append.
    with connection.cursor() as cursor:
        cursor.execute(insert_sql(len(rows)), parameters(rows))


# Rows per INSERT of several: 8,000 parameters, where the protocol allows 65,535 per statement.
ROWS_PER_STATEMENT = 1000

# The attribute, on a psycopg connection, of what the commit path keeps for it. On the psycopg
# connection rather than Django's wrapper: with a connection pool (OPTIONS["pool"]) one wrapper
# takes a different server session with each request, and what a session has prepared stays
# with that session.
_KEPT_ATTRIBUTE = "outbox_write_behind_kept"
_statement_names = itertools.count(1)


class _Kept:
    """What the commit path keeps per psycopg connection: a Transformer, and its prepared INSERT.

    A Transformer makes each value's text in the connection's encoding, which Django sets once
    when it connects; a changed encoding gets a new one. It is kept because making one costs Python
    time on every commit. The
    prepared statement's name is new with each `_Kept`, so a new one never collides with a
    statement an earlier one prepared in the same session.
    """

    __slots__ = ("_dump", "connection", "encoding", "prepared", "statement")

    def __init__(self, connection: psycopg.Connection, encoding: bytes | None) -> None:
        self.connection = connection
        self.encoding = encoding
        self._dump = Transformer.from_context(connection).dump_sequence
        self.statement = b"outbox_append_%d" % next(_statement_names)
        self.prepared = False

    def parameters_of(self, values: Sequence[Any]) -> Sequence[Buffer | None]:
        """`values` as the text the server reads for a statement's parameters."""
        return self._dump(values, [PyFormat.TEXT] * len(values))


def _kept_for(connection: psycopg.Connection) -> _Kept:
    encoding = connection.pgconn.parameter_status(b"client_encoding")
    kept = getattr(connection, _KEPT_ATTRIBUTE, None)
    if kept is None or kept.encoding != encoding:
        kept = _Kept(connection, encoding)
        setattr(connection, _KEPT_ATTRIBUTE, kept)
    return kept


def _insert_and_commit(db: Any, kept: _Kept, rows: list[EventRow]) -> None:
    """INSERT the rows and COMMIT, in one round trip, through libpq's pipeline mode.

    A single row (nearly every append) goes through a statement prepared once per connection
    when the connection allows it (module docstring): planning the INSERT anew with each message
    is a large part of the append's server CPU
    (docs/decisions/0001-event-written-with-the-commit.md). Several rows go through the unnamed
    statement, planned each time, `ROWS_PER_STATEMENT` rows at most per INSERT.
    """
    from outbox.event_rows import numbered_insert_sql, parameters

    connection = kept.connection
    pgconn = connection.pgconn
    prepare = len(rows) == 1 and connection.prepare_threshold is not None
    # Every value made into text before anything is sent: a value psycopg cannot send fails
    # here, with the connection still in a known state.
    if prepare:
        inserts = [(None, kept.parameters_of(rows[0].values))]
    else:
        inserts = []
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            chunk = rows[start : start + ROWS_PER_STATEMENT]
            inserts.append((numbered_insert_sql(len(chunk)), kept.parameters_of(parameters(chunk))))
    with connection.lock:
        pgconn.enter_pipeline_mode()
        try:
            if pgconn.transaction_status == TransactionStatus.IDLE:
                # No statement has opened the transaction: one that is only this INSERT needs no
                # isolation level, and without a BEGIN, COMMIT would warn of no transaction.
                pgconn.send_query_params(b"BEGIN", None)
            if prepare:
                if not kept.prepared:
                    pgconn.send_prepare(kept.statement, numbered_insert_sql(1))
                pgconn.send_query_prepared(kept.statement, inserts[0][1])
            else:
                for sql, params in inserts:
                    pgconn.send_query_params(sql, params)
            pgconn.send_query_params(b"COMMIT", None)
            pgconn.pipeline_sync()
            results, interrupted = _results_until_sync(pgconn)
        except BaseException:
            # Cut off mid-pipeline (a dropped connection): the session's state is unknown.
            # Closed, the server ends whatever transaction did not commit.
            connection.close()
            raise
        pgconn.exit_pipeline_mode()
    if prepare and not kept.prepared:
        # The Parse's result, before the Execute's and the COMMIT's. Prepared statements outlive
        # transactions: it stays prepared even if the rest failed.
        kept.prepared = results[-3].status == _COMMAND_OK
    for result in results:
        if result.status == _FATAL_ERROR:
            error = psycopg.errors.error_from_result(result, encoding=connection.info.encoding)
            if isinstance(error, psycopg.errors.InvalidSqlStatementName):
                # Dropped behind our back (DISCARD ALL or DEALLOCATE past Django's cursor).
                forget_prepared(db)
            raise error  # a Ctrl-C held meanwhile gives way to it: either ends the caller's work
    if interrupted is not None:
        raise interrupted  # now that the transaction has committed


def forget_prepared(db: Any) -> None:
    """The session of `db` lost its prepared statements: the next commit prepares a new one."""
    if db.connection is not None:
        setattr(db.connection, _KEPT_ATTRIBUTE, None)


# Plain ints, read once: the loop compares every result's status.
_COMMAND_OK, _FATAL_ERROR, _PIPELINE_SYNC = (
    int(status) for status in (ExecStatus.COMMAND_OK, ExecStatus.FATAL_ERROR, ExecStatus.PIPELINE_SYNC)
)


def _results_until_sync(pgconn: PGconn) -> tuple[list[PGresult], KeyboardInterrupt | None]:
    """Every result of the pipeline up to its sync point, and a Ctrl-C that came meanwhile.

    It waits with the interpreter lock released: libpq's own blocking wait (`PQgetResult`) would
    hold it for the whole round trip and stop every other thread of the process. A Ctrl-C is
    held until the replies are in, so it never leaves a COMMIT of unknown outcome on an open
    connection.
    """
    while pgconn.flush():
        _wait(pgconn, select.POLLOUT)
    results = []
    interrupted = None
    while True:
        while pgconn.is_busy():
            try:
                _wait(pgconn, select.POLLIN)
            except KeyboardInterrupt as exc:
                interrupted = exc
            pgconn.consume_input()
        result = pgconn.get_result()
        if result is None:
            continue  # the end of one statement's results
        if result.status == _PIPELINE_SYNC:
            return results, interrupted
        results.append(result)


def _wait(pgconn: PGconn, event: int) -> None:
    poller = select.poll()
    poller.register(pgconn.socket, event)
    poller.poll()


def discard(db: Any) -> None:
    """Drop the rows queued on `db`: the transaction or savepoint they belong to is rolled back."""
    queue = queue_of(db)
    if queue:
        queue.clear()


# Statements that drop a session's prepared statements (psycopg watches for them too).
_DROPS_PREPARED = ("DISCARD", "DEALLOCATE")


def flush_before_statement(execute, sql, params, many, context):
    """A Django execute wrapper: the queued rows go first, in their own statement."""
    db = context["connection"]
    if isinstance(sql, str) and sql[:16].lstrip().upper().startswith(_DROPS_PREPARED):
        forget_prepared(db)
    # A transaction Django already marked for rollback runs no statement: leave the rows be.
    if queue_of(db) and not db.needs_rollback:
        with db.wrap_database_errors:
            flush(db)
    return execute(sql, params, many, context)
