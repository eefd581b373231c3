"""Appends written behind: their rows go to the server with the transaction's next statement.

An append whose caller needs nothing back (no ids) does not need a round trip of its own, and on
this machine that round trip was a quarter of a message's write (README, "Performance"). On a
connection of `outbox.backends.postgresql`, `emit_many(..., returning=False)` queues its rows on
the connection, and they are inserted:
- in the same round trip as the COMMIT, as `INSERT …; COMMIT` in one query: the usual case, where
  the append is the last thing a transaction does (`Message.save()` and its `post_save`);
- before any other statement the connection runs, so the transaction reads its own events, and
  an insert that fails, fails in the block that appended it: SAVEPOINT and RELEASE are statements
  too, so a queued row never crosses a savepoint.
A rollback, of the transaction or to a savepoint, drops the queue: every queued row was appended
after the last statement, so inside what is being rolled back.

The rows are checked before they are queued (`outbox.event_rows`); what only the database can
refuse, it refuses at that statement or at COMMIT, like a deferred constraint.

Limits: a statement run on the raw psycopg connection, past Django's cursor, does not send the
queue first (it cannot read the queued rows), and other execute wrappers (`pgtrigger.ignore`)
never see the rows' INSERT.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.adapt import Transformer
from psycopg.pq import ExecStatus, TransactionStatus

if TYPE_CHECKING:
    from outbox.event_rows import EventRow

# The attribute, on a Django DatabaseWrapper, of its queue; only our backend sets it.
QUEUE_ATTRIBUTE = "outbox_write_behind"


def queue_of(db: Any) -> list[EventRow] | None:
    """The write-behind queue of a Django connection; None when its backend does not write behind."""
    return getattr(db, QUEUE_ATTRIBUTE, None)


def flush(db: Any, *, then_commit: bool = False) -> None:
    """Insert the rows queued on `db` (a Django connection), with a COMMIT in the same query if asked.

    Its callers (the backend's commit, the execute wrapper) call it only with rows queued. The
    queue is emptied whatever happens: on success the rows are written; on an error the
    transaction is aborted (or ended, for a COMMIT), so they are gone with it.
    """
    queue = queue_of(db)
    rows = list(queue)
    queue.clear()
    # Imported here: Django loads this backend before the apps, and event_rows needs the models.
    from outbox.event_rows import literal_insert_sql

    connection = db.connection
    # The values are bound client-side, as psycopg's ClientCursor binds them: several statements
    # in one query need the simple query protocol.
    query = literal_insert_sql(rows, _literal_maker(db, connection))
    if not then_commit:
        # Through a psycopg cursor, which first opens the transaction on the server if no
        # statement has yet: sent alone, rows appended first would commit on their own.
        with connection.cursor() as cursor:
            cursor.execute(query)
        return
    # A transaction not opened yet needs no BEGIN here: PostgreSQL runs a query's statements
    # as one transaction, which its COMMIT ends.
    _execute_commit(connection, query + b"; COMMIT")
    # pgconn's status, not connection.info's: that makes a new ConnectionInfo on every read.
    if connection.pgconn.transaction_status != TransactionStatus.IDLE:
        # Cannot happen with PostgreSQL's COMMIT; commit as usual rather than leave it open.
        connection.commit()


# The attribute, on a Django DatabaseWrapper, of its psycopg connection's literal maker.
_LITERALS_ATTRIBUTE = "outbox_write_behind_literals"


def _literal_maker(db: Any, connection: psycopg.Connection) -> Callable[[Any], bytes]:
    """`as_literal` of a psycopg Transformer kept for `connection`: making one per flush cost ~8 µs.

    A Transformer quotes strings in the connection's encoding, which Django sets once when it
    connects; kept with it, a changed encoding still gets a new Transformer.
    """
    encoding = connection.pgconn.parameter_status(b"client_encoding")
    kept = getattr(db, _LITERALS_ATTRIBUTE, None)
    if kept is None or kept[0] is not connection or kept[1] != encoding:
        kept = (connection, encoding, Transformer.from_context(connection).as_literal)
        setattr(db, _LITERALS_ATTRIBUTE, kept)
    return kept[2]


def _execute_commit(connection: psycopg.Connection, query: bytes) -> None:
    """Run `query`, which ends with COMMIT, straight through libpq: nothing comes back but its status.

    A cursor's execute cost ~10 µs of Python more here (result sets, state checks), a twentieth
    of what the append adds to a message's write. `PQexec` waits with the interpreter lock
    released, as psycopg's own waiting does; unlike it, Ctrl-C takes effect once the COMMIT
    returns. The simple query protocol stops at the first failing statement and returns its
    error, or else the COMMIT's result.
    """
    with connection.lock:
        result = connection.pgconn.exec_(query)
    if result.status != ExecStatus.COMMAND_OK:
        raise psycopg.errors.error_from_result(result, encoding=connection.info.encoding)


def discard(db: Any) -> None:
    """Drop the rows queued on `db`: the transaction or savepoint they belong to is rolled back."""
    queue = queue_of(db)
    if queue:
        queue.clear()


def flush_before_statement(execute, sql, params, many, context):
    """A Django execute wrapper: the queued rows go first, in their own statement."""
    db = context["connection"]
    # A transaction Django already marked for rollback runs no statement: leave the rows be.
    if queue_of(db) and not db.needs_rollback:
        with db.wrap_database_errors:
            flush(db)
    return execute(sql, params, many, context)
